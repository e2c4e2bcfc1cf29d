"""The background trace writer: bounded queue in, objects then index rows out.

``submit`` is all the request path ever calls: a length check and an append. A full
queue drops the trace and counts it; the request is never slowed. The writer task takes
batches, builds and compresses the documents in a worker thread (zstd releases the
GIL), packs each handler's traces of the batch into one segment object
(:mod:`trace_store.writer.segments`), uploads the objects with bounded concurrency, and
only then inserts the index rows, so a visible index row always points at an existing
object. Failures are retried with capped exponential backoff until they succeed.

A batch is taken when ``batch_size`` traces wait or the oldest has waited
``batch_wait``: requests cost in proportion to batches, not traces, and a trace is
visible (its live dot) about ``batch_wait`` plus one put and one commit after its
request. Behind a backlog every batch is full, so recovery runs at full batch speed.

Fed by the gateway's trace log (:mod:`trace_store.log_feed`), the writer reports each
finished batch through ``on_done`` and the log is committed past it; while the store or
Postgres is down the writer keeps retrying, takes nothing more, and the log grows. Fed
directly (``STRATA_WRITER=inline``, the memory store) its queue is all there is, and
traces beyond its bounds are dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from trace_store import keys
from trace_store.background import Retries
from trace_store.db.index import IndexRow
from trace_store.db.unmatched import StoredRequest
from trace_store.document import codec
from trace_store.document.build import TraceLimits, build_trace
from trace_store.errors import AlreadyExists
from trace_store.record import C_FUNCTION, C_KIND, USER, PendingTrace, without_surrogates
from trace_store.timestamps import utc_datetime
from trace_store.writer.commit import Batch, commit_batch
from trace_store.writer.queue import TraceQueue, WriterConfig
from trace_store.writer.segments import Encoded, pack

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from trace_store.backends.base import ObjectStore
    from trace_store.db import Pool
    from trace_store.metrics import Metrics

log = logging.getLogger("strata.writer")


class Writer(Protocol):
    """What the gateway uses of a writer, inline (:class:`TraceWriter`) or in a process."""

    config: WriterConfig

    def submit(self, pending: PendingTrace) -> bool: ...
    def start(self) -> None: ...
    async def stop(self, *, drain_timeout: float = 10.0) -> None: ...
    async def flush(self) -> None: ...
    @property
    def depth(self) -> int: ...
    @property
    def queued(self) -> int: ...
    def problem(self) -> str | None: ...


class TraceWriter:
    """Owns the queue and the background task that drains it."""

    def __init__(
        self,
        store: ObjectStore,
        pool: Pool | None,
        metrics: Metrics,
        *,
        limits: TraceLimits | None = None,
        config: WriterConfig | None = None,
    ) -> None:
        self.store = store
        self.pool = pool
        self.metrics = metrics
        self.limits = limits or TraceLimits()
        self.config = config or WriterConfig()
        self._queue = TraceQueue(self.config)
        self._arrived: deque[float] = deque()  # time.monotonic() of each queued trace
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._in_flight = 0
        self._retries: dict[str, Retries] = {}
        self.on_indexed: list[Callable[[Sequence[IndexRow]], Awaitable[None]]] = []
        #: Called with (traces, seconds) after each batch (the writer process reports it).
        self.on_batch: Callable[[int, float], None] | None = None
        #: Called with each batch and its objects just before they are uploaded (the log
        #: consumer records the segments' intents, :mod:`trace_store.writer.intents`).
        self.on_upload: Callable[[list[PendingTrace], list[Encoded]], None] | None = None
        #: Called with each batch once it is finished (stored and indexed, or dropped and
        #: counted) with ``True``, or with ``False`` when it was left unfinished at stop.
        #: Set by the log consumer, which commits the log past finished batches only.
        self.on_done: Callable[[list[PendingTrace], bool], None] | None = None

    # -- the request path -------------------------------------------------------------

    def submit(self, pending: PendingTrace) -> bool:
        """Queue a finished request; ``False`` (and a counted drop) when full."""
        if not self._queue.push(pending):
            self.metrics.traces_dropped.labels("queue_full").inc()
            return False
        # When each trace arrived, for the batch wait: the writer's own, not the
        # gateway's side of the writer process, whose queue is on the request path.
        self._arrived.append(time.monotonic())
        self.metrics.traces_enqueued.inc()
        self._idle.clear()
        # Wake the batcher only to start its wait (the first trace) or to end it early.
        depth = len(self._queue)
        if (depth == 1 or depth >= self.config.batch_size) and not self._wake.is_set():
            self._wake.set()
        return True

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start the background task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="trace-writer")

    async def stop(self, *, drain_timeout: float = 10.0) -> None:
        """Write what is queued (up to ``drain_timeout``), then stop."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), drain_timeout)
        except TimeoutError:
            log.warning("writer stopped with %d traces unwritten", len(self._queue))
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def flush(self) -> None:
        """Wait until everything submitted so far is stored and indexed."""
        await self._idle.wait()

    @property
    def depth(self) -> int:
        """Traces waiting in the queue."""
        return len(self._queue)

    def problem(self) -> str | None:
        """Nothing to report: this writer has no log (its drops are counted)."""
        return None

    @property
    def queued(self) -> int:
        """Traces in this process's memory queue."""
        return len(self._queue)

    def has_room(self, traces: int, calls: int, size: int) -> bool:
        """Whether that many traces, call records and body bytes fit in the queue."""
        return self._queue.fits(traces, calls, size)

    @property
    def queued_bytes(self) -> int:
        """Body bytes held by queued traces."""
        return self._queue.bytes

    # -- the background task ----------------------------------------------------------

    async def _next_batch(self) -> list[PendingTrace] | None:
        """The next batch off the queue, or ``None`` once stopping with nothing left:
        ``batch_size`` traces, or fewer once the oldest has waited ``batch_wait``."""
        cfg = self.config
        queue = self._queue
        while True:
            timeout: float | None = None
            if not queue:
                if self._in_flight == 0:
                    self._idle.set()
                if self._stopping:
                    return None
            elif len(queue) >= cfg.batch_size or self._stopping:
                break
            else:
                timeout = cfg.batch_wait - (time.monotonic() - self._arrived[0])
                if timeout <= 0:
                    break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        batch = [queue.pop() for _ in range(min(cfg.batch_size, len(queue)))]
        for _ in batch:
            self._arrived.popleft()
        self._in_flight += len(batch)
        self.metrics.queue_depth.set(len(queue))
        self.metrics.queue_bytes.set(queue.bytes)
        return batch

    async def _run(self) -> None:
        # Two stages: while one batch is being stored and committed, the next one is
        # encoded in a worker thread. At most two encoded batches wait in between.
        encoded: asyncio.Queue[tuple[list[Encoded], list[PendingTrace]] | None]
        encoded = asyncio.Queue(maxsize=2)
        storer = asyncio.get_running_loop().create_task(self._store_stage(encoded))
        try:
            while (batch := await self._next_batch()) is not None:
                items = await asyncio.to_thread(self._encode_batch, batch)
                await encoded.put((items, batch))
        except asyncio.CancelledError:
            storer.cancel()
            raise
        await encoded.put(None)
        await storer

    async def _store_stage(
        self, encoded: asyncio.Queue[tuple[list[Encoded], list[PendingTrace]] | None]
    ) -> None:
        while (job := await encoded.get()) is not None:
            items, batch = job
            size = len(batch)
            started = time.perf_counter()
            finished = True
            try:
                if self.on_upload is not None:
                    self.on_upload(batch, items)
                await self._write_through(items)
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._stopping and self.on_done is not None:
                    finished = False  # given up at stop: the log keeps it for the next start
                else:  # never let one bad batch kill the writer
                    log.exception("writer dropped a batch of %d traces", size)
                    self.metrics.traces_dropped.labels("error").inc(size)
            finally:
                self._in_flight -= size
                if self._in_flight == 0 and not self._queue:
                    self._idle.set()
            if self.on_done is not None:
                self.on_done(batch, finished)
            seconds = time.perf_counter() - started
            self.metrics.batch_size.observe(size)
            self.metrics.batch_seconds.observe(seconds)
            if self.on_batch is not None:
                self.on_batch(size, seconds)

    async def _write_through(self, items: list[Encoded]) -> None:
        """Store every object, then commit the batch; retries until done."""
        pending = {item.key: item for item in items}
        conflicts: set[str] = set()

        async def put_pending() -> None:
            results = await asyncio.wait_for(
                self.store.put_many(
                    [(item.key, item.data) for item in pending.values()],
                    concurrency=self.config.upload_concurrency,
                ),
                self.config.io_timeout,
            )
            failures = []
            for item, error in zip(list(pending.values()), results, strict=True):
                if error is None:
                    del pending[item.key]
                    self.metrics.traces_written.labels(item.kind).inc(len(item.rows))
                elif isinstance(error, AlreadyExists):
                    # Other bytes under this key (a single trace encoded differently
                    # before a crash; a segment's key names its bytes): permanent, so
                    # retrying would stall the batch and the log.
                    del pending[item.key]
                    conflicts.add(item.key)
                    self.metrics.traces_dropped.labels("conflict").inc(len(item.rows))
                    log.error("writer: %s already holds other bytes; dropped", item.key)
                else:
                    failures.append(error)
            if failures:
                raise failures[0]

        await self._retry("store", put_pending)
        committed = Batch()
        for item in items:
            if item.key not in conflicts:
                for row in item.rows:
                    if isinstance(row, IndexRow):
                        committed.rows.append(row)
                    else:
                        committed.unmatched.append(row)
        rows = committed.rows
        if (rows or committed.unmatched) and self.pool is not None:
            pool = self.pool
            await self._retry(
                "index",
                lambda: asyncio.wait_for(commit_batch(pool, committed), self.config.io_timeout),
            )
            self.metrics.traces_indexed.inc(len(rows))
            for hook in self.on_indexed:
                try:
                    await hook(rows)
                except Exception:
                    log.exception("on_indexed hook failed")

    async def _retry(self, stage: str, attempt: Callable[[], Awaitable[Any]]) -> None:
        # One Retries per stage, shared by the batches: an outage is one line when it
        # starts and one when it ends, however many batches wait for it.
        retries = self._retries.setdefault(
            stage, Retries(f"writer {stage}", log, base=0.05, cap=self.config.max_backoff)
        )
        while True:
            try:
                await attempt()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = retries.failed(exc)
                if self._stopping and delay >= self.config.max_backoff:
                    raise
                self.metrics.writer_retries.labels(stage).inc()
                await asyncio.sleep(delay * (0.5 + random.random()))
            else:
                retries.succeeded()
                return

    # -- encoding, in a worker thread ---------------------------------------------------

    def _encode_batch(self, batch: list[PendingTrace]) -> list[Encoded]:
        objects: list[Encoded] = []
        traces: list[tuple[bytes, IndexRow]] = []
        for pending in batch:
            try:
                try:
                    frame, row = self._encode(pending)
                except (TypeError, UnicodeError) as exc:
                    if "surrogate" not in str(exc):
                        raise
                    # A string that is not UTF-8 (a lone surrogate: "\ud800" in a JSON
                    # body is one): kept with U+FFFD in its place rather than lost.
                    frame, row = self._encode(without_surrogates(pending))
            except Exception:  # one unencodable trace must not cost the whole batch
                log.exception("writer could not encode a trace of %s", pending.canvas)
                self.metrics.traces_dropped.labels("encode_error").inc()
                continue
            if isinstance(row, IndexRow):
                traces.append((frame, row))
            else:
                objects.append(Encoded(row.object_key, frame, [row]))
        return [*pack(traces, max_bytes=self.config.segment_bytes), *objects]

    def _encode(self, p: PendingTrace) -> tuple[bytes, IndexRow | StoredRequest]:
        """One trace's frame, and its row (:func:`pack` decides its object: ``key``
        and ``offset`` are set there)."""
        doc = build_trace(p, self.limits)
        data = codec.encode(doc)
        trace_id = doc["trace_id"]
        if p.kind == keys.UNMATCHED or p.handler is None:
            key = keys.unmatched_key(p.canvas, trace_id)
            return data, StoredRequest(p.canvas, p.method, p.path, p.started_ns, trace_id, key)
        handler_id = p.handler["id"]
        functions = sorted({c[C_FUNCTION] for c in p.calls if c[C_KIND] == USER}) if p.calls else []
        row = IndexRow(
            canvas=p.canvas,
            handler_id=handler_id,
            trace_id=trace_id,
            started_at=utc_datetime(p.started_ns),
            object_key="",
            size_bytes=len(data),
            sha256=hashlib.sha256(data).digest(),
            status=p.status,
            duration_ms=p.duration_ns / 1e6,
            functions=tuple(functions),
            has_error=p.error is not None,
        )
        return data, row

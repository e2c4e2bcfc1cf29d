"""The background trace writer: bounded queue in, objects then index rows out.

``submit`` is all the request path ever calls: a length check and an append. A full
queue drops the trace and counts it; the request is never slowed. The writer task takes
batches, builds and compresses the documents in a worker thread (zstd releases the
GIL), uploads the objects with bounded concurrency, and only then inserts the index
rows, so a visible index row always points at an existing object. Failures are retried
with capped exponential backoff; while the store or Postgres is down the queue holds
what it can and drops (counted) beyond its bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from runtime.recorder import C_FUNCTION, C_KIND, USER
from trace_store import codec, keys
from trace_store.commit import Batch, commit_batch
from trace_store.document import PendingTrace, TraceLimits, build_trace
from trace_store.errors import AlreadyExists, describe
from trace_store.index import IndexRow
from trace_store.spool import Spool, SpooledItem
from trace_store.timestamps import utc_datetime

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from trace_store.backends.base import ObjectStore
    from trace_store.db import Pool
    from trace_store.metrics import Metrics

log = logging.getLogger("strata.writer")


@dataclass(frozen=True, slots=True)
class WriterConfig:
    """Bounds and pacing of the writer."""

    #: Traces held in memory per queue (the gateway's and, with the writer process, the
    #: child's). 2,000 keeps RSS under 2x its sustainable value at 10x overload; the
    #: spool, not memory, absorbs outages.
    queue_traces: int = 2_000
    queue_bytes: int = 256 * 1024 * 1024
    batch_size: int = 256
    batch_wait: float = 0.02
    upload_concurrency: int = 16
    max_backoff: float = 5.0
    #: With a spool: how long a batch keeps retrying before it is parked there instead.
    spool_after: float = 2.0
    #: A store or Postgres call that has not answered by then counts as failed (a hung
    #: dependency must lead to retries and the spool, not to a writer stuck forever).
    io_timeout: float = 30.0


class _GaveUp(Exception):
    """A batch kept failing for ``spool_after`` seconds: park it in the spool."""


def _unmatched_view(pending: PendingTrace) -> PendingTrace:
    """What the unmatched summary reads of a request, without bodies or call records."""
    return PendingTrace(
        canvas=pending.canvas,
        kind=pending.kind,
        handler=None,
        started_ns=pending.started_ns,
        duration_ns=pending.duration_ns,
        method=pending.method,
        path=pending.path,
        query_string="",
        params={},
        raw_headers=(),
        body=b"",
        trace_id=pending.ensure_id(),
    )


class Writer(Protocol):
    """What the gateway uses of a writer, inline (:class:`TraceWriter`) or in a process."""

    config: WriterConfig

    def submit(self, pending: PendingTrace) -> bool: ...
    def start(self) -> None: ...
    async def stop(self, *, drain_timeout: float = 10.0) -> None: ...
    async def flush(self) -> None: ...
    @property
    def depth(self) -> int: ...


@dataclass(slots=True)
class Encoded:
    """One trace ready to store: its key, bytes and index row."""

    pending: PendingTrace
    key: str
    data: bytes
    row: IndexRow | None


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
        spool: Spool | None = None,
    ) -> None:
        self.store = store
        #: Where batches wait while the store or Postgres is down (None: memory only).
        self.spool = spool
        self._degraded = False
        self._drainer: asyncio.Task[None] | None = None
        self.pool = pool
        self.metrics = metrics
        self.limits = limits or TraceLimits()
        self.config = config or WriterConfig()
        self._queue: deque[PendingTrace] = deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._in_flight = 0
        self.on_indexed: list[Callable[[Sequence[IndexRow]], Awaitable[None]]] = []
        #: Called with (traces, seconds) after each batch (the writer process reports it).
        self.on_batch: Callable[[int, float], None] | None = None
        #: Test seam: awaited before each store put; lets a test hold the writer.
        self.before_put: Callable[[], Awaitable[None]] | None = None

    # -- the request path -------------------------------------------------------------

    def submit(self, pending: PendingTrace) -> bool:
        """Queue a finished request; ``False`` (and a counted drop) when full."""
        size = len(pending.body) + len(pending.response_body)
        if not self.has_room(1, size):
            self.metrics.traces_dropped.labels("queue_full").inc()
            return False
        self._queue.append(pending)
        self._queued_bytes += size
        self.metrics.traces_enqueued.inc()
        self._idle.clear()
        if not self._wake.is_set():
            self._wake.set()
        return True

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start the background task on the running loop (and replay a spool left over)."""
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = loop.create_task(self._run(), name="trace-writer")
        if self.spool is not None and len(self.spool) and self._drainer is None:
            self._drainer = loop.create_task(self._drain_spool(), name="trace-spool")

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
        if self._drainer is not None:
            # Parked batches stay on disk; the next start replays them.
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
            self._drainer = None

    async def flush(self) -> None:
        """Wait until everything submitted so far is stored and indexed."""
        await self._idle.wait()

    @property
    def depth(self) -> int:
        """Traces waiting in the queue."""
        return len(self._queue)

    @property
    def backlog(self) -> int:
        """Traces submitted and not yet finished: queued, encoding, storing or indexing."""
        return len(self._queue) + self._in_flight

    def has_room(self, count: int, size: int) -> bool:
        """Whether ``count`` more traces holding ``size`` body bytes fit in the queue."""
        cfg = self.config
        return (
            len(self._queue) + count <= cfg.queue_traces
            and self._queued_bytes + size <= cfg.queue_bytes
        )

    @property
    def queued_bytes(self) -> int:
        """Body bytes held by queued traces."""
        return self._queued_bytes

    # -- the background task ----------------------------------------------------------

    async def _next_batch(self) -> list[PendingTrace] | None:
        """The next batch off the queue, or ``None`` once stopping with nothing left."""
        cfg = self.config
        while not self._queue:
            if self._in_flight == 0:
                self._idle.set()
            if self._stopping:
                return None
            self._wake.clear()
            await self._wake.wait()
            # Let a burst accumulate into one batch.
            if not self._stopping and len(self._queue) < cfg.batch_size:
                await asyncio.sleep(cfg.batch_wait)
        batch = [self._queue.popleft() for _ in range(min(cfg.batch_size, len(self._queue)))]
        self._in_flight += len(batch)
        self._queued_bytes -= sum(len(p.body) + len(p.response_body) for p in batch)
        self.metrics.queue_depth.set(len(self._queue))
        self.metrics.queue_bytes.set(self._queued_bytes)
        return batch

    async def _run(self) -> None:
        # Two stages: while one batch is being stored and committed, the next one is
        # encoded in a worker thread. At most two encoded batches wait in between.
        encoded: asyncio.Queue[tuple[list[Encoded], int] | None] = asyncio.Queue(maxsize=2)
        storer = asyncio.get_running_loop().create_task(self._store_stage(encoded))
        try:
            while (batch := await self._next_batch()) is not None:
                items = await asyncio.to_thread(self._encode_batch, batch)
                await encoded.put((items, len(batch)))
        except asyncio.CancelledError:
            storer.cancel()
            raise
        await encoded.put(None)
        await storer

    async def _store_stage(self, encoded: asyncio.Queue[tuple[list[Encoded], int] | None]) -> None:
        while (job := await encoded.get()) is not None:
            items, size = job
            started = time.perf_counter()
            try:
                await self._store_and_commit(items)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one bad batch kill the writer
                log.exception("writer dropped a batch of %d traces", len(items))
                self.metrics.traces_dropped.labels("error").inc(len(items))
            finally:
                self._in_flight -= size
                if self._in_flight == 0 and not self._queue:
                    self._idle.set()
            seconds = time.perf_counter() - started
            self.metrics.batch_size.observe(size)
            self.metrics.batch_seconds.observe(seconds)
            if self.on_batch is not None:
                self.on_batch(size, seconds)

    async def _store_and_commit(self, encoded: list[Encoded]) -> None:
        items = [
            SpooledItem(
                e.pending.kind, e.key, e.data, e.row, None if e.row else _unmatched_view(e.pending)
            )
            for e in encoded
        ]
        if self.spool is None:
            await self._write_through(items, give_up_after=None)
            return
        if not self._degraded:
            try:
                await self._write_through(items, give_up_after=self.config.spool_after)
                return
            except _GaveUp as exc:
                log.warning("writer cannot write (%s); parking batches in the spool", exc)
                self._degraded = True
        await self._park(items)

    async def _park(self, items: list[SpooledItem]) -> None:
        spool = self.spool
        assert spool is not None
        if await asyncio.to_thread(spool.put, items):
            self.metrics.traces_spooled.labels("parked").inc(len(items))
        else:
            self.metrics.traces_dropped.labels("spool_full").inc(len(items))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain_spool())

    async def _drain_spool(self) -> None:
        """Replay parked batches, oldest first, once the store and Postgres answer."""
        spool = self.spool
        assert spool is not None
        delay = 0.5
        while (claimed := await asyncio.to_thread(spool.claim_oldest)) is not None:
            path, items = claimed
            try:
                await self._write_through(items, give_up_after=self.config.spool_after)
            except _GaveUp:
                await asyncio.to_thread(spool.release, path)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.max_backoff)
                continue
            await asyncio.to_thread(spool.done, path)
            self.metrics.traces_spooled.labels("replayed").inc(len(items))
            delay = 0.5
        self._degraded = False

    async def _write_through(
        self, items: list[SpooledItem], *, give_up_after: float | None
    ) -> None:
        """Store every object, then commit the batch; retries until done or given up."""
        pending = {item.key: item for item in items}
        conflicts: set[str] = set()

        async def put_pending() -> None:
            if self.before_put is not None:
                await self.before_put()
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
                    self.metrics.traces_written.labels(item.kind).inc()
                elif isinstance(error, AlreadyExists):
                    # Other bytes under this trace's key (a write torn by a crash):
                    # permanent, so retrying would stall the batch and the spool.
                    del pending[item.key]
                    conflicts.add(item.key)
                    self.metrics.traces_dropped.labels("conflict").inc()
                    log.error("writer: %s already holds other bytes; trace dropped", item.key)
                else:
                    failures.append(error)
            if failures:
                raise failures[0]

        await self._retry("store", put_pending, give_up_after)
        stored = [item for item in items if item.key not in conflicts]
        committed = Batch(
            rows=[item.row for item in stored if item.row is not None],
            unmatched=[(item.unmatched, item.key) for item in stored if item.unmatched],
        )
        rows = committed.rows
        if (rows or committed.unmatched) and self.pool is not None:
            pool = self.pool
            await self._retry(
                "index",
                lambda: asyncio.wait_for(commit_batch(pool, committed), self.config.io_timeout),
                give_up_after,
            )
            self.metrics.traces_indexed.inc(len(rows))
            for hook in self.on_indexed:
                try:
                    await hook(rows)
                except Exception:
                    log.exception("on_indexed hook failed")

    async def _retry(
        self,
        stage: str,
        attempt: Callable[[], Awaitable[Any]],
        give_up_after: float | None = None,
    ) -> None:
        delay = 0.05
        started = time.monotonic()
        while True:
            try:
                await attempt()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping and delay >= self.config.max_backoff:
                    raise
                if give_up_after is not None and time.monotonic() - started >= give_up_after:
                    raise _GaveUp(f"{stage}: {describe(exc)}") from exc
                self.metrics.writer_retries.labels(stage).inc()
                log.warning("writer %s failed (%s); retrying in %.2fs", stage, exc, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.config.max_backoff)

    # -- encoding, in a worker thread ---------------------------------------------------

    def _encode_batch(self, batch: list[PendingTrace]) -> list[Encoded]:
        encoded = []
        for pending in batch:
            try:
                encoded.append(self._encode(pending))
            except Exception:  # one unencodable trace must not cost the whole batch
                log.exception("writer could not encode a trace of %s", pending.canvas)
                self.metrics.traces_dropped.labels("encode_error").inc()
        return encoded

    def _encode(self, p: PendingTrace) -> Encoded:
        doc = build_trace(p, self.limits)
        data = codec.encode(doc)
        trace_id = doc["trace_id"]
        if p.kind == keys.UNMATCHED or p.handler is None:
            return Encoded(p, keys.unmatched_key(p.canvas, trace_id), data, None)
        handler_id = p.handler["id"]
        key = keys.trace_key(p.canvas, handler_id, trace_id)
        functions = sorted({c[C_FUNCTION] for c in p.calls if c[C_KIND] == USER}) if p.calls else []
        row = IndexRow(
            canvas=p.canvas,
            handler_id=handler_id,
            trace_id=trace_id,
            started_at=utc_datetime(p.started_ns),
            object_key=key,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).digest(),
            status=p.status,
            duration_ms=p.duration_ns / 1e6,
            functions=tuple(functions),
            has_error=p.error is not None,
        )
        return Encoded(p, key, data, row)

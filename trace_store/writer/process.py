"""The gateway side of the writer process: queue here, log, then store over there.

Python's GIL makes a writer in the gateway process (building documents, orjson, zstd,
hashing, puts, asyncpg) compete with request handling for one core. With
``STRATA_WRITER=process`` (the default) the gateway keeps only a small bounded queue and
a sender task that pickles frames of finished traces and appends them to the trace log
(:mod:`trace_store.writer.log`); ``python -m trace_store.writer.child`` reads the log and
runs the ordinary :class:`~trace_store.writer.batch_writer.TraceWriter` on the second core.

The log is the one path every trace takes, healthy or not: the writer being slow,
down, restarting or waiting for the store or Postgres only lets the log grow, and the
sender never waits for the writer. The child is told where the log ends after every
append (on its stdin, :mod:`trace_store.writer.wire` frames) and reports, as JSON lines on its
stdout, how far it has committed.

Why a plain subprocess and not :mod:`multiprocessing`: no feeder thread, no fork of a
process holding a running loop and a Postgres pool, no re-import of the gateway's
``__main__``; the child's lifetime and exit code are ours to watch.

Accounting: every submitted trace is stored or counted. Full memory queue: dropped
``queue_full``. Full log (``STRATA_LOG_BYTES``): ``log_full``. The log cannot be
written (a full or read-only disk): ``log_error``. A trace the pickler cannot carry
even tagged: ``encode_error``. A child that dies loses nothing: its successor reads on
from the committed position. The child's own counters (written, indexed, dropped,
retries) are added to this process's ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any, Final

import orjson

from trace_store.errors import ConfigError, describe
from trace_store.logs import RateLimitedLog
from trace_store.writer import wire
from trace_store.writer.child_link import ChildLink, spawn
from trace_store.writer.log import LogFull, Position, TraceLog
from trace_store.writer.queue import TraceQueue

if TYPE_CHECKING:
    from trace_store.metrics import Metrics
    from trace_store.record import PendingTrace
    from trace_store.writer.queue import WriterConfig

log = logging.getLogger("strata.writer.process")

#: Gateway-side batching: a frame goes out when this many traces wait, or after this long.
FRAME_TRACES: Final = 256
#: A frame is pickled in one call on the event loop, so it is also bounded by its work:
#: call records and body bytes (pickling a 10,000-call trace takes ~6 ms; sixteen of
#: them in one frame held the loop for 100 ms). A single trace over either bound still
#: goes alone.
FRAME_CALLS: Final = 10_000
FRAME_BODY_BYTES: Final = 4 * 1024 * 1024
FRAME_WAIT: Final = 0.004
READY_TIMEOUT: Final = 60.0
MAX_RESTART_DELAY: Final = 5.0
#: The log counts as not draining when it holds traces and nothing was committed for this long.
STALL_SECONDS: Final = 30.0


class ProcessWriter:
    """A :class:`~trace_store.writer.batch_writer.TraceWriter` fed through the trace log, its work
    run in a child process.

    Same surface as the inline writer for the gateway: :meth:`submit` (non-blocking,
    bounded, drops counted), :meth:`start`, :meth:`stop`, :meth:`flush`, :attr:`depth`
    and :attr:`config`, plus :meth:`problem` for ``/readyz``. ``on_indexed`` hooks exist
    only on the inline writer.
    """

    def __init__(
        self,
        child_config: wire.ChildConfig,
        metrics: Metrics,
        tracelog: TraceLog,
        *,
        config: WriterConfig | None = None,
    ) -> None:
        self.child_config = child_config
        self.metrics = metrics
        self.tracelog = tracelog
        self.config = config or child_config.writer
        self._queue = TraceQueue(self.config)
        self._wake = asyncio.Event()
        self._sent_all = asyncio.Event()
        self._sent_all.set()
        self._child: ChildLink | None = None
        self._child_changed = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._tokens = itertools.count()
        self._started_once = asyncio.Event()
        self._start_error: BaseException | None = None
        self._full = False
        self._progress_at = time.monotonic()
        self._append_errors = RateLimitedLog(log, per_minute=2)
        metrics.log_bytes.set_function(lambda: tracelog.held_bytes)
        metrics.log_traces.set_function(lambda: tracelog.held_traces)

    # -- the request path -------------------------------------------------------------

    def submit(self, pending: PendingTrace) -> bool:
        """Queue a finished request; ``False`` (and a counted drop) when full."""
        if not self._queue.push(pending):
            self.metrics.traces_dropped.labels("queue_full").inc()
            return False
        self.metrics.traces_enqueued.inc()
        self._sent_all.clear()
        if not self._wake.is_set():
            self._wake.set()
        return True

    @property
    def depth(self) -> int:
        """Traces held anywhere: this queue, and the log up to the committed position
        (which covers what the writer process holds)."""
        return len(self._queue) + self.tracelog.held_traces

    @property
    def queued(self) -> int:
        """Traces in this process's memory queue (not yet in the log)."""
        return len(self._queue)

    def problem(self) -> str | None:
        """Why the trace log is not healthy (``None`` when it is), for ``/readyz``."""
        tracelog = self.tracelog
        if tracelog.error is not None:
            return f"unwritable: {describe(tracelog.error)}"
        if self._full:
            return f"full: {tracelog.held_bytes} of {tracelog.max_bytes} bytes (STRATA_LOG_BYTES)"
        idle = time.monotonic() - self._progress_at
        if tracelog.held_traces and idle > STALL_SECONDS:
            return (
                f"not draining: {tracelog.held_traces} traces wait,"
                f" nothing committed for {idle:.0f} s"
            )
        return None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer process (and restart it whenever it dies) and the sender."""
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._supervise(), name="writer-process-supervisor"),
            loop.create_task(self._send_forever(), name="writer-process-sender"),
        ]

    async def wait_ready(self) -> None:
        """Wait for the first writer process to come up; fail if it cannot."""
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await self._started_once.wait()
        except TimeoutError:
            raise ConfigError("STRATA_WRITER: the writer process did not start") from None
        if self._start_error is not None:
            raise ConfigError(f"STRATA_WRITER: writer process failed: {self._start_error}")

    async def stop(self, *, drain_timeout: float = 10.0) -> None:
        """Log what is queued, let the writer process store what the log holds (up to
        ``drain_timeout``) and exit; what it could not store waits in the log."""
        if not self._tasks:
            return
        self._stopping = True
        self._wake.set()
        supervisor, sender = self._tasks
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_timeout
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(sender), drain_timeout)
        child = self._child
        if child is not None and child.alive and child.proc.stdin is not None:
            end = self.tracelog.end
            child.send("stop", end.segment, end.offset, max(0.1, deadline - loop.time()))
            with contextlib.suppress(ConnectionError):
                await child.proc.stdin.drain()
            child.proc.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(supervisor), max(0.1, deadline - loop.time()) + 2)
        except TimeoutError:
            if child is not None and child.alive:
                child.proc.kill()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.tracelog.held_traces:
            log.warning(
                "%d traces wait in the trace log for the next start", self.tracelog.held_traces
            )
        self.tracelog.close()

    async def flush(self) -> None:
        """Wait until everything submitted so far is indexed (or counted as dropped)."""
        await self._sent_all.wait()
        end = self.tracelog.end
        while True:
            child = await self._ready_child()
            token = next(self._tokens)
            answered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            child.flushes[token] = answered
            if child.send("flush", token, end.segment, end.offset) and await answered:
                return
            child.flushes.pop(token, None)
            if self._stopping:
                return
            # The child died first: its successor reads the same log; ask it.

    # -- the sender -------------------------------------------------------------------

    async def _ready_child(self) -> ChildLink:
        while True:
            child = self._child
            if child is not None and child.alive and child.ready.is_set():
                return child
            self._child_changed.clear()
            await self._child_changed.wait()

    async def _send_forever(self) -> None:
        queue = self._queue
        announced = None
        while True:
            if not queue:
                self._sent_all.set()
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                if not self._stopping and len(queue) < FRAME_TRACES:
                    await asyncio.sleep(FRAME_WAIT)  # let a burst share one frame
                continue
            batch = queue.take(FRAME_TRACES, FRAME_CALLS, FRAME_BODY_BYTES)
            ready = [wire.prepare(p) for p in batch]
            data = wire.encode_batch_fast(ready)
            if data is not None:
                frames = [(data, len(ready))]
            else:  # a trace that does not pickle as it is: tag it, off the loop
                alone, left_out = await asyncio.to_thread(wire.encode_traces_alone, ready)
                frames = [(payload, 1) for payload in alone]
                if left_out:
                    log.warning("%d traces could not be pickled even tagged", left_out)
                    self.metrics.traces_dropped.labels("encode_error").inc(left_out)
            # Off the loop: a slow or failing disk must not hold requests.
            end = await asyncio.to_thread(self._append, frames)
            if not queue:
                self._sent_all.set()
            child = self._child
            if end != announced and child is not None and child.ready.is_set():
                # Also after a failed append: the log then ends at the next segment, and
                # the writer can finish the last one and delete it (a full disk frees up).
                child.send("log", end.segment, end.offset)
                announced = end

    def _append(self, frames: list[tuple[bytes, int]]) -> Position:
        """Append ``frames`` to the log (in a worker thread); the log's end after them."""
        tracelog = self.tracelog
        for payload, traces in frames:
            was_empty = tracelog.held_traces == 0
            try:
                tracelog.append(payload, traces)
            except LogFull as exc:
                self._full = True
                self.metrics.traces_dropped.labels("log_full").inc(traces)
                self._append_errors.warning("trace log: %s; %d traces dropped", exc, traces)
                continue
            except OSError as exc:
                self.metrics.traces_dropped.labels("log_error").inc(traces)
                self._append_errors.warning(
                    "trace log: cannot append (%s); %d traces dropped", describe(exc), traces
                )
                continue
            self._full = False
            if was_empty:
                self._progress_at = time.monotonic()
        return tracelog.end

    # -- the child process ------------------------------------------------------------

    async def _supervise(self) -> None:
        delay = 0.1
        while True:
            loop = asyncio.get_running_loop()
            born = loop.time()
            try:
                child = await spawn(self.child_config, self.tracelog.end)
            except Exception as exc:
                self._start_error = exc
                self._started_once.set()
                raise
            self._child = child
            self._child_changed.set()
            await self._listen(child)
            code = await child.proc.wait()
            self._child_changed.set()
            for answered in child.flushes.values():
                if not answered.done():
                    answered.set_result(False)
            if self._stopping:
                if code != 0:
                    log.error("writer process exited with %s while draining", code)
                return
            if not child.ready.is_set() and not self._started_once.is_set():
                self._start_error = RuntimeError(f"exit status {code} before it was ready")
                self._started_once.set()
                return
            log.error(
                "writer process %d died (exit %s); restarting (%d traces wait in the log)",
                child.proc.pid,
                code,
                self.tracelog.held_traces,
            )
            self.metrics.writer_restarts.inc()
            if loop.time() - born > 30:
                delay = 0.1
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY)

    async def _listen(self, child: ChildLink) -> None:
        stdout = child.proc.stdout
        assert stdout is not None
        while line := await stdout.readline():
            try:
                message: dict[str, Any] = orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("writer process said %r", line[:200])
                continue
            event = message.get("event")
            if event == "stats":
                self._apply_stats(child, message)
            elif event == "ready":
                child.ready.set()
                self._child_changed.set()
                self._started_once.set()
                end = self.tracelog.end  # appended while it started
                child.send("log", end.segment, end.offset)
            elif event == "flushed":
                answered = child.flushes.pop(message["token"], None)
                if answered is not None and not answered.done():
                    answered.set_result(True)

    def _apply_stats(self, child: ChildLink, stats: dict[str, Any]) -> None:
        committed = child.apply_stats(self.metrics, stats)
        if committed > self.tracelog.committed:
            self._progress_at = time.monotonic()
            self._full = False  # room again; the next append tries
        self.tracelog.committed_to(committed)
        self.metrics.queue_bytes.set(self._queue.bytes + child.bytes)

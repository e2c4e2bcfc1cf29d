"""The writer process: ``python -m trace_store.writer_child``, started by the gateway.

It runs the ordinary :class:`~trace_store.writer.TraceWriter` against the gateway's
store and database, fed by frames on stdin (see :mod:`trace_store.wire`):

- ``("config", ChildConfig)`` first (the DSN travels here, not on the command line,
  where ``ps`` would show it);
- ``("batch", [wire trace, ...])``;
- ``("flush", token)``: answered with ``flushed`` once everything before it is indexed;
- ``("stop",)`` or end of input: drain the writer, report, exit 0.

It answers with JSON lines on its stdout: ``ready``, ``stats`` (cumulative counters,
sent whenever they change and at most every :data:`STATS_INTERVAL`), ``flushed`` and
``stopped``. Logs go to stderr. Backpressure is the pipe: while the writer's queue has
no room, this process stops reading, the pipe fills, and the gateway sheds (counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import orjson

from trace_store import db, gc_tuning, logs, wire
from trace_store.metrics import Metrics
from trace_store.spool import Spool
from trace_store.store_url import parse_store_url
from trace_store.writer import TraceWriter

if TYPE_CHECKING:
    from prometheus_client import Counter

log = logging.getLogger("strata.writer.child")

STATS_INTERVAL: Final = 0.1
ROOM_POLL: Final = 0.002


def counter_values(counter: Counter) -> dict[str, float]:
    """A counter's totals by its (single) label value; ``""`` when it has no label."""
    out: dict[str, float] = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[next(iter(sample.labels.values()), "")] = sample.value
    return out


class _Child:
    def __init__(self, out: IO[bytes], writer: TraceWriter) -> None:
        self.out = out
        self.writer = writer
        self.received = 0
        self.last_stats: dict[str, Any] = {}
        self.batches: list[tuple[int, float]] = []
        writer.on_batch = lambda size, seconds: self.batches.append((size, seconds))

    def emit(self, message: dict[str, Any]) -> None:
        # Lines are short and the gateway reads continuously: a blocking write is fine.
        self.out.write(orjson.dumps(message) + b"\n")

    def stats(self) -> dict[str, Any]:
        m, w = self.writer.metrics, self.writer
        return {
            "written": counter_values(m.traces_written),
            "indexed": counter_values(m.traces_indexed).get("", 0.0),
            "dropped": counter_values(m.traces_dropped),
            "retries": counter_values(m.writer_retries),
            "spooled": counter_values(m.traces_spooled),
            "depth": w.depth,
            "bytes": w.queued_bytes,
            "done": self.received - w.backlog,
        }

    def report(self, *, force: bool = False) -> None:
        stats = self.stats()
        if force or stats != self.last_stats or self.batches:
            self.last_stats = stats
            batches, self.batches = self.batches, []
            self.emit({"event": "stats", **stats, "batches": batches})

    async def report_forever(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            self.report()

    async def take(self, traces: list[wire.WireTrace]) -> None:
        # Wait for room rather than drop: not reading is what pushes back on the gateway.
        size = sum(len(t[wire.BODY]) + len(t[wire.RESPONSE_BODY]) for t in traces)
        # A short poll (the writer has no "room" event); it runs only while we are behind.
        while not self.writer.has_room(len(traces), size) and self.writer.depth:  # noqa: ASYNC110
            await asyncio.sleep(ROOM_POLL)
        for item in traces:
            self.writer.submit(wire.from_wire(item))
        self.received += len(traces)

    async def flushed(self, token: int) -> None:
        await self.writer.flush()
        self.report(force=True)
        self.emit({"event": "flushed", "token": token})


async def _read(reader: asyncio.StreamReader) -> Any:
    """The next message, or ``None`` at end of input."""
    try:
        header = await reader.readexactly(wire.HEADER.size)
        (length,) = wire.HEADER.unpack(header)
        return wire.loads(await reader.readexactly(length))
    except asyncio.IncompleteReadError:
        return None


async def run(out: IO[bytes]) -> None:
    """Serve one gateway over stdin/stdout until it says stop (or goes away)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", buffering=0)
    )
    first = await _read(reader)
    if first is None:
        return
    kind, config = first
    assert kind == "config"
    assert isinstance(config, wire.ChildConfig)
    store = parse_store_url(config.store_url)
    pool = await db.connect_pool(config.database_url, max_size=4) if config.database_url else None
    spool = Spool(Path(config.spool_dir), config.spool_bytes) if config.spool_dir else None
    writer = TraceWriter(
        store, pool, Metrics(), limits=config.limits, config=config.writer, spool=spool
    )
    writer.start()
    if config.gc_tuning:
        gc_tuning.tune()
    child = _Child(out, writer)
    child.emit({"event": "ready", "pid": os.getpid()})
    reporter = loop.create_task(child.report_forever())
    flushes: set[asyncio.Task[None]] = set()
    try:
        while (message := await _read(reader)) is not None:
            if message[0] == "batch":
                await child.take(message[1])
            elif message[0] == "flush":
                task = loop.create_task(child.flushed(message[1]))
                flushes.add(task)
                task.add_done_callback(flushes.discard)
            elif message[0] == "stop":
                break
        await writer.stop(drain_timeout=config.drain_timeout)
        await asyncio.gather(*flushes)
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        child.report(force=True)
        child.emit({"event": "stopped"})
        if pool is not None:
            await pool.close()
        await store.close()


def main() -> None:
    """Entry point of the writer process."""
    # Ctrl-C reaches the whole process group: the gateway decides when this process
    # stops (it closes our stdin after sending the rest), so the signal must not.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The protocol owns the real stdout; a stray print() anywhere goes to stderr.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    logs.configure(logging.INFO, "writer ")  # the parent has checked STRATA_LOG_FORMAT
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        runner = asyncio.run
    runner(run(out))


if __name__ == "__main__":
    main()

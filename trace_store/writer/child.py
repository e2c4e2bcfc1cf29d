"""The writer process: ``python -m trace_store.writer.child``, started by the gateway.

It reads the trace log the gateway appends to (:mod:`trace_store.writer.consumer`) and
runs the ordinary :class:`~trace_store.writer.batch_writer.TraceWriter` against the gateway's store
and database. On stdin, :mod:`trace_store.writer.wire` frames from the gateway:

- ``("config", ChildConfig)`` first (the DSN travels here, not on the command line,
  where ``ps`` would show it);
- ``("log", segment, offset)``: the log now ends there;
- ``("flush", token, segment, offset)``: answered with ``flushed`` once everything
  before that position is stored and indexed;
- ``("stop", segment, offset, seconds)`` or end of input: store what the log holds up
  to there for at most that long, commit, report, exit 0. The rest waits in the log.

It answers with JSON lines on its stdout: ``ready``, ``stats`` (cumulative counters
and the committed position, sent whenever they change and at most every
:data:`STATS_INTERVAL`), ``flushed`` and ``stopped``. Logs go to stderr.
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

from trace_store import db, gc_tuning, logs
from trace_store.backends.url import parse_store_url
from trace_store.config import Config
from trace_store.metrics import Metrics
from trace_store.writer import wire
from trace_store.writer.batch_writer import TraceWriter
from trace_store.writer.consumer import LogConsumer
from trace_store.writer.log import LogReader, Position

if TYPE_CHECKING:
    from prometheus_client import Counter

log = logging.getLogger("strata.writer.child")

STATS_INTERVAL: Final = 0.1


def counter_values(counter: Counter) -> dict[str, float]:
    """A counter's totals by its (single) label value; ``""`` when it has no label."""
    out: dict[str, float] = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[next(iter(sample.labels.values()), "")] = sample.value
    return out


class _Child:
    def __init__(self, out: IO[bytes], writer: TraceWriter, consumer: LogConsumer) -> None:
        self.out = out
        self.writer = writer
        self.consumer = consumer
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
            "depth": w.depth,
            "bytes": w.queued_bytes,
            "committed": list(self.consumer.committed),
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

    async def flushed(self, token: int, end: Position) -> None:
        await self.consumer.wait_caught_up(end)  # every frame before it committed
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
    """Serve one gateway until it says stop (or goes away)."""
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
    writer = TraceWriter(store, pool, Metrics(), limits=config.limits, config=config.writer)
    consumer = LogConsumer(LogReader(Path(config.log_dir)), writer)
    writer.start()
    if config.gc_tuning:
        gc_tuning.tune()
    child = _Child(out, writer, consumer)
    child.emit({"event": "ready", "pid": os.getpid()})
    reporter = loop.create_task(child.report_forever())
    reading = loop.create_task(consumer.run())
    flushes: set[asyncio.Task[None]] = set()
    drain = config.drain_timeout
    try:
        while (message := await _read(reader)) is not None:
            if message[0] == "log":
                consumer.extend(Position(message[1], message[2]))
            elif message[0] == "flush":
                task = loop.create_task(child.flushed(message[1], Position(*message[2:4])))
                flushes.add(task)
                task.add_done_callback(flushes.discard)
            elif message[0] == "stop":
                end, drain = Position(message[1], message[2]), message[3]
                consumer.extend(end)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(consumer.wait_caught_up(end), drain / 2)
                break
        consumer.stop()
        await reading
        await writer.stop(drain_timeout=drain / 2)
        for task in flushes:
            task.cancel()
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
    logs.configure(logging.INFO, Config(), "writer ")  # the parent has checked STRATA_LOG_FORMAT
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        runner = asyncio.run
    runner(run(out))


if __name__ == "__main__":
    main()

"""One incarnation of the writer process, as the gateway sees it: how it is started,
how messages reach it, and what it has reported (see :mod:`trace_store.writer.process`,
which supervises incarnations, and :mod:`trace_store.writer.child`, the other end)."""

from __future__ import annotations

import asyncio
import pickle
import sys
from typing import TYPE_CHECKING, Any

from trace_store.writer import wire
from trace_store.writer.log import Position

if TYPE_CHECKING:
    from prometheus_client import Counter

    from trace_store.metrics import Metrics
    from trace_store.writer.wire import ChildConfig


async def spawn(config: ChildConfig, log_end: Position) -> ChildLink:
    """Start ``python -m trace_store.writer.child``, hand it ``config`` and tell it where
    the log ends."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "trace_store.writer.child",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=None,  # the child's logs go where ours go
    )
    child = ChildLink(proc)
    assert proc.stdin is not None
    # Our own dataclasses: the plain pickler (the safe one is for canvas values).
    proc.stdin.write(wire.frame(pickle.dumps(("config", config))))
    child.send("log", log_end.segment, log_end.offset)
    return child


class ChildLink:
    """One incarnation of the writer process and what it has told us."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.ready = asyncio.Event()
        self.depth = 0
        self.bytes = 0
        self.seen: dict[tuple[str, str], float] = {}
        self.flushes: dict[int, asyncio.Future[bool]] = {}

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and self.proc.stdin is not None

    def send(self, *message: Any) -> bool:
        stdin = self.proc.stdin
        if not self.alive or stdin is None or stdin.is_closing():
            return False
        stdin.write(wire.frame(wire.dumps(message)))
        return True

    def apply_stats(self, metrics: Metrics, stats: dict[str, Any]) -> Position:
        """Add what a ``stats`` report counts beyond the previous one to ``metrics``;
        returns the log position the child has committed."""
        # The child reports cumulative totals; ours add the increase since its last report.
        m = metrics
        counters: tuple[tuple[str, Counter, dict[str, float]], ...] = (
            ("written", m.traces_written, stats["written"]),
            ("indexed", m.traces_indexed, {"": stats["indexed"]}),
            ("dropped", m.traces_dropped, stats["dropped"]),
            ("retries", m.writer_retries, stats["retries"]),
        )
        for name, counter, values in counters:
            for label, value in values.items():
                delta = value - self.seen.get((name, label), 0.0)
                if delta > 0:
                    (counter.labels(label) if label else counter).inc(delta)
                    self.seen[(name, label)] = value
        for size, seconds in stats.get("batches", ()):
            m.batch_size.observe(size)
            m.batch_seconds.observe(seconds)
        self.depth = int(stats["depth"])
        self.bytes = int(stats["bytes"])
        return Position(*stats["committed"])

"""Helpers shared by the pins, retention and lifecycle tests: traces written through the
real writer and commit path, index rows for direct pin updates, fault-injecting stores."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from trace_store import keys
from trace_store.backends.base import ObjectStore
from trace_store.backends.memory import MemoryStore
from trace_store.db.index import IndexRow
from trace_store.document.ids import uuid7
from trace_store.metrics import Metrics
from trace_store.record import PendingTrace
from trace_store.writer.batch_writer import TraceWriter
from trace_store.writer.queue import WriterConfig

if TYPE_CHECKING:
    from trace_store.db import Pool

CANVAS = "shop"


def pending(canvas: str, handler: str, at: datetime) -> PendingTrace:
    """A finished request of ``handler`` that started at ``at``."""
    return PendingTrace(
        canvas=canvas,
        kind=keys.TRACES,
        handler={"id": handler, "kind": "http", "method": "GET", "route": f"/{handler}"},
        started_ns=int(at.timestamp() * 1e9),
        duration_ns=1_000_000,
        method="GET",
        path=f"/{handler}",
        query_string="",
        params={},
        raw_headers=[(b"accept", b"*/*")],
        body=b"",
        status=200,
        response_body=b'{"ok": true}',
    )


async def write_traces(store: ObjectStore, pool: Pool, traces: Sequence[PendingTrace]) -> None:
    """Store and index ``traces`` through the real writer (objects, then one commit)."""
    writer = TraceWriter(store, pool, Metrics(), config=WriterConfig(batch_wait=0.05))
    writer.start()
    for trace in traces:
        assert writer.submit(trace)
    await writer.flush()
    await writer.stop()


def series(handler: str, count: int, *, start: datetime | None = None) -> list[PendingTrace]:
    """``count`` requests of one handler, a minute apart, ending about now."""
    start = start or datetime.now(UTC) - timedelta(minutes=count)
    return [pending(CANVAS, handler, start + timedelta(minutes=i)) for i in range(count)]


def trace_ids(traces: Sequence[PendingTrace]) -> list[str]:
    """Trace ids in the given order (assigned on first use, like the writer does)."""
    return [trace.ensure_id() for trace in traces]


def index_row(canvas: str, handler: str, at: datetime) -> IndexRow:
    """An index row as the writer makes it, for an object at the usual key."""
    trace_id = uuid7(int(at.timestamp() * 1e9))
    return IndexRow(
        canvas=canvas,
        handler_id=handler,
        trace_id=trace_id,
        started_at=at,
        object_key=keys.trace_key(canvas, handler, trace_id),
        size_bytes=1,
        sha256=b"\0" * 32,
        status=200,
        duration_ms=1.0,
        functions=(),
        has_error=False,
    )


def unmatched_key(canvas: str = CANVAS) -> str:
    """A fresh key under the unmatched prefix."""
    return keys.unmatched_key(canvas, str(uuid.uuid4()))


class FaultyStore(MemoryStore):
    """A memory store whose pin/unpin calls fail on demand, before or after they take
    effect (a crash before the retag, or after the retag and before the ack)."""

    def __init__(self) -> None:
        super().__init__()
        #: Outcomes of the next pin/unpin calls: "ok", "before" or "after".
        self.faults: list[str] = []
        self.calls = 0

    def _fault(self) -> str:
        self.calls += 1
        return self.faults.pop(0) if self.faults else "ok"

    async def _pin(self, key: str) -> None:
        await self._change(key, True)

    async def _unpin(self, key: str) -> None:
        await self._change(key, False)

    async def _change(self, key: str, pinned: bool) -> None:
        fault = self._fault()
        if fault == "before":
            raise ConnectionError(f"injected failure before {'pin' if pinned else 'unpin'}")
        self._object(key).pinned = pinned
        if fault == "after":
            raise ConnectionError("injected failure after the change, before the ack")


class LeaseStore(MemoryStore):
    """A memory store with GCS's pin semantics: pins are leases, unpin writes nothing."""

    pins_are_leases = True

    def __init__(self) -> None:
        super().__init__()
        self.leases: dict[str, list[datetime]] = {}

    async def _pin(self, key: str) -> None:
        self._object(key)
        self.leases.setdefault(key, []).append(datetime.now(UTC))

    async def _unpin(self, key: str) -> None:
        self._object(key)

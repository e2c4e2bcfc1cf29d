"""The index stores and returns rows; migrations are idempotent."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from datetime import UTC, datetime

from trace_store import db
from trace_store.db import index
from trace_store.document.ids import uuid7


def _row(canvas: str, handler: str, started_ns: int) -> index.IndexRow:
    trace_id = uuid7(started_ns)
    return index.IndexRow(
        canvas=canvas,
        handler_id=handler,
        trace_id=trace_id,
        started_at=datetime.fromtimestamp(started_ns / 1e9, UTC),
        object_key=f"traces/{canvas}/{handler}/{trace_id}.json.zst",
        size_bytes=10,
        sha256=hashlib.sha256(b"x").digest(),
        status=200,
        duration_ms=1.5,
        functions=("a", "b"),
        has_error=False,
    )


async def test_insert_batch_is_idempotent_and_listed_newest_first(pool: db.Pool) -> None:
    now = time.time_ns()
    rows = [_row("shop", "h", now + i * 2_000_000) for i in range(5)]
    assert await index.insert_rows(pool, rows) == 5
    assert await index.insert_rows(pool, rows) == 0  # a retried batch changes nothing
    listed = await index.list_traces(pool, "shop", "h", limit=3)
    assert [r.trace_id for r in listed] == [r.trace_id for r in reversed(rows)][:3]
    rest = await index.list_traces(pool, "shop", "h", limit=3, before=listed[-1].trace_id)
    assert [r.trace_id for r in rest] == [rows[1].trace_id, rows[0].trace_id]
    found = await index.get_trace(pool, "shop", rows[2].trace_id)
    assert found == rows[2]
    assert await index.get_trace(pool, "other", rows[2].trace_id) is None


async def test_migrate_twice_applies_nothing_the_second_time(pool: db.Pool) -> None:
    async with pool.acquire() as conn:
        assert await db.migrate(conn) == []
        partitions = await conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'traces'::regclass"
        )
    assert partitions >= 2  # default + today's


async def test_every_column_survives_the_json_batch_exactly(pool: db.Pool) -> None:
    # Index rows travel as one JSON parameter: awkward function names (qualnames with
    # <locals>, quotes, commas, braces, non-ASCII), no functions at all, a missing
    # status, an error flag and a sub-millisecond duration must all come back unchanged.
    now = time.time_ns()
    odd = replace(
        _row("shop", "h", now),
        functions=("outer.<locals>.inner", 'say "hi"', "a,b", "{x}", "naïve", "\\"),
        status=None,
        has_error=True,
        duration_ms=0.25,
    )
    bare = replace(_row("shop", "h", now + 2_000_000), functions=(), status=599)
    assert await index.insert_rows(pool, [odd, bare]) == 2
    assert await index.get_trace(pool, "shop", odd.trace_id) == odd
    assert await index.get_trace(pool, "shop", bare.trace_id) == bare

"""Index rows committed by ``COPY`` (issue 19): exact columns, and idempotent commits.

``commit_batch`` copies a batch's rows straight into ``traces`` and, when some are there
already, rolls back and commits again with ``insert_rows`` (``ON CONFLICT DO NOTHING``).
The retry tests fail if either half of that goes: the last two show it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from unittest import mock

import asyncpg
import pytest

from tests.pin_support import CANVAS, index_row
from trace_store import db, keys
from trace_store.db import index
from trace_store.db.index import AlreadyIndexed, IndexRow
from trace_store.writer import commit
from trace_store.writer.commit import Batch, commit_batch

NOW = datetime.now(UTC)


def _segment(handler: str, count: int, start: datetime) -> list[IndexRow]:
    """``count`` traces of one handler in one segment, as the writer indexes them."""
    rows = [index_row(CANVAS, handler, start + timedelta(milliseconds=3 * i)) for i in range(count)]
    key = keys.segment_key(CANVAS, handler, rows[-1].trace_id, "0123456789abcdef")
    return [
        replace(row, object_key=key, offset=100 * i, size_bytes=100) for i, row in enumerate(rows)
    ]


def _batch() -> list[IndexRow]:
    return [
        *_segment("a", 6, NOW - timedelta(minutes=5)),
        *_segment("b", 3, NOW - timedelta(minutes=4)),
        index_row(CANVAS, "c", NOW - timedelta(minutes=3)),  # a single-trace object
    ]


async def _duplicated(pool: db.Pool) -> int:
    """Traces with more than one index row."""
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM traces GROUP BY canvas, trace_id"
            " HAVING count(*) > 1) AS d"
        )
    )


async def test_a_retried_commit_leaves_one_row_per_trace(pool: db.Pool) -> None:
    rows = _batch()
    await commit_batch(pool, Batch(rows=rows))
    await commit_batch(pool, Batch(rows=rows))  # the writer's retry after a lost ack
    assert await pool.fetchval("SELECT count(*) FROM traces") == len(rows)
    assert await _duplicated(pool) == 0
    listed = await index.list_traces(pool, CANVAS, "a", limit=10)
    assert [r.trace_id for r in listed] == [r.trace_id for r in reversed(rows[:6])]


async def test_a_partly_indexed_batch_commits_the_rest(pool: db.Pool) -> None:
    rows = _batch()
    await commit_batch(pool, Batch(rows=rows[:4]))
    await commit_batch(pool, Batch(rows=rows))
    assert await pool.fetchval("SELECT count(*) FROM traces") == len(rows)
    assert await _duplicated(pool) == 0
    # The pins followed the whole batch, as if it had been committed once.
    pinned = {r["trace_id"] for r in await pool.fetch("SELECT trace_id::text FROM pins")}
    assert pinned == {r.trace_id for r in rows}


async def test_a_batch_holding_a_row_twice_indexes_it_once(pool: db.Pool) -> None:
    row = index_row(CANVAS, "a", NOW)
    await commit_batch(pool, Batch(rows=[row, row]))
    assert await pool.fetchval("SELECT count(*) FROM traces") == 1


async def test_every_column_survives_the_copy_exactly(pool: db.Pool) -> None:
    segment = _segment("a", 2, NOW)
    odd = replace(
        segment[0],
        functions=("outer.<locals>.inner", 'say "hi"', "a,b", "{x}", "naïve", "\\", "NULL"),
        status=None,
        has_error=True,
        duration_ms=0.25,
        adopted=True,
    )
    bare = replace(segment[1], functions=(), status=599, sha256=bytes(range(32)))
    whole = replace(index_row(CANVAS, "b", NOW), offset=None, size_bytes=2**31 - 1)
    async with pool.acquire() as conn, conn.transaction():
        assert await index.copy_rows(conn, [odd, bare, whole]) == 3
    for row in (odd, bare, whole):
        # get_trace leaves ``adopted`` out (lists do): compare it on its own.
        assert await index.get_trace(pool, CANVAS, row.trace_id) == replace(row, adopted=False)
        adopted = await pool.fetchval(
            "SELECT adopted FROM traces WHERE trace_id = $1::uuid", row.trace_id
        )
        assert adopted is row.adopted


async def test_copy_refuses_a_row_already_indexed(pool: db.Pool) -> None:
    row = index_row(CANVAS, "a", NOW)
    await commit_batch(pool, Batch(rows=[row]))
    async with pool.acquire() as conn:
        with pytest.raises(AlreadyIndexed):
            async with conn.transaction():
                await index.copy_rows(conn, [row])


async def test_without_the_fallback_a_retry_fails(pool: db.Pool) -> None:
    rows = _batch()
    await commit_batch(pool, Batch(rows=rows))
    with mock.patch.object(commit, "insert_rows", index.copy_rows), pytest.raises(AlreadyIndexed):
        await commit_batch(pool, Batch(rows=rows))


async def test_without_on_conflict_a_retry_fails(pool: db.Pool) -> None:
    rows = _batch()
    await commit_batch(pool, Batch(rows=rows))
    plain = index._INSERT.replace("ON CONFLICT DO NOTHING", "")
    assert plain != index._INSERT
    with (
        mock.patch.object(index, "_INSERT", plain),
        pytest.raises(asyncpg.UniqueViolationError),
    ):
        await commit_batch(pool, Batch(rows=rows))
    assert await pool.fetchval("SELECT count(*) FROM traces") == len(rows)

"""What one writer batch commits to Postgres, in one transaction.

The writer calls :func:`commit_batch` after every object of the batch is in the store.
Everything the batch changes in Postgres happens here, atomically: the index rows (the
commit markers), and what derives from them. A retry after a lost acknowledgement
re-runs the whole function; every step is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trace_store.db import notify, pins, unmatched
from trace_store.db.index import AlreadyIndexed, copy_rows, insert_rows

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from trace_store.db import Connection, Pool
    from trace_store.db.index import IndexRow
    from trace_store.db.unmatched import StoredRequest


@dataclass(slots=True)
class Batch:
    """One writer batch after its objects were stored."""

    #: Index rows of handler traces, one per stored base object.
    rows: list[IndexRow] = field(default_factory=list)
    #: Unmatched (404) requests whose objects were stored.
    unmatched: list[StoredRequest] = field(default_factory=list)


async def commit_batch(pool: Pool, batch: Batch) -> None:
    """Commit everything ``batch`` changes in Postgres in one transaction.

    The index rows go in by ``COPY`` (:func:`~trace_store.db.index.copy_rows`), which
    fails on a row already present. That happens only when some of the batch is
    indexed already (above all the writer's retry of a batch whose commit succeeded
    but whose acknowledgement was lost), so then the whole transaction is rolled back
    and run again with the statement that skips present rows: a second transaction on
    the rare retry instead of extra work in every batch.
    """
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                await write_batch(conn, batch, copy_rows)
        except AlreadyIndexed:
            async with conn.transaction():
                await write_batch(conn, batch, insert_rows)


async def write_batch(
    conn: Connection,
    batch: Batch,
    insert: Callable[[Connection, Sequence[IndexRow]], Awaitable[int]],
) -> None:
    """What :func:`commit_batch` writes, in the caller's transaction, the index rows
    inserted by ``insert`` (``bench.index_commit`` compares the two inserts with it)."""
    # The rows first: everything after derives from them, and a conflict aborts the
    # transaction before anything else was done in it.
    await insert(conn, batch.rows)
    await pins.update_pins(conn, batch.rows)
    await unmatched.record(conn, batch.unmatched)
    await notify.publish_many(conn, [(r.canvas, "trace", r.summary()) for r in batch.rows])

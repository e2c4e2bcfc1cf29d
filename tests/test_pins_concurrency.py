"""Pin changes under concurrency cannot deadlock (issue 14, acceptance 6).

Two writers commit batches (each new trace pins itself and unpins its handler's 11th
latest) while the pin outbox applies the changes and lease renewal rewrites every
pin's lease, all against one real Postgres, for more than 100,000 pin changes. Postgres
reported deadlocks between the writer's ``DELETE FROM pins`` and the ``UPDATE pins SET
leased_at`` of the outbox and the renewal, which locked the same rows in another order.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import timedelta

from trace_store import db, keys
from trace_store.backends.memory import MemoryStore
from trace_store.db.index import IndexRow
from trace_store.db.outbox import PinOutbox, renew_leases
from trace_store.db.pins import pinned_keys
from trace_store.document.ids import uuid7
from trace_store.timestamps import utc_datetime
from trace_store.writer.commit import Batch, commit_batch

HANDLERS = ("a", "b", "c", "d")
TRACES = 51_000  # each pins itself and (past the first 10) unpins one: ~102,000 changes
BATCH = 8  # each writer has two handlers: four traces a handler, each newer than the last


def _row(handler: str, started_ns: int) -> IndexRow:
    trace_id = uuid7(started_ns)
    key = keys.trace_key("shop", handler, trace_id)
    return IndexRow(
        canvas="shop",
        handler_id=handler,
        trace_id=trace_id,
        started_at=utc_datetime(started_ns),
        object_key=key,
        size_bytes=10,
        sha256=hashlib.sha256(key.encode()).digest(),
        status=200,
        duration_ms=1.0,
        functions=(),
        has_error=False,
    )


async def test_writers_outbox_and_renewal_never_deadlock(database_url: str) -> None:
    pool = await db.connect_pool(database_url, max_size=8)
    store = MemoryStore()
    base = time.time_ns()
    rows = [
        _row(HANDLERS[i % len(HANDLERS)], base + i * 1_000_000) for i in range(TRACES)
    ]  # 1 ms apart: uuid7 orders by ms
    for row in rows:
        await store.put_new(row.object_key, b"{}")
    # Each writer moves its own handlers' pins, so every trace is its handler's newest:
    # it pins itself and unpins the 11th. The outbox and the renewal touch all of them.
    mine = [[r for r in rows if r.handler_id in HANDLERS[w::2]] for w in range(2)]
    batches = [[part[i : i + BATCH] for i in range(0, len(part), BATCH)] for part in mine]
    writing = True
    applied = 0

    async def writer(mine: list[list[IndexRow]]) -> None:
        for batch in mine:
            await commit_batch(pool, Batch(rows=batch))

    async def outbox() -> None:
        nonlocal applied
        worker = PinOutbox(pool, store, batch_size=2000)
        while True:
            done = (await worker.run_once()).entries
            applied += done
            if not done:
                if not writing:
                    return
                await asyncio.sleep(0.01)

    async def renewal() -> None:
        while writing:
            await renew_leases(pool, store, older_than=timedelta(milliseconds=20))
            await asyncio.sleep(0.005)

    try:
        helpers = [asyncio.create_task(outbox()), asyncio.create_task(renewal())]
        await asyncio.gather(writer(batches[0]), writer(batches[1]))
        writing = False
        await asyncio.gather(*helpers)  # any DeadlockDetectedError surfaces here
        # Every change queued an outbox row; its id sequence counts them (nothing rolled back).
        changes = await pool.fetchval(
            "SELECT last_value FROM pg_sequences"
            " WHERE sequencename = pg_get_serial_sequence('pin_outbox', 'id')::regclass::text"
        )
        left = await pool.fetchval("SELECT count(*) FROM pin_outbox")
        assert changes >= 100_000
        assert (applied, left) == (changes, 0)
        latest = {
            row.object_key
            for handler in HANDLERS
            for row in sorted(
                (r for r in rows if r.handler_id == handler), key=lambda r: r.trace_id
            )[-10:]
        }
        assert await pinned_keys(pool) == latest
        # Every pin reached the store. (A renewal that read a pin just before it moved
        # may write it once more: on GCS, where renewal runs, that lease then lapses.)
        assert latest <= {k for k, stored in store.objects.items() if stored.pinned}
        assert await pool.fetchval("SELECT count(*) FROM pin_outbox") == 0
    finally:
        await pool.close()

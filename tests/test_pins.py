"""Pins and their outbox against a real Postgres and memory stores (SPEC §10)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from unittest import mock

import pytest

from lifecycle_policies.policy import Policy
from tests.pin_support import CANVAS, FaultyStore, LeaseStore, index_row
from trace_store.backends.memory import MemoryStore
from trace_store.db import pins
from trace_store.db.index import IndexRow, list_traces
from trace_store.db.outbox import OutboxPass, PinOutbox, renew_leases
from trace_store.writer.commit import Batch, commit_batch

if TYPE_CHECKING:
    from trace_store.db import Pool

NOW = datetime.now(UTC)


async def _stored(store: MemoryStore, rows: list[IndexRow]) -> list[IndexRow]:
    for row in rows:
        await store.put_new(row.object_key, b"{}")
    return rows


def _rows(
    handler: str, count: int, *, start: datetime = NOW - timedelta(hours=1)
) -> list[IndexRow]:
    return [index_row(CANVAS, handler, start + timedelta(seconds=i)) for i in range(count)]


async def _db_pins(pool: Pool) -> set[str]:
    return await pins.pinned_keys(pool)


def _store_pins(store: MemoryStore) -> set[str]:
    return {key for key, stored in store.objects.items() if stored.pinned}


async def test_only_the_batch_survivors_are_pinned(pool: Pool) -> None:
    store = MemoryStore()
    first = await _stored(store, _rows("busy", 25))
    await commit_batch(pool, Batch(rows=first))
    newest = {row.object_key for row in first[-10:]}
    assert await _db_pins(pool) == newest
    queued = await pool.fetch("SELECT object_key FROM pin_outbox")
    assert sorted(r["object_key"] for r in queued) == sorted(newest)  # 10 entries, not 25

    later = await _stored(store, _rows("busy", 3, start=NOW - timedelta(minutes=1)))
    await commit_batch(pool, Batch(rows=later))
    expected = {row.object_key for row in (first + later)[-10:]}
    assert await _db_pins(pool) == expected
    assert await pool.fetchval("SELECT count(*) FROM pin_outbox") == 10 + 6  # 3 in, 3 out


async def test_a_batch_committed_again_changes_nothing(pool: Pool) -> None:
    store = MemoryStore()
    rows = await _stored(store, _rows("get_user", 12))
    await commit_batch(pool, Batch(rows=rows))
    before = await _db_pins(pool)
    await commit_batch(pool, Batch(rows=rows))  # the writer's retry after a lost ack
    assert await _db_pins(pool) == before
    assert await pool.fetchval("SELECT count(*) FROM pin_outbox") == 10


async def test_the_outbox_makes_the_store_follow_the_database(pool: Pool) -> None:
    store = MemoryStore()
    outbox = PinOutbox(pool, store)
    for start in range(0, 30, 4):
        rows = await _stored(store, _rows("h", 4, start=NOW - timedelta(minutes=60 - start)))
        await commit_batch(pool, Batch(rows=rows))
    await outbox.drain()
    assert _store_pins(store) == await _db_pins(pool)
    assert len(_store_pins(store)) == 10
    assert await outbox.pending() == 0


async def test_failed_store_calls_stay_queued_and_are_retried(pool: Pool) -> None:
    store = FaultyStore()
    outbox = PinOutbox(pool, store, retry_delay=timedelta(0))
    rows = await _stored(store, _rows("h", 2))
    await commit_batch(pool, Batch(rows=rows))
    store.faults = ["before", "after"]
    result = await outbox.run_once()
    assert result.failed == 2
    queued = await pool.fetch("SELECT attempts, last_error FROM pin_outbox ORDER BY id")
    assert [r["attempts"] for r in queued] == [1, 1]
    assert all("injected failure" in r["last_error"] for r in queued)
    await outbox.drain()
    assert await outbox.pending() == 0
    assert _store_pins(store) == {row.object_key for row in rows}


async def test_failed_entries_back_off(pool: Pool) -> None:
    store = FaultyStore()
    outbox = PinOutbox(pool, store, retry_delay=timedelta(minutes=1))
    rows = await _stored(store, _rows("h", 1))
    await commit_batch(pool, Batch(rows=rows))
    store.faults = ["before"]
    assert (await outbox.run_once()).failed == 1
    assert (await outbox.run_once()).entries == 0  # not due for a minute
    assert await outbox.pending() == 1


async def _commit_one(pool: Pool, store: MemoryStore, start: datetime = NOW) -> IndexRow:
    (row,) = await _stored(store, _rows("h", 1, start=start))
    await commit_batch(pool, Batch(rows=[row]))
    return row


async def test_a_pin_withdrawn_before_the_worker_ran_is_never_applied(pool: Pool) -> None:
    store = FaultyStore()  # counts its pin/unpin calls
    outbox = PinOutbox(pool, store)
    await pins.store_policy(pool, Policy(keep_latest=1))
    old = await _commit_one(pool, store, NOW - timedelta(hours=2))
    new = await _commit_one(pool, store)  # displaces `old` before the worker ran
    result = await outbox.run_once()
    assert (result.entries, result.requests, result.never_applied) == (3, 1, 1)
    assert store.calls == 1  # pin `new`; the store never saw `old` pinned
    assert _store_pins(store) == {new.object_key}
    assert store.objects[old.object_key].pinned is False  # a stale entry pinned nothing
    assert await outbox.pending() == 0


async def test_a_pass_that_pinned_but_did_not_commit_is_undone_later(pool: Pool) -> None:
    # The store took the pin, then the pass's transaction was lost: its entry is still
    # queued and looks untouched. When the pin is withdrawn, the unpin must still go
    # out, or the object would never expire.
    store = FaultyStore()
    outbox = PinOutbox(pool, store)
    await pins.store_policy(pool, Policy(keep_latest=1))
    old = await _commit_one(pool, store, NOW - timedelta(hours=2))
    apply_all = PinOutbox._apply_all

    async def apply_then_crash(*args: object) -> object:
        await apply_all(*args)  # type: ignore[arg-type]
        raise ConnectionError("connection lost before the pass committed")

    with (
        mock.patch.object(PinOutbox, "_apply_all", apply_then_crash),
        pytest.raises(ConnectionError),
    ):
        await outbox.run_once()
    assert _store_pins(store) == {old.object_key}
    assert await outbox.pending() == 1  # rolled back: still queued

    new = await _commit_one(pool, store)
    await outbox.drain()
    assert _store_pins(store) == {new.object_key}
    assert store.objects[old.object_key].pinned is False


async def test_a_failure_between_pin_steps_rolls_the_whole_batch_back(pool: Pool) -> None:
    store = MemoryStore()
    rows = await _stored(store, _rows("h", 3))
    with (
        mock.patch.object(pins, "queue", side_effect=ConnectionError("crash")),
        pytest.raises(ConnectionError),
    ):
        await commit_batch(pool, Batch(rows=rows))
    assert await pool.fetchval("SELECT count(*) FROM traces") == 0
    assert await _db_pins(pool) == set()
    await commit_batch(pool, Batch(rows=rows))  # the writer retries the batch
    assert await _db_pins(pool) == {row.object_key for row in rows}
    assert await pool.fetchval("SELECT count(*) FROM pin_outbox") == 3


async def test_a_missing_object_is_acknowledged(pool: Pool) -> None:
    store = MemoryStore()
    rows = _rows("h", 1)  # indexed, but the object is gone (expired before the pin)
    await commit_batch(pool, Batch(rows=rows))
    outbox = PinOutbox(pool, store)
    assert (await outbox.run_once()).failed == 0
    assert await outbox.pending() == 0


async def test_changing_keep_latest_rebuilds_the_pins(pool: Pool) -> None:
    store = MemoryStore()
    rows = await _stored(store, _rows("h", 12))
    await commit_batch(pool, Batch(rows=rows))
    assert await pins.store_policy(pool, Policy(keep_latest=3))
    assert await _db_pins(pool) == {row.object_key for row in rows[-3:]}
    assert await pins.store_policy(pool, Policy(keep_latest=5))
    assert await _db_pins(pool) == {row.object_key for row in rows[-5:]}
    assert not await pins.store_policy(pool, Policy(keep_latest=5, traces_retain_days=9))
    outbox = PinOutbox(pool, store)
    await outbox.drain()
    assert _store_pins(store) == {row.object_key for row in rows[-5:]}


async def test_pinned_flag_in_listings_follows_the_pins(pool: Pool) -> None:
    store = MemoryStore()
    rows = await _stored(store, _rows("h", 13))
    await commit_batch(pool, Batch(rows=rows))
    listed = await list_traces(pool, CANVAS, "h", limit=50)
    assert [row.trace_id for row in listed] == [row.trace_id for row in reversed(rows)]
    assert [row.pinned for row in listed] == [True] * 10 + [False] * 3


async def test_on_a_lease_store_fresh_pins_and_unpins_cost_no_request(pool: Pool) -> None:
    store = LeaseStore()
    rows = await _stored(store, _rows("h", 14))
    await commit_batch(pool, Batch(rows=rows[:7]))
    await commit_batch(pool, Batch(rows=rows[7:]))
    outbox = PinOutbox(pool, store, lease_fresh_for=timedelta(hours=6))
    result = await outbox.run_once()
    assert result.entries == 10 + 4 + 4
    assert result.requests == 0
    assert store.leases == {}

    # Leases older than the renewal interval are renewed, the others left alone.
    stale = [row.object_key for row in rows[-3:]]
    await pool.execute(
        "UPDATE pins SET leased_at = now() - interval '2 days' WHERE object_key = ANY($1)", stale
    )
    renewed = await renew_leases(pool, store, older_than=timedelta(days=1))
    assert renewed == 3
    assert set(store.leases) == set(stale)
    assert await renew_leases(pool, store, older_than=timedelta(days=1)) == 0


async def test_two_canvases_do_not_share_pins(pool: Pool) -> None:
    store = MemoryStore()
    a = [index_row("a", "h", NOW - timedelta(seconds=i)) for i in range(12)]
    b = [index_row("b", "h", NOW - timedelta(seconds=i)) for i in range(2)]
    await commit_batch(pool, Batch(rows=await _stored(store, a + b)))
    assert len(await _db_pins(pool)) == 12
    assert str(uuid.UUID(b[0].trace_id)) in {
        r.trace_id for r in await list_traces(pool, "b", "h", limit=5)
    }


class _HangingPins(MemoryStore):
    """A store whose pin calls wait until released (a hung store, for as long as a test
    needs)."""

    def __init__(self) -> None:
        super().__init__()
        self.calling = asyncio.Event()
        self.release = asyncio.Event()

    async def _pin(self, key: str) -> None:
        self.calling.set()
        await self.release.wait()
        await super()._pin(key)


async def _open_transactions(pool: Pool) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
        )
    )


async def test_no_transaction_stays_open_while_the_store_is_called(pool: Pool) -> None:
    # A pass used to hold a transaction (and its advisory lock) across every store call
    # it made: a hung store kept it open for the store's timeouts, call after call.
    store = _HangingPins()
    rows = await _stored(store, _rows("h", 3))
    await commit_batch(pool, Batch(rows=rows))
    passing = asyncio.create_task(PinOutbox(pool, store).run_once())
    try:
        await asyncio.wait_for(store.calling.wait(), 5)
        assert await _open_transactions(pool) == 0
        # The pass still excludes other workers while it runs.
        assert await PinOutbox(pool, MemoryStore()).run_once() == OutboxPass()
    finally:
        store.release.set()
    result = await asyncio.wait_for(passing, 5)
    assert (result.entries, result.failed) == (3, 0)
    assert await pool.fetchval("SELECT count(*) FROM pin_outbox") == 0

"""Index retention without DELETE, the local expirer and the retention tasks of serve
(SPEC §7, §10), against a real Postgres and real local stores."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gateway.cli.main import main
from lifecycle_policies.policy import Policy
from tests.canvases import shop
from tests.harness import serve
from tests.pin_support import CANVAS, index_row, series, trace_ids, unmatched_key, write_traces
from trace_store import db, retention
from trace_store.backends.local import LocalStore
from trace_store.backends.memory import MemoryStore
from trace_store.db import patches, pins
from trace_store.db.index import get_trace, list_traces
from trace_store.db.outbox import PinOutbox
from trace_store.writer.commit import Batch, commit_batch

if TYPE_CHECKING:
    from trace_store.db import Pool

NOW = datetime.now(UTC)


async def _commit(pool: Pool, store: MemoryStore, handler: str, times: list[datetime]) -> list[str]:
    rows = [index_row(CANVAS, handler, at) for at in times]
    for row in rows:
        await store.put_new(row.object_key, b"{}")
    await commit_batch(pool, Batch(rows=rows))
    return [row.trace_id for row in rows]


async def _listed(pool: Pool, handler: str) -> list[tuple[str, bool]]:
    return [(r.trace_id, r.pinned) for r in await list_traces(pool, CANVAS, handler, limit=100)]


async def test_lists_hide_unpinned_traces_past_the_window(pool: Pool) -> None:
    store = MemoryStore()
    old = await _commit(pool, store, "h", [NOW - timedelta(days=10, minutes=i) for i in range(12)])
    old_newest_first = sorted(old, reverse=True)
    # Past the 7-day window: only the pinned (latest 10) are listed, objects or not.
    assert await _listed(pool, "h") == [(t, True) for t in old_newest_first[:10]]
    recent = await _commit(pool, store, "h", [NOW - timedelta(minutes=i) for i in range(3)])
    expected = [(t, True) for t in sorted(recent, reverse=True)] + [
        (t, True) for t in old_newest_first[:7]
    ]
    assert await _listed(pool, "h") == expected
    # The manifest follows the same visibility.
    assert await get_trace(pool, CANVAS, old_newest_first[6]) is not None
    assert await get_trace(pool, CANVAS, old_newest_first[8]) is None


async def test_cursor_pages_through_pinned_and_recent_traces(pool: Pool) -> None:
    store = MemoryStore()
    ids = await _commit(pool, store, "h", [NOW - timedelta(minutes=i) for i in range(14)])
    newest_first = sorted(ids, reverse=True)
    page = await list_traces(pool, CANVAS, "h", limit=6, before=newest_first[7])
    assert [(r.trace_id, r.pinned) for r in page] == [
        (newest_first[8], True),
        (newest_first[9], True),
        *((t, False) for t in newest_first[10:]),
    ]


async def test_old_partitions_are_dropped_and_pinned_traces_stay_listable(pool: Pool) -> None:
    day = (NOW - timedelta(days=10)).date()
    async with pool.acquire() as conn:
        await conn.execute(
            f"CREATE TABLE {db.partition_name(day)} PARTITION OF traces FOR VALUES FROM"
            f" ('{day.isoformat()}') TO ('{(day + timedelta(days=1)).isoformat()}')"
        )
    store = MemoryStore()
    start = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    ids = await _commit(pool, store, "h", [start + timedelta(minutes=i) for i in range(12)])
    pinned = sorted(ids, reverse=True)[:10]

    dropped = await retention.maintain_index(pool, Policy(), NOW)
    assert db.partition_name(day) in dropped
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT to_regclass($1)", db.partition_name(day)) is None
        assert await conn.fetchval("SELECT count(*) FROM traces") == 0
        # The coming days' partitions exist, so new rows never pile up in the default.
        for offset in range(4):
            name = db.partition_name(NOW.date() + timedelta(days=offset))
            assert await conn.fetchval("SELECT to_regclass($1)", name) is not None
    assert await _listed(pool, "h") == [(t, True) for t in pinned]
    row = await get_trace(pool, CANVAS, pinned[0])
    assert row is not None
    assert row.pinned
    assert row.object_key.endswith(f"{pinned[0]}.json.zst")
    # Partitions inside the window are kept.
    assert db.partition_name(NOW.date()) not in await retention.maintain_index(pool, Policy())


async def test_the_default_partition_is_emptied_once_all_its_rows_are_past_the_window(
    pool: Pool,
) -> None:
    store = MemoryStore()
    await _commit(pool, store, "h", [NOW - timedelta(days=20, minutes=i) for i in range(3)])
    await _commit(pool, store, "h", [NOW - timedelta(days=2)])  # no partition: default too
    assert "traces_default (truncated)" not in await retention.maintain_index(pool, Policy())
    assert "traces_default (truncated)" in await retention.maintain_index(
        pool, Policy(), NOW + timedelta(days=6)
    )
    assert len(await _listed(pool, "h")) == 4  # all four are pinned


async def _keys_of(pool: Pool, ids: list[str]) -> list[str]:
    """The object key of each trace of ``ids`` (a segment's traces share one)."""
    rows = await pool.fetch("SELECT trace_id::text, object_key FROM traces")
    key_of = {r["trace_id"]: r["object_key"] for r in rows}
    return [key_of[trace_id] for trace_id in ids]


async def test_local_expirer_keeps_the_latest_and_expires_the_rest(
    pool: Pool, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "objects")
    traces = series("get_user", 15)
    ids = trace_ids(traces)
    await write_traces(store, pool, traces[:5])  # two batches: two segments
    await write_traces(store, pool, traces[5:])
    keys = await _keys_of(pool, ids)
    old, newest = set(keys[:5]), set(keys[5:])
    assert len(old) == len(newest) == 1
    unmatched = [unmatched_key() for _ in range(2)]
    for key in unmatched:
        await store.put_new(key, b"{}")
    policy = Policy()
    now = datetime.now(UTC)  # after the writes: ages count from the objects' creation
    db_pins = await pins.pinned_keys(pool)
    assert db_pins == newest  # the segment holding the latest 10

    # Before the outbox has run no marker exists: the database's pins protect them.
    later = now + timedelta(days=8)
    deleted = await retention.expire_local(store, policy, now=later, pinned=db_pins, dry_run=True)
    assert sorted(deleted) == sorted([*old, *unmatched])
    await PinOutbox(pool, store).drain()
    assert await retention.expire_local(store, policy, now=now + timedelta(days=1)) == []
    assert sorted(
        await retention.expire_local(store, policy, now=now + timedelta(days=3, minutes=1))
    ) == sorted(unmatched)
    deleted = await retention.expire_local(store, policy, now=later)
    assert set(deleted) == old
    left = {info.key for info in await store.list_objects("")}
    assert left == newest
    markers = store.root / ".pins"
    assert {p.relative_to(markers).as_posix() for p in markers.rglob("*") if p.is_file()} == left


def _age(store: LocalStore, key: str, days: float) -> None:
    moment = (NOW - timedelta(days=days)).timestamp()
    os.utime(store.path_of(key), (moment, moment))


async def test_expire_command_deletes_only_expired_objects(
    pool: Pool, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LocalStore(tmp_path / "objects")
    traces = series("get_user", 12)
    ids = trace_ids(traces)
    await write_traces(store, pool, traces[:2])  # pins the newest 10 in the database only
    await write_traces(store, pool, traces[2:])
    keys = await _keys_of(pool, ids)
    for key in set(keys):
        _age(store, key, 9)
    url = f"file://{store.root}"
    await asyncio.to_thread(
        main, ["lifecycle", "expire", "--store", url, "--database-url", database_url]
    )
    printed = capsys.readouterr().out.split()
    assert printed == [keys[0]]  # the segment of the two oldest
    # The command also ran the outbox: the survivors carry their markers now.
    assert all(store.path_of(key, ".pins").exists() for key in keys[2:])
    await asyncio.to_thread(main, ["lifecycle", "expire", "--store", url])
    assert capsys.readouterr().out.strip() == "nothing expired"


async def test_serve_runs_the_outbox_and_lists_pins_truthfully(
    database_url: str, tmp_path: Path
) -> None:
    async with serve(database_url, tmp_path, {"shop": shop}) as server:
        names = {task.get_name() for task in server.running.tasks}
        assert {"pin-outbox", "index-retention", "local-expirer"} <= names
        for i in range(12):
            async with server.http.get(f"{server.gateway}/users/{i}") as response:
                assert response.status == 200
        await server.flush()
        store = server.running.services.store
        assert isinstance(store, LocalStore)
        token = await server.token("shop")
        status, body = await server.api("/api/v1/canvases/shop/handlers/get_user/traces", token)
        assert status == 200
        assert [t["pinned"] for t in body["traces"]] == [True] * 10 + [False] * 2
        pool = server.running.services.pool
        wanted = set(await _keys_of(pool, [t["trace_id"] for t in body["traces"][:10]]))
        # The outbox polls every second and applies a pin once it has settled (5 s).
        for _ in range(150):
            pinned = {info.key for info in await store.list_objects("traces/") if info.metadata}
            if pinned == wanted:
                break
            await asyncio.sleep(0.1)
        assert pinned == wanted
        tasks = list(server.running.tasks)
    assert all(task.done() for task in tasks)


async def test_patches_go_with_their_trace_and_stay_with_a_pinned_one(pool: Pool) -> None:
    day = (NOW - timedelta(days=10)).date()
    async with pool.acquire() as conn:
        await conn.execute(
            f"CREATE TABLE {db.partition_name(day)} PARTITION OF traces FOR VALUES FROM"
            f" ('{day.isoformat()}') TO ('{(day + timedelta(days=1)).isoformat()}')"
        )
    await pins.store_policy(pool, Policy(keep_latest=1))
    store = MemoryStore()
    start = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    old_times = [start, start + timedelta(minutes=1)]
    unpinned, pinned = await _commit(pool, store, "h", old_times)
    # In the default partition (no day partition), which stays while a recent row is in
    # it: past the window and unpinned, but still in the index (a policy change could
    # pin it again), so its patch stays.
    default_times = [NOW - timedelta(days=20), NOW - timedelta(days=2)]
    in_default, _ = await _commit(pool, store, "d", default_times)
    recent_time = NOW - timedelta(minutes=5)
    (recent,) = await _commit(pool, store, "r", [recent_time])
    for trace_id, at in [
        (unpinned, old_times[0]),
        (unpinned, old_times[0]),
        (pinned, old_times[1]),
        (in_default, default_times[0]),
        (recent, recent_time),
    ]:
        await patches.append(pool, CANVAS, trace_id, at, {"kind": "rerun"})

    # One patch a statement: several statements in one pass.
    done = await retention.maintain_index(pool, Policy(keep_latest=1), NOW, patch_batch=1)
    assert db.partition_name(day) in done
    assert "patches (2 retired)" in done
    assert await patches.list_patches(pool, CANVAS, unpinned) == []
    assert await patches.count_patches(pool, CANVAS, [unpinned, pinned, in_default, recent]) == {
        pinned: 1,
        in_default: 1,
        recent: 1,
    }
    assert [p["seq"] for p in await patches.list_patches(pool, CANVAS, pinned)] == [1]
    assert "patches (0 retired)" not in await retention.maintain_index(pool, Policy(), NOW)

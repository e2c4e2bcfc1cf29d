"""The real pin code (pins.py, the outbox, commit_batch) under random arrivals and
injected failures, against Postgres and a memory store (SPEC §10, issue 4 acceptance 2).

``test_lifecycle_properties.py`` proves the timing bounds on the pure model
(:mod:`tests.pin_model`); this test shows the I/O code implements that
model: at every step the database pins exactly what the model pins, and the store
differs from the database only for objects with an outbox entry still queued (so no
pin leaks and none is lost, whatever failed). At the end the outbox converges and the
evaluator, on the store's real pin state, says the latest N are never eligible while
every other trace is eligible from ``ceil_midnight(created + R)``.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifecycle_policies.evaluate import S3Object, s3_eligible_from, s3_expiration_time
from lifecycle_policies.policy import Policy
from lifecycle_policies.render import render_s3
from tests.fixtures_postgres import with_database
from tests.pin_model import Arrival, latest_per_handler, s3_tags
from tests.pin_support import FaultyStore, index_row
from trace_store import db
from trace_store.db import pins
from trace_store.db.outbox import PinOutbox
from trace_store.writer.commit import Batch, commit_batch

T0 = datetime.now(UTC) - timedelta(days=40)
HANDLERS = ("get_user", "create-order")
OUTCOMES = st.sampled_from(["ok", "ok", "before", "after"])

batch_step = st.tuples(
    st.just("batch"),
    st.lists(st.sampled_from(HANDLERS), min_size=1, max_size=4),
    st.integers(1, 3 * 24 * 60),  # minutes since the previous batch: bursts and days
    st.booleans(),  # the commit crashes between the pin update and the outbox queue once
)
outbox_step = st.tuples(st.just("outbox"), st.lists(OUTCOMES, max_size=6))
scenarios = st.tuples(
    st.integers(1, 3),  # keep_latest
    st.lists(st.one_of(batch_step, outbox_step), min_size=1, max_size=14),
)


async def _fresh_pool(admin_dsn: str, template: str) -> tuple[db.Pool, str]:
    name = "t_" + uuid.uuid4().hex[:16]
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    finally:
        await admin.close()
    return await db.connect_pool(with_database(admin_dsn, name), max_size=2), name


async def _drop(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


async def _run(admin_dsn: str, template: str, keep: int, steps: list[Any]) -> None:
    pool, name = await _fresh_pool(admin_dsn, template)
    try:
        await _check_scenario(pool, keep, steps)
    finally:
        await pool.close()
        await _drop(admin_dsn, name)


async def _check_scenario(pool: db.Pool, keep: int, steps: list[Any]) -> None:
    policy = Policy(keep_latest=keep, traces_retain_days=2)
    await pins.store_policy(pool, policy)
    store = FaultyStore()
    outbox = PinOutbox(pool, store, retry_delay=timedelta(0))
    arrivals: list[Arrival] = []
    keys: list[str] = []
    now = T0
    for step in steps:
        if step[0] == "batch":
            _, handlers, gap, crash = step
            now += timedelta(minutes=gap)
            rows = []
            for offset, handler in enumerate(handlers):
                row = index_row("shop", handler, now + timedelta(milliseconds=offset))
                await store.put_new(row.object_key, b"{}")  # the object first, expirable
                rows.append(row)
                arrivals.append(Arrival(handler, row.started_at))
                keys.append(row.object_key)
            if crash:
                with (
                    mock.patch.object(pins, "queue", side_effect=ConnectionError("crash")),
                    pytest.raises(ConnectionError),
                ):
                    await commit_batch(pool, Batch(rows=rows))
            await commit_batch(pool, Batch(rows=rows))  # the writer's retry
            now = rows[-1].started_at
        else:
            store.faults = list(step[1])
            await outbox.run_once()
        await _check_consistent(pool, store, arrivals, keys, keep, now)

    store.faults = []
    await outbox.drain()
    assert await outbox.pending() == 0
    db_pins = await pins.pinned_keys(pool)
    assert {k for k, o in store.objects.items() if o.pinned} == db_pins

    config = render_s3(policy)
    latest = {keys[i] for i in latest_per_handler(arrivals, keep, now)}
    for arrival, key in zip(arrivals, keys, strict=True):
        obj = S3Object(key, arrival.at, s3_tags(pinned=store.objects[key].pinned))
        eligible = s3_eligible_from(config, obj)
        if key in latest:
            assert eligible is None, key
        else:
            assert eligible == s3_expiration_time(arrival.at, policy.traces_retain_days)


async def _check_consistent(
    pool: db.Pool,
    store: FaultyStore,
    arrivals: list[Arrival],
    keys: list[str],
    keep: int,
    now: datetime,
) -> None:
    db_pins = await pins.pinned_keys(pool)
    # The database pins exactly what the model's latest N are.
    assert db_pins == {keys[i] for i in latest_per_handler(arrivals, keep, now)}
    queued = {r["object_key"] for r in await pool.fetch("SELECT object_key FROM pin_outbox")}
    for key, stored in store.objects.items():
        if stored.pinned != (key in db_pins):
            assert key in queued, f"{key}: store and database disagree with no entry queued"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_real_pin_code_follows_the_model_through_failures(
    pg_admin_dsn: str, pg_template: str
) -> None:
    loop = asyncio.get_running_loop()

    @settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        database=None,
    )
    @given(scenarios)
    def check(scenario: tuple[int, list[Any]]) -> None:
        keep, steps = scenario
        future = asyncio.run_coroutine_threadsafe(
            _run(pg_admin_dsn, pg_template, keep, steps), loop
        )
        future.result(timeout=60)

    await asyncio.to_thread(check)

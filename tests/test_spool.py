"""The local spool of SPEC §12: while the store is down, batches are parked on disk and
written when it comes back, across a restart too; a full spool drops and counts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from trace_store import db, index, keys
from trace_store.backends.local import LocalStore
from trace_store.document import PendingTrace
from trace_store.metrics import Metrics
from trace_store.spool import Spool
from trace_store.writer import TraceWriter, WriterConfig

CONFIG = WriterConfig(batch_size=10, batch_wait=0.001, spool_after=0.2, max_backoff=0.2)


def _pending(i: int) -> PendingTrace:
    return PendingTrace(
        canvas="shop", kind="traces",
        handler={"id": "get_user", "kind": "http", "method": "GET", "route": "/users/:id"},
        started_ns=time.time_ns(), duration_ns=1000, method="GET", path=f"/users/{i}",
        query_string="", params={"id": str(i)}, raw_headers=[(b"Host", b"x")], body=b"",
        status=200, response_body=b"{}", calls=[],
    )  # fmt: skip


def _counter(metrics: Metrics, name: str, label: str) -> float:
    value = metrics.registry.get_sample_value(f"strata_{name}_total", {"event": label})
    if value is None:
        value = metrics.registry.get_sample_value(f"strata_{name}_total", {"reason": label})
    return value or 0.0


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def _down() -> Callable[[], Awaitable[None]]:
    async def fail() -> None:
        raise ConnectionError("the store is down")

    return fail


async def test_batches_wait_in_the_spool_and_are_written_when_the_store_returns(
    pool: db.Pool, tmp_path: Path
) -> None:
    metrics = Metrics()
    spool = Spool(tmp_path / "spool", 10_000_000)
    writer = TraceWriter(
        LocalStore(tmp_path / "objects"), pool, metrics, config=CONFIG, spool=spool
    )
    writer.before_put = _down()
    writer.start()
    for i in range(30):
        assert writer.submit(_pending(i))

    async def all_parked() -> bool:
        return _counter(metrics, "traces_spooled", "parked") == 30

    await _until(all_parked)
    assert len(spool) >= 1
    assert await index.count_traces(pool) == 0

    writer.before_put = None  # the store is back

    async def all_indexed() -> bool:
        return await index.count_traces(pool) == 30

    await _until(all_indexed)
    assert _counter(metrics, "traces_spooled", "replayed") == 30
    assert len(spool) == 0
    assert spool.bytes_used == 0
    await writer.stop()


async def test_a_parked_batch_survives_a_restart(pool: db.Pool, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    first = TraceWriter(
        store, pool, Metrics(), config=CONFIG, spool=Spool(tmp_path / "spool", 10**7)
    )
    first.before_put = _down()
    first.start()
    for i in range(12):
        first.submit(_pending(i))
    await first.flush()  # handled: parked, not written
    await first.stop()
    assert await index.count_traces(pool) == 0
    assert list((tmp_path / "spool").glob("*.batch"))

    metrics = Metrics()
    second = TraceWriter(
        store, pool, metrics, config=CONFIG, spool=Spool(tmp_path / "spool", 10**7)
    )
    second.start()  # replays what the first one parked

    async def all_indexed() -> bool:
        return await index.count_traces(pool) == 12

    await _until(all_indexed)
    assert _counter(metrics, "traces_spooled", "replayed") == 12
    await second.stop()


async def test_a_full_spool_drops_and_counts(pool: db.Pool, tmp_path: Path) -> None:
    metrics = Metrics()
    spool = Spool(tmp_path / "spool", 2_000)  # room for about one small batch
    writer = TraceWriter(
        LocalStore(tmp_path / "objects"), pool, metrics, config=CONFIG, spool=spool
    )
    writer.before_put = _down()
    writer.start()
    for i in range(40):
        writer.submit(_pending(i))
    await writer.flush()
    parked = _counter(metrics, "traces_spooled", "parked")
    dropped = _counter(metrics, "traces_dropped", "spool_full")
    assert parked + dropped == 40
    assert dropped > 0
    assert spool.bytes_used <= 2_000
    await writer.stop()


async def test_a_hung_index_times_out_into_the_spool(
    pool: db.Pool, database_url: str, tmp_path: Path
) -> None:
    import asyncpg

    config = WriterConfig(
        batch_size=10, batch_wait=0.001, spool_after=0.3, max_backoff=0.2, io_timeout=0.3
    )
    metrics = Metrics()
    spool = Spool(tmp_path / "spool", 10_000_000)
    writer = TraceWriter(
        LocalStore(tmp_path / "objects"), pool, metrics, config=config, spool=spool
    )
    blocker = await asyncpg.connect(database_url)
    lock = blocker.transaction()
    await lock.start()
    await blocker.execute("LOCK TABLE traces IN ACCESS EXCLUSIVE MODE")  # Postgres hangs
    try:
        writer.start()
        for i in range(10):
            writer.submit(_pending(i))

        async def parked() -> bool:
            return _counter(metrics, "traces_spooled", "parked") == 10

        await _until(parked)
    finally:
        await lock.rollback()
        await blocker.close()

    async def all_indexed() -> bool:
        return await index.count_traces(pool) == 10

    await _until(all_indexed)
    await writer.stop()


async def test_a_key_holding_other_bytes_drops_that_trace_and_not_the_batch(
    pool: db.Pool, tmp_path: Path
) -> None:
    # A crash in the middle of a local batch write leaves a torn object under a trace's
    # key; when the spool replays that trace, the key holds other bytes. That is
    # permanent: the trace is dropped and counted, the rest of its batch is written,
    # and nothing is retried forever.
    metrics = Metrics()
    store = LocalStore(tmp_path / "objects")
    writer = TraceWriter(store, pool, metrics, config=CONFIG)
    pendings = [_pending(i) for i in range(5)]
    torn = pendings[2]
    torn.ensure_id()
    torn_key = keys.trace_key("shop", "get_user", torn.trace_id)
    await store.put_new(torn_key, b"\x28\xb5")  # the first bytes of a zstd frame, then the crash
    writer.start()
    for p in pendings:
        assert writer.submit(p)
    await asyncio.wait_for(writer.flush(), 10)
    await writer.stop()
    assert await index.count_traces(pool) == 4
    assert _counter(metrics, "traces_dropped", "conflict") == 1
    assert await store.get(torn_key) == b"\x28\xb5"  # create-only: never overwritten

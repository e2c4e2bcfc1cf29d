"""Grand-user responses never wait for the writer: not for the store, not for Postgres,
and a full queue drops traces (counted), never requests."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg

from tests.canvases import shop
from tests.fixtures_postgres import count_traces
from tests.harness import hold_puts, serve
from trace_store.writer.queue import WriterConfig


async def _hammer(server, n: int) -> float:
    """Send ``n`` requests, return the slowest response time in seconds."""
    slowest = 0.0
    for i in range(n):
        t0 = time.perf_counter()
        async with server.http.get(server.gateway + f"/users/{i}") as response:
            assert response.status == 200
            await response.read()
        slowest = max(slowest, time.perf_counter() - t0)
    return slowest


async def test_requests_are_answered_while_the_store_is_held(
    database_url: str, tmp_path: Path
) -> None:
    async with serve(database_url, tmp_path, {"shop": shop}) as server:
        gate = asyncio.Event()
        waiting = 0

        async def hold() -> None:
            nonlocal waiting
            waiting += 1
            await gate.wait()

        hold_puts(server, hold)
        slowest = await _hammer(server, 50)
        for _ in range(50):  # the writer takes its batch up to batch_wait (0.4 s) later
            if waiting:
                break
            await asyncio.sleep(0.1)
        assert waiting > 0  # the writer really is stuck on the store
        assert await count_traces(server.running.services.pool) == 0
        assert slowest < 1.0  # nobody waited for the held store
        gate.set()
        await server.flush()
        assert await count_traces(server.running.services.pool) == 50


async def test_requests_are_answered_while_the_index_is_locked(
    database_url: str, tmp_path: Path
) -> None:
    async with serve(database_url, tmp_path, {"shop": shop}) as server:
        blocker = await asyncpg.connect(database_url)
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE traces IN ACCESS EXCLUSIVE MODE")
        try:
            slowest = await _hammer(server, 50)
            handler_dir = tmp_path / "objects" / "traces" / "shop" / "get_user"
            for _ in range(50):  # the writer takes its batch up to batch_wait (0.4 s) later
                if handler_dir.exists() and any(handler_dir.iterdir()):
                    break
                await asyncio.sleep(0.1)
            assert any(handler_dir.iterdir())  # the batch's objects are written; its rows wait
            assert slowest < 1.0
        finally:
            await tx.rollback()
            await blocker.close()
        await server.flush()
        assert await count_traces(server.running.services.pool) == 50


async def test_a_full_queue_drops_traces_and_counts_them(database_url: str, tmp_path: Path) -> None:
    # In flight beyond the queue: one batch encoding, two encoded, one being stored.
    config = WriterConfig(queue_traces=5, batch_size=5)
    held_at_most = 5 + 4 * 5
    async with serve(database_url, tmp_path, {"shop": shop}, writer=config) as server:
        gate = asyncio.Event()

        async def hold() -> None:
            await gate.wait()

        hold_puts(server, hold)
        await _hammer(server, 100)  # every request is still answered
        async with server.http.get(server.gateway + "/metrics") as response:
            text = await response.text()
        dropped = [
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith('strata_traces_dropped_total{reason="queue_full"}')
        ]
        assert dropped
        assert dropped[0] >= 100 - held_at_most
        gate.set()
        await server.flush()
        stored = await count_traces(server.running.services.pool)
        assert stored + dropped[0] == 100  # every trace is either stored or counted


async def test_store_failures_are_retried_until_written(database_url: str, tmp_path: Path) -> None:
    async with serve(database_url, tmp_path, {"shop": shop}) as server:
        failures = 3

        async def flaky() -> None:
            nonlocal failures
            if failures > 0:
                failures -= 1
                raise ConnectionError("store hiccup")

        hold_puts(server, flaky)
        await _hammer(server, 3)
        await server.flush()
        assert await count_traces(server.running.services.pool) == 3
        async with server.http.get(server.editor + "/metrics") as response:
            assert 'strata_writer_retries_total{stage="store"} 3.0' in await response.text()

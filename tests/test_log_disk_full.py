"""The trace log's disk fills up during an outage (issue 14, acceptance 3): a real
``strata serve`` writer process, its log on a small tmpfs nearly filled, and the index
locked (the writer can store objects, not commit them, so the log grows).

While the disk is full, traces are dropped and counted ``log_error`` and ``/readyz`` is
``degraded``; once the index is free again the writer finishes the log, deletes what it
consumed, and appends work again within seconds, although the filler stays.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import asyncpg

from tests.canvases import shop
from tests.fixtures_cloud import server_unavailable
from tests.fixtures_postgres import count_traces
from tests.harness import Server, serve
from tests.test_writer_process import metric


async def _ready(server: Server) -> tuple[int, dict[str, object]]:
    async with server.http.get(server.editor + "/readyz") as response:
        return response.status, await response.json()


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:  # fails under CI=true, skips only on a developer machine
        server_unavailable(f"cannot mount a tmpfs for the full-disk case: {done.stderr.strip()}")


async def test_a_full_log_disk_drops_counted_and_recovers(
    database_url: str, tmp_path: Path
) -> None:
    log_dir = tmp_path / "log"
    _mount_tmpfs(log_dir, "2m")
    try:
        async with serve(database_url, tmp_path, {"shop": shop}, writer_mode="process") as server:
            filler = log_dir / "filler"
            free = os.statvfs(log_dir)
            filler.write_bytes(b"\0" * (free.f_bavail * free.f_frsize - 256 * 1024))
            blocker = await asyncpg.connect(database_url)
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("LOCK TABLE traces IN ACCESS EXCLUSIVE MODE")
            sent = 0
            try:
                deadline = time.monotonic() + 30
                while await metric(server, 'strata_traces_dropped_total{reason="log_error"}') == 0:
                    assert time.monotonic() < deadline, "the log's disk never filled"
                    for _ in range(20):
                        async with server.http.get(
                            server.gateway + f"/users/{sent}?pad={'x' * 4000}"
                        ) as response:
                            assert response.status == 200  # requests never fail
                        sent += 1
                    await asyncio.sleep(0.01)
                status, report = await _ready(server)
                assert status == 503
                assert report["status"] == "degraded"
                assert str(report["checks"]["log"]).startswith("unwritable: ")  # type: ignore[index]
                assert "No space left" in str(report["checks"]["log"])  # type: ignore[index]
            finally:
                await tx.rollback()
                await blocker.close()
            # The index is back: the writer finishes and deletes the full segments, so
            # appends succeed again although the filler still takes the disk.
            dropped = await metric(server, 'strata_traces_dropped_total{reason="log_error"}')
            deadline = time.monotonic() + 20
            while True:
                assert time.monotonic() < deadline, "appends never resumed"
                async with server.http.get(server.gateway + "/users/after") as response:
                    assert response.status == 200
                sent += 1
                await asyncio.wait_for(server.flush(), 10)  # bounded: a stuck log never flushes
                now = await metric(server, 'strata_traces_dropped_total{reason="log_error"}')
                if now == dropped:
                    break
                dropped = now
                await asyncio.sleep(0.2)
            stored = await count_traces(server.running.services.pool)
            assert stored + dropped == sent  # every trace stored or counted
            status, report = await _ready(server)
            assert status == 200, report
    finally:
        subprocess.run(["umount", "-l", str(log_dir)], check=False)

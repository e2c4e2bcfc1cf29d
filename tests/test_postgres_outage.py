"""A Postgres restart under load (issue 14, the fast one of its faults): a real
``strata serve`` with its writer process, paced grand-user load, and its own Postgres
server stopped (``pg_ctl stop -m fast``) for a few seconds and started again.

Every request is answered; the editor says 503 ``database_unavailable`` (not 500) while
the database is away; afterwards every answered request's trace is indexed, and the log
holds a few lines about it, no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import aiohttp
import asyncpg

from gateway.embedded_pg import start_embedded
from tests.test_serve_process import strata_serve

RATE = 40  # requests a second
OUTAGE = (2.0, 6.0)  # seconds into the load: Postgres stopped, started again
LOAD_SECONDS = 9.0


def _pg_ctl(server: object, *args: str) -> None:
    from pgserver.postgres_server import pg_ctl  # type: ignore[import-untyped]

    pg_ctl(["-w", *args], pgdata=server.pgdata, user=server.system_user)  # type: ignore[attr-defined]


async def _paced(gateway: str, statuses: list[int]) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:

        async def one(i: int) -> None:
            try:
                async with http.get(f"{gateway}/users/{i}") as response:
                    await response.read()
                    statuses.append(response.status)
            except aiohttp.ClientError:
                statuses.append(0)

        started = time.monotonic()
        tasks = []
        for i in range(int(RATE * LOAD_SECONDS)):
            await asyncio.sleep(max(0.0, started + i / RATE - time.monotonic()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)


async def test_a_postgres_restart_under_load_loses_nothing(tmp_path: Path) -> None:
    dsn, server = start_embedded(tmp_path / "own-pg")
    log = tmp_path / "serve.log"
    env = {
        "STRATA_DATABASE_URL": dsn,
        "STRATA_DATA_DIR": str(tmp_path / "data"),
        "STRATA_STORE": "",
        "STRATA_WRITER": "process",
    }
    try:
        with strata_serve(
            ["--app", "examples.demo:canvas", "--print-dev-token"], env, log=log
        ) as printed:
            token = printed["tokens"]["demo"]
            statuses: list[int] = []
            load = asyncio.create_task(_paced(printed["gateway"], statuses))
            await asyncio.sleep(OUTAGE[0])
            _pg_ctl(server, "stop", "-m", "fast")
            await asyncio.sleep(1.0)
            async with aiohttp.ClientSession() as http:
                async with http.get(
                    printed["editor"] + "/api/v1/canvases/demo/handlers/get_user/traces",
                    headers={"Authorization": f"Bearer {token}"},
                ) as response:
                    outage_answer = (response.status, await response.json())
                async with http.get(printed["editor"] + "/readyz") as response:
                    ready = (response.status, await response.json())
            await asyncio.sleep(OUTAGE[1] - OUTAGE[0] - 1.0)
            server.ensure_postgres_running()
            await load
            conn = await asyncpg.connect(dsn)
            try:
                deadline = time.monotonic() + 30
                while (indexed := await conn.fetchval("SELECT count(*) FROM traces")) < len(
                    statuses
                ):
                    assert time.monotonic() < deadline, f"{indexed} of {len(statuses)} indexed"
                    await asyncio.sleep(0.2)
            finally:
                await conn.close()
    finally:
        with contextlib.suppress(Exception):
            server.cleanup()
    assert set(statuses) == {200}
    assert outage_answer[0] == 503
    assert outage_answer[1]["error"]["code"] == "database_unavailable"
    assert ready[0] == 503
    assert ready[1]["checks"]["postgres"].startswith("unavailable")
    lines = log.read_text().splitlines()
    assert not [line for line in lines if "Traceback" in line]
    # An outage is one line when it starts and one when it ends, per background loop,
    # plus the editor's rate-limited answer lines; not a line per attempt.
    assert len(lines) <= 12, "\n".join(lines)
    assert not [line for line in lines if "released back to the pool" in line]


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += _tree(int(child))
    return found


async def test_a_hung_postgres_is_an_answer_within_seconds(tmp_path: Path) -> None:
    # Every process of the server stopped (SIGSTOP): connections stay open and nothing
    # answers, as with a dead network path. The editor must not wait forever.
    dsn, server = start_embedded(tmp_path / "own-pg")
    env = {
        "STRATA_DATABASE_URL": dsn,
        "STRATA_DATA_DIR": str(tmp_path / "data"),
        "STRATA_STORE": "",
    }
    stopped: list[int] = []
    try:
        with strata_serve(["--app", "examples.demo:canvas", "--print-dev-token"], env) as printed:
            token = printed["tokens"]["demo"]
            url = printed["editor"] + "/api/v1/canvases/demo/handlers/get_user/traces"
            headers = {"Authorization": f"Bearer {token}"}
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
                async with http.get(url, headers=headers) as response:
                    assert response.status == 200  # the pool holds a live connection now
                stopped = _tree(server.get_pid())
                for pid in stopped:
                    os.kill(pid, signal.SIGSTOP)
                started = time.monotonic()
                async with http.get(url, headers=headers) as response:
                    answer = (response.status, await response.json())
                waited = time.monotonic() - started
                for pid in stopped:
                    os.kill(pid, signal.SIGCONT)
                stopped = []
                async with http.get(url, headers=headers) as response:
                    assert response.status == 200  # and back once it answers again
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        with contextlib.suppress(Exception):
            server.cleanup()
    assert answer[0] == 503
    assert answer[1]["error"]["code"] == "database_unavailable"
    assert waited < 15

"""Reruns and function runs stop at STRATA_RUN_TIMEOUT with a clear error and store
nothing; a sync function runs in the thread pool, so a slow one holds no port."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from runtime import Canvas, Request
from tests.harness import Server, serve

slowness = {"seconds": 0.0}
lab = Canvas("lab")


@lab.function()
def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@lab.function()
async def gives_up(seconds: float) -> None:
    async with asyncio.timeout(seconds / 10):  # the function's own time-out, not strata's
        await asyncio.sleep(seconds)


@lab.http("GET", "/work")
async def work(request: Request) -> dict[str, Any]:
    await asyncio.sleep(slowness["seconds"])
    return {"slept": sleepy(0)}


async def _one_trace(server: Server) -> tuple[str, str]:
    async with server.http.get(server.gateway + "/work") as response:
        assert response.status == 200
    await server.flush()
    token = await server.token("lab")
    _, listed = await server.api("/api/v1/canvases/lab/handlers/work/traces", token)
    return token, listed["traces"][0]["trace_id"]


async def _post(server: Server, path: str, token: str, body: Any = None) -> tuple[int, Any, float]:
    t0 = time.monotonic()
    async with server.http.post(
        server.editor + path, json=body, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        return response.status, await response.json(), time.monotonic() - t0


async def _assert_stopped_and_nothing_stored(
    server: Server, token: str, trace_id: str, status: int, body: Any
) -> None:
    assert status == 504, body
    assert body["error"]["code"] == "run_timeout"
    assert "STRATA_RUN_TIMEOUT" in body["error"]["message"]
    _, manifest = await server.api(f"/api/v1/canvases/lab/traces/{trace_id}", token)
    assert manifest["patches"] == []


async def test_a_rerun_past_its_limit_is_a_clear_error_and_stores_nothing(
    database_url: str, tmp_path: Path
) -> None:
    async with serve(database_url, tmp_path, {"lab": lab}, run_timeout=0.5) as server:
        token, trace_id = await _one_trace(server)
        slowness["seconds"] = 30.0
        try:
            status, body, elapsed = await _post(
                server, f"/api/v1/canvases/lab/traces/{trace_id}/rerun", token
            )
        finally:
            slowness["seconds"] = 0.0
        await _assert_stopped_and_nothing_stored(server, token, trace_id, status, body)
        assert elapsed < 3


async def test_a_slow_sync_function_run_stops_at_the_limit_and_holds_no_port(
    database_url: str, tmp_path: Path
) -> None:
    async with serve(database_url, tmp_path, {"lab": lab}, run_timeout=1.0) as server:
        token, trace_id = await _one_trace(server)
        run = asyncio.create_task(
            _post(
                server,
                f"/api/v1/canvases/lab/traces/{trace_id}/functions/sleepy/run",
                token,
                {"args": [3]},
            )
        )
        await asyncio.sleep(0.3)
        for url in (server.gateway, server.editor):
            t0 = time.monotonic()
            async with server.http.get(url + "/healthz") as response:
                assert response.status == 200
            assert time.monotonic() - t0 < 0.5  # on the event loop it would wait ~2.7 s
        status, body, elapsed = await run
        await _assert_stopped_and_nothing_stored(server, token, trace_id, status, body)
        assert elapsed < 2.5


async def test_a_function_that_times_out_by_itself_is_its_own_error(
    database_url: str, tmp_path: Path
) -> None:
    async with serve(database_url, tmp_path, {"lab": lab}, run_timeout=5.0) as server:
        token, trace_id = await _one_trace(server)
        status, patch, _ = await _post(
            server,
            f"/api/v1/canvases/lab/traces/{trace_id}/functions/gives_up/run",
            token,
            {"args": [1]},
        )
        assert status == 201, patch
        assert patch["error"]["type"] == "TimeoutError"

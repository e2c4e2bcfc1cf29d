"""``serve --reload`` (SPEC §14): a canvas file's change is loaded in the running
process; a request that found no handler becomes the new handler's trace; a file that
does not load leaves the old code serving and says where it broke."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.harness import Server, SseReader, serve_module

V1 = """
from runtime import Canvas

app = Canvas("live")


@app.http("GET", "/hello")
def hello(request):
    return {"hello": "world"}
"""

NEW_HANDLER = """

@app.http("GET", "/new/:name")
def new_thing(request):
    name = request.params["name"]
    return {"made": name}
"""


@pytest.fixture
async def live(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Server, Path]]:
    async with serve_module(database_url, tmp_path, V1) as running:
        yield running


async def _get(server: Server, path: str) -> tuple[int, Any]:
    async with server.http.get(server.gateway + path) as response:
        return response.status, await response.json()


async def _reloaded(server: Server, since: float, timeout: float = 15.0) -> dict[str, Any]:
    """The outcome of the first reload after ``since`` (monotonic seconds)."""
    reloader = server.running.reloader
    assert reloader is not None
    deadline = time.monotonic() + timeout
    while True:
        found = reloader.last.get("live")
        if found is not None and found.get("at", 0) > since:
            return found
        assert time.monotonic() < deadline, "no reload happened"
        await asyncio.sleep(0.05)


async def test_a_404_becomes_the_new_handlers_trace_without_a_restart(
    live: tuple[Server, Path],
) -> None:
    server, module = live
    token = await server.token("live")
    assert (await _get(server, "/new/thing"))[0] == 404
    await server.flush()
    _, unmatched = await server.api("/api/v1/canvases/live/unmatched", token)
    assert [e["path"] for e in unmatched["unmatched"]] == ["/new/thing"]

    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=20)
    async with server.http.get(
        server.editor + "/api/v1/canvases/live/events", headers=headers, timeout=timeout
    ) as stream:
        assert stream.status == 200
        events = SseReader(stream)
        before = time.monotonic()
        with module.open("a") as handle:
            handle.write(NEW_HANDLER)
        outcome = await _reloaded(server, before)
        assert outcome["error"] is None
        assert "new_thing" in [h["id"] for h in outcome["handlers"]]
        while (event := await events.next(15)).type != "canvas":
            pass
        data = orjson.loads(event.data)
        assert data["error"] is None
        assert [h["id"] for h in data["handlers"]] == ["hello", "new_thing"]

    # The stored request was adopted: it is the new handler's first trace.
    _, listed = await server.api("/api/v1/canvases/live/handlers/new_thing/traces", token)
    assert len(listed["traces"]) == 1
    assert await _get(server, "/new/other") == (200, {"made": "other"})
    _, source = await server.api("/api/v1/canvases/live/handlers/new_thing/source", token)
    assert source["lines"][0] == '@app.http("GET", "/new/:name")'


async def test_a_file_that_does_not_load_keeps_the_old_code_and_names_the_line(
    live: tuple[Server, Path],
) -> None:
    server, module = live
    before = time.monotonic()
    module.write_text(V1 + "\n\ndef broken(:\n    pass\n")
    outcome = await _reloaded(server, before)
    error = outcome["error"]
    assert error["type"] == "SyntaxError"
    assert (error["file"], error["line"]) == (module.name, V1.count("\n") + 3)
    assert outcome["handlers"] is None
    assert await _get(server, "/hello") == (200, {"hello": "world"})

    before = time.monotonic()
    module.write_text(V1 + '\n\n@app.http("GET", "/hello")\ndef again(request):\n    return 1\n')
    outcome = await _reloaded(server, before)
    assert outcome["error"]["type"] == "RoutingError"
    assert outcome["error"]["line"] is not None
    assert await _get(server, "/hello") == (200, {"hello": "world"})

    before = time.monotonic()
    module.write_text(V1.replace('"world"', '"again"'))
    assert (await _reloaded(server, before))["error"] is None
    assert await _get(server, "/hello") == (200, {"hello": "again"})


async def test_a_watch_that_cannot_start_is_a_start_up_error_naming_the_setting(
    live: tuple[Server, Path], tmp_path: Path
) -> None:
    from gateway.reload import Reloader, Watched
    from gateway.serve import start_reloader
    from trace_store.errors import ConfigError

    server, module = live
    reloader = Reloader(server.running.services)
    gone = tmp_path / "gone" / module.name
    reloader.watching = {gone: Watched("live", next(iter(reloader.watching.values())).module, gone)}
    with pytest.raises(ConfigError, match=r"^STRATA_RELOAD \(--reload\): cannot watch"):
        await start_reloader(reloader)

"""Adoption and identity through real server restarts (same database, same data dir).

Acceptance 1: a 404 is listed, then becomes the first trace of the handler that appears
for it, readable through the manifest's signed URL, and leaves the unmatched list; a
second restart adopts nothing twice. Acceptance 2: a handler keeps its traces when its
route changes and its id stays.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from gateway.adoption import _adopt_one, adopt_unmatched
from runtime import Canvas, Request
from tests.fixtures_postgres import count_traces
from tests.harness import Server, serve
from trace_store import keys
from trace_store.db.unmatched import StoredRequest, list_entries
from trace_store.document import codec, schema
from trace_store.document.build import TraceLimits, build_trace
from trace_store.record import PendingTrace
from trace_store.writer.commit import Batch, commit_batch

if TYPE_CHECKING:
    from pathlib import Path

    from trace_store.db import Pool

UNMATCHED = "/api/v1/canvases/app/unmatched"


def app_without_hello() -> Canvas:
    canvas = Canvas("app")

    @canvas.http("GET", "/ping")
    def ping(request: Request) -> str:
        return "pong"

    return canvas


def app_with_hello(route: str = "/hello/:name", handler_id: str = "hello") -> Canvas:
    canvas = app_without_hello()

    @canvas.http("GET", route, id=handler_id)
    def hello(request: Request) -> dict[str, Any]:
        return {"hello": request.params["name"]}

    return canvas


async def _get(server: Server, path: str) -> tuple[int, Any]:
    async with server.http.get(server.gateway + path) as response:
        return response.status, await response.json()


async def _traces(server: Server, token: str, handler_id: str) -> list[dict[str, Any]]:
    status, body = await server.api(f"/api/v1/canvases/app/handlers/{handler_id}/traces", token)
    assert status == 200, body
    traces: list[dict[str, Any]] = body["traces"]
    return traces


async def test_404_is_listed_then_adopted_once_by_the_handler_that_appears(
    database_url: str, tmp_path: Path, pool: Pool
) -> None:
    async with serve(database_url, tmp_path, {"app": app_without_hello()}) as server:
        for _ in range(2):
            status, body = await _get(server, "/hello/world?lang=en")
            assert status == 404
            assert body["error"]["code"] == "not_found"
        await server.flush()
        token = await server.token("app")
        status, listed = await server.api(UNMATCHED, token)
        assert status == 200
        [entry] = listed["unmatched"]
        assert (entry["method"], entry["path"], entry["count"]) == ("GET", "/hello/world", 2)
        assert entry["first_seen"] <= entry["last_seen"]

        # The stored 404 is readable like a trace: input only, no handler, no result.
        status, manifest = await server.api(f"{UNMATCHED}/{entry['trace_id']}", token)
        assert status == 200, manifest
        status, _, data = await server.fetch_base(manifest["base"]["url"])
        assert status == 200
        assert hashlib.sha256(data).hexdigest() == manifest["base"]["sha256"]
        doc = codec.decode(data)
        schema.validate("trace", doc)
        assert (doc["handler"], doc["result"]) == (None, None)
        assert doc["input"]["path"] == "/hello/world"
        assert doc["input"]["query"] == {"lang": ["en"]}

    async with serve(database_url, tmp_path, {"app": app_with_hello()}) as server:
        token = await server.token("app")
        traces = await _traces(server, token, "hello")
        assert len(traces) == 2
        assert {t["status"] for t in traces} == {None}
        assert entry["trace_id"] in {t["trace_id"] for t in traces}  # same trace id
        doc = await server.trace_doc("app", token, entry["trace_id"])
        schema.validate("trace", doc)
        assert doc["input"]["path"] == "/hello/world"
        assert doc["input"]["query"] == {"lang": ["en"]}
        assert doc["result"] is None
        status, listed = await server.api(UNMATCHED, token)
        assert listed == {"unmatched": []}
        # New requests to the path now run the handler.
        status, body = await _get(server, "/hello/there")
        assert (status, body) == (200, {"hello": "there"})
        await server.flush()

    adopted = await pool.fetch("SELECT trace_id, object_key FROM traces WHERE adopted")
    assert len(adopted) == 2
    assert all(r["object_key"].startswith("traces/app/hello/") for r in adopted)
    async with serve(database_url, tmp_path, {"app": app_with_hello()}) as server:
        token = await server.token("app")
        assert len(await _traces(server, token, "hello")) == 3  # 2 adopted + 1 served
    assert await pool.fetchval("SELECT count(*) FROM traces WHERE adopted") == 2


async def test_a_path_shows_again_when_its_handler_goes_and_is_not_readopted(
    database_url: str, tmp_path: Path, pool: Pool
) -> None:
    async with serve(database_url, tmp_path, {"app": app_without_hello()}) as server:
        assert (await _get(server, "/hello/world"))[0] == 404
    async with serve(database_url, tmp_path, {"app": app_with_hello()}):
        pass
    async with serve(database_url, tmp_path, {"app": app_without_hello()}) as server:
        token = await server.token("app")
        _, listed = await server.api(UNMATCHED, token)
        [entry] = listed["unmatched"]
        assert (entry["path"], entry["adopted_by"]) == ("/hello/world", "hello")
    # The handler comes back: its adopted trace is still there, and not copied again.
    async with serve(database_url, tmp_path, {"app": app_with_hello()}) as server:
        token = await server.token("app")
        assert len(await _traces(server, token, "hello")) == 1
    assert await count_traces(pool, "app") == 1


async def test_route_change_keeps_traces_while_the_id_stays(
    database_url: str, tmp_path: Path
) -> None:
    async with serve(database_url, tmp_path, {"app": app_with_hello()}) as server:
        assert (await _get(server, "/hello/world"))[0] == 200
        await server.flush()
    greet = app_with_hello("/greet/:name")
    async with serve(database_url, tmp_path, {"app": greet}) as server:
        token = await server.token("app")
        [trace] = await _traces(server, token, "hello")
        doc = await server.trace_doc("app", token, trace["trace_id"])
        assert doc["input"]["path"] == "/hello/world"
        assert doc["result"]["status"] == 200
        assert (await _get(server, "/greet/you"))[0] == 200
        assert (await _get(server, "/hello/world"))[0] == 404
        await server.flush()
        assert len(await _traces(server, token, "hello")) == 2
        _, handlers = await server.api("/api/v1/canvases/app/handlers", token)
        assert {"id": "hello", "kind": "http", "method": "GET", "route": "/greet/:name"} in (
            handlers["handlers"]
        )
    # A changed id is a new handler: it starts empty and the old id is gone.
    renamed = app_with_hello("/greet/:name", handler_id="greet")
    async with serve(database_url, tmp_path, {"app": renamed}) as server:
        token = await server.token("app")
        assert await _traces(server, token, "greet") == []
        status, body = await server.api("/api/v1/canvases/app/handlers/hello/traces", token)
        assert status == 404, body


def _stored_unmatched(path: str) -> tuple[PendingTrace, bytes]:
    pending = PendingTrace(
        canvas="app",
        kind=keys.UNMATCHED,
        handler=None,
        started_ns=1_700_000_000_123_456_789,
        duration_ns=0,
        method="GET",
        path=path,
        query_string="",
        params={},
        raw_headers=[],
        body=b"",
    )
    return pending, codec.encode(build_trace(pending, TraceLimits()))


def _request(p: PendingTrace) -> StoredRequest:
    """``p`` as the writer hands a stored unmatched request to the summary."""
    key = keys.unmatched_key(p.canvas, p.trace_id)
    return StoredRequest(p.canvas, p.method, p.path, p.started_ns, p.trace_id, key)


async def test_adoption_after_a_crash_between_copy_and_index_is_retried_safely(
    pool: Pool, tmp_path: Path
) -> None:
    from trace_store.backends.local import LocalStore

    store = LocalStore(tmp_path / "objects")
    pending, data = _stored_unmatched("/hello/crash")
    key = keys.unmatched_key("app", pending.trace_id)
    await store.put_new(key, data)
    await commit_batch(pool, Batch(unmatched=[_request(pending)]))
    canvas = app_with_hello()

    # "Crash": the copy happened, the index commit did not.
    outcome = await _adopt_one(store, canvas, canvas.handlers["hello"], pending.trace_id)
    assert outcome.row is not None
    assert await count_traces(pool, "app") == 0

    report = await adopt_unmatched(pool, store, {"app": canvas})
    assert (report.adopted, report.skipped, report.failed) == (1, 0, 0)
    dst = keys.trace_key("app", "hello", pending.trace_id)
    assert await store.get(dst) == data
    assert await count_traces(pool, "app") == 1
    [entry] = await list_entries(pool, "app")
    assert (entry.samples, entry.adopted_by) == ((), "hello")

    again = await adopt_unmatched(pool, store, {"app": canvas})
    assert (again.adopted, again.skipped, again.failed) == (0, 0, 0)
    assert await count_traces(pool, "app") == 1


async def test_adoption_skips_expired_and_foreign_objects_and_never_overwrites(
    pool: Pool, tmp_path: Path
) -> None:
    from trace_store.backends.local import LocalStore

    store = LocalStore(tmp_path / "objects")
    expired, _ = _stored_unmatched("/hello/expired")
    taken, taken_data = _stored_unmatched("/hello/taken")
    batch = [_request(p) for p in (expired, taken)]
    await store.put_new(batch[1].object_key, taken_data)  # the first one's object has expired
    other = b"not the same bytes"
    await store.put_new(keys.trace_key("app", "hello", taken.trace_id), other)
    await commit_batch(pool, Batch(unmatched=batch))

    report = await adopt_unmatched(pool, store, {"app": app_with_hello()})
    assert (report.adopted, report.skipped, report.failed) == (0, 2, 0)
    assert await store.get(keys.trace_key("app", "hello", taken.trace_id)) == other
    assert await count_traces(pool, "app") == 0
    assert all(e.samples == () for e in await list_entries(pool, "app"))

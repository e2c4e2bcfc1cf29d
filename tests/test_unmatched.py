"""Unmatched (404) requests: capture, the bounded summary, events and the API.

Bad input (acceptance 4) is sent over a raw socket so that nothing in a client library
cleans it first; the load run (acceptance 3, small) is in ``test_unmatched_load.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
import pytest

from runtime import Canvas, Request
from tests.harness import Server, hold_puts, serve
from trace_store import keys
from trace_store.db import notify, unmatched
from trace_store.db.unmatched import StoredRequest
from trace_store.document import codec, schema
from trace_store.record import PendingTrace
from trace_store.writer.commit import Batch, commit_batch
from trace_store.writer.queue import WriterConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from trace_store.db import Pool

UNMATCHED = "/api/v1/canvases/app/unmatched"
KEY_RE = re.compile(
    r"unmatched/app/[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}\.json\.zst"
)


def app() -> Canvas:
    canvas = Canvas("app")

    @canvas.http("GET", "/users/:id")
    def get_user(request: Request) -> dict[str, Any]:
        return {"id": request.params["id"]}

    return canvas


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    async with serve(database_url, tmp_path, {"app": app()}) as running:
        yield running


async def raw_request(server: Server, target: bytes, method: bytes = b"GET") -> tuple[int, bytes]:
    """Send one request line as given; return the status and the body."""
    host, port = server.gateway.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            method + b" " + target + b" HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def pending(path: str, started_ns: int, method: str = "GET", canvas: str = "app") -> PendingTrace:
    p = PendingTrace(
        canvas=canvas,
        kind=keys.UNMATCHED,
        handler=None,
        started_ns=started_ns,
        duration_ns=0,
        method=method,
        path=path,
        query_string="",
        params={},
        raw_headers=[],
        body=b"",
    )
    p.ensure_id()
    return p


def stored(items: list[PendingTrace]) -> list[StoredRequest]:
    return [
        StoredRequest(
            p.canvas,
            p.method,
            p.path,
            p.started_ns,
            p.trace_id,
            keys.unmatched_key(p.canvas, p.trace_id),
        )
        for p in items
    ]


T0 = 1_800_000_000_000_000_000
MS = 1_000_000


async def test_bad_paths_get_clear_answers_and_are_stored_safely(server: Server) -> None:
    # Refused by aiohttp's parser with a 400 and a message, before any handler runs.
    for target in (b"/" + b"a" * 65536, b"/raw/\xff\xfe", b"/raw/a\x00b"):
        status, body = await raw_request(server, target)
        assert status == 400, (target[:20], body[:200])
        assert body
    # Accepted as 404s: the path is data inside the document and one text column.
    long_path = "/long/" + "é" * 1300
    cases = {
        b"/pct/%FF%FE": "/pct/%FF%FE",  # not UTF-8: yarl leaves it percent-encoded
        b"/nul/a%00b": "/nul/a\ufffdb",  # NUL cannot be Postgres text
        b"/dots/../../../etc/passwd": "/dots/../../../etc/passwd",
        b"/%2e%2e/%2e%2e/secret": "/../../secret",
        b"/long/" + b"%C3%A9" * 1300: None,  # 2.6 KB decoded: cut in the summary
    }
    for target in cases:
        status, body = await raw_request(server, target)
        assert status == 404, (target[:20], body[:200])
        assert orjson.loads(body)["error"]["code"] == "not_found"
    await server.flush()

    token = await server.token("app")
    status, listed = await server.api(UNMATCHED, token)
    assert status == 200
    by_path = {e["path"]: e for e in listed["unmatched"]}
    for summary_path in cases.values():
        if summary_path is not None:
            assert by_path[summary_path]["count"] == 1
    [cut] = [e for e in listed["unmatched"] if e["path_truncated"]]
    assert long_path.encode().startswith(cut["path"].encode())
    assert len(cut["path"].encode()) <= unmatched.MAX_PATH_BYTES

    # Keys come from the canvas and the trace id only; documents keep the exact path.
    store = server.running.services.store
    objects = await store.list_objects("unmatched/")
    assert len(objects) == len(cases)
    assert all(KEY_RE.fullmatch(o.key) for o in objects)
    assert await store.list_objects("traces/") == []
    paths = set()
    for info in objects:
        doc = codec.decode(await store.get(info.key))
        schema.validate("trace", doc)
        paths.add(doc["input"]["path"])
    assert paths == {"/pct/%FF%FE", "/nul/a\x00b", "/dots/../../../etc/passwd"} | {
        "/../../secret",
        long_path,
    }
    # The NUL request is readable through its own manifest.
    nul = by_path["/nul/a\ufffdb"]
    status, manifest = await server.api(f"{UNMATCHED}/{nul['trace_id']}", token)
    assert status == 200, manifest
    _, _, data = await server.fetch_base(manifest["base"]["url"])
    assert codec.decode(data)["input"]["path"] == "/nul/a\x00b"


async def test_one_batch_of_hostile_items_commits_whole_and_retries_count_once(
    pool: Pool,
) -> None:
    items = [
        pending("/a\x00b", T0),
        pending("/lone/\udcff", T0 + 1 * MS),
        pending("/" + "x" * 5000, T0 + 2 * MS),
        pending("/ok", T0 + 3 * MS, method="M" * 40),
        pending("/ok", T0 + 4 * MS),
        pending("/ok", T0 + 5 * MS),
    ]
    batch = Batch(unmatched=stored(items))
    await commit_batch(pool, batch)
    await commit_batch(pool, batch)  # a retry after a lost acknowledgement
    entries = {(e.method, e.path): e for e in await unmatched.list_entries(pool, "app")}
    assert set(entries) == {
        ("GET", "/a\ufffdb"),
        ("GET", "/lone/?"),
        ("GET", "/" + "x" * (unmatched.MAX_PATH_BYTES - 1)),
        ("M" * unmatched.MAX_METHOD_BYTES, "/ok"),
        ("GET", "/ok"),
    }
    ok = entries[("GET", "/ok")]
    assert (ok.count, ok.trace_id) == (2, items[-1].trace_id)
    assert ok.samples == (items[4].trace_id, items[5].trace_id)
    assert entries[("GET", "/" + "x" * (unmatched.MAX_PATH_BYTES - 1))].path_truncated


async def test_rows_keep_the_latest_samples_and_counts_add_up(pool: Pool) -> None:
    first = [pending("/same", T0 + i * MS) for i in range(4)]
    second = [pending("/same", T0 + (10 + i) * MS) for i in range(4)]
    await commit_batch(pool, Batch(unmatched=stored(first)))
    await commit_batch(pool, Batch(unmatched=stored(second)))
    [entry] = await unmatched.list_entries(pool, "app")
    assert entry.count == 8
    assert entry.trace_id == second[-1].trace_id
    assert entry.samples == tuple(p.trace_id for p in (first + second)[-5:])
    assert entry.first_seen < entry.last_seen
    assert entry.object_key == keys.unmatched_key("app", second[-1].trace_id)


async def test_summary_is_bounded_per_canvas_keeping_the_most_recent(pool: Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for start in (0, 10):
            items = [pending(f"/scan/{start + i}", T0 + (start + i) * MS) for i in range(10)]
            items += [
                pending(f"/other/{start + i}", T0 + (start + i) * MS, canvas="b") for i in range(2)
            ]
            await unmatched.record(conn, stored(items), bound=3)
    assert [e.path for e in await unmatched.list_entries(pool, "app")] == [
        "/scan/19",
        "/scan/18",
        "/scan/17",
    ]
    assert [e.path for e in await unmatched.list_entries(pool, "b")] == [
        "/other/11",
        "/other/10",
        "/other/1",
    ]


async def test_unmatched_events_are_published_when_the_batch_commits(
    pool: Pool, database_url: str
) -> None:
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener(
            notify.CHANNEL, lambda *args: [heard.put_nowait(e) for e in orjson.loads(args[3])]
        )
        items = [pending(f"/p/{i}", T0 + i * MS) for i in range(30)] + [
            pending("/p/0", T0 + 99 * MS)
        ]
        await commit_batch(pool, Batch(unmatched=stored(items)))
        event = await asyncio.wait_for(heard.get(), 5)
    finally:
        await listener.close()
    assert (event["canvas"], event["event"]) == ("app", "unmatched")
    data = event["data"]
    assert (data["requests"], data["paths"]) == (31, 30)
    assert len(data["latest"]) == unmatched.EVENT_ENTRIES
    assert data["latest"][0]["path"] == "/p/0"
    assert data["latest"][0]["count"] == 2


async def test_the_list_shows_only_requests_no_current_handler_matches(
    server: Server, pool: Pool
) -> None:
    # Rows for a matched path can exist: recorded while another version was serving.
    items = [
        pending("/users/7", T0),
        pending("/nobody", T0 + 1 * MS),
        pending("/users", T0 + 2 * MS),
    ]
    await commit_batch(pool, Batch(unmatched=stored(items)))
    token = await server.token("app")
    _, listed = await server.api(UNMATCHED, token)
    assert [e["path"] for e in listed["unmatched"]] == ["/users", "/nobody"]
    _, limited = await server.api(UNMATCHED + "?limit=1", token)
    assert [e["path"] for e in limited["unmatched"]] == ["/users"]
    assert set(limited["unmatched"][0]) >= {
        "method",
        "path",
        "count",
        "first_seen",
        "last_seen",
        "trace_id",
    }


async def test_unmatched_api_checks_tokens_and_ids(server: Server) -> None:
    token = await server.token("app")
    other = await server.token("zzz")
    assert (await server.api(UNMATCHED, None))[0] == 401
    assert (await server.api(UNMATCHED, other))[0] == 403
    for bad in ("0", "1001", "x"):
        status, body = await server.api(f"{UNMATCHED}?limit={bad}", token)
        assert status == 400, body
    status, body = await server.api(f"{UNMATCHED}/not-a-uuid", token)
    assert (status, body["error"]["code"]) == (400, "invalid_input")
    status, body = await server.api(f"{UNMATCHED}/{pending('/x', T0).trace_id}", token)
    assert (status, body["error"]["code"]) == (404, "trace_not_found")


async def test_a_scanner_cannot_crowd_handler_traces_out_of_the_queue(
    database_url: str, tmp_path: Path
) -> None:
    config = WriterConfig(queue_traces=8)
    async with serve(database_url, tmp_path, {"app": app()}, writer=config) as server:
        writer = server.running.services.writer
        gate = asyncio.Event()

        async def hold() -> None:
            await gate.wait()

        hold_puts(server, hold)
        statuses = [(await raw_request(server, f"/scan/{i}".encode()))[0] for i in range(20)]
        assert statuses == [404] * 20
        # Handler traces still find room.
        async with server.http.get(server.gateway + "/users/1") as response:
            assert response.status == 200
        assert writer.depth < config.queue_traces
        gate.set()
        await server.flush()
        metrics = server.running.services.metrics
        shed = metrics.traces_dropped.labels("unmatched_shed")._value.get()
        assert shed > 0
        token = await server.token("app")
        _, listed = await server.api(UNMATCHED, token)
        assert len(listed["unmatched"]) == 20 - shed
        _, traces = await server.api("/api/v1/canvases/app/handlers/get_user/traces", token)
        assert len(traces["traces"]) == 1


def test_safe_text_is_postgres_text_within_its_bound() -> None:
    assert unmatched.safe_text("/a\x00b", 100) == ("/a\ufffdb", False)
    assert unmatched.safe_text("/\ud800", 100) == ("/?", False)
    text, cut = unmatched.safe_text("é" * 10, 5)
    assert (text, cut) == ("éé", True)
    assert dataclasses.is_dataclass(unmatched.Sighting)

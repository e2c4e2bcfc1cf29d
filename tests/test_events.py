"""Live events (SPEC §8): the event stream's auth, delivery, heartbeats, resumption, the
listener's reconnection, and dropping a client that does not read."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import pytest

from gateway.config import EventSettings, ServeSettings
from gateway.events import EventHub
from gateway.events_api import EVENTS
from gateway.serve import start
from tests.canvases import blog, shop
from tests.harness import Server, SseReader, serve
from trace_store.db import notify

EVENTS_PATH = "/api/v1/canvases/{}/events"


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    async with serve(
        database_url,
        tmp_path,
        {"shop": shop, "blog": blog},
        admin_token="admin-token-0123456789",
        events=EventSettings(heartbeat=0.2),
    ) as running:
        yield running


def hub_of(server: Server) -> EventHub:
    return server.running.runners[0].app[EVENTS]


@contextlib.asynccontextmanager
async def stream(
    server: Server, canvas: str, token: str, last_event_id: str | None = None
) -> AsyncIterator[SseReader]:
    """An open event stream, past its first (id-only) block."""
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    timeout = aiohttp.ClientTimeout(total=None, sock_read=10)
    async with server.http.get(
        server.editor + EVENTS_PATH.format(canvas), headers=headers, timeout=timeout
    ) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"].startswith("no-cache")
        reader = SseReader(response)
        # The first block is "retry:" and the current id: the subscription exists now.
        first = await response.content.readuntil(b"\n\n")
        assert first.startswith(b"retry: "), first
        reader.last_id = first.split(b"id: ", 1)[1].strip().decode()
        yield reader


async def get(server: Server, path: str) -> None:
    # Two canvases are loaded: the gateway routes by host name.
    async with server.http.get(
        server.gateway + path, headers={"Host": "shop.localhost"}
    ) as response:
        assert response.status == 200


async def test_event_stream_checks_the_token_like_every_api_route(server: Server) -> None:
    shop_token = await server.token("shop")
    url = server.editor + EVENTS_PATH.format("shop")
    for headers, status, code in [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer strata_nope"}, 401, "unauthorized"),
        ({"Authorization": f"Bearer {await server.token('blog')}"}, 403, "forbidden"),
    ]:
        async with server.http.get(url, headers=headers) as response:
            assert response.status == status
            assert (await response.json())["error"]["code"] == code
    async with server.http.get(server.editor + EVENTS_PATH.format("Bad..Name")) as response:
        assert response.status == 401  # no token: nothing about the name is revealed
    status, body = await server.api(EVENTS_PATH.format("Bad..Name"), shop_token)
    assert status == 400, body
    status, body = await server.api(EVENTS_PATH.format("nowhere"), "admin-token-0123456789")
    assert status == 404, body


async def test_canvas_list_shows_what_the_token_may_read(server: Server) -> None:
    status, body = await server.api("/api/v1/canvases", await server.token("shop"))
    assert status == 200
    assert [c["name"] for c in body["canvases"]] == ["shop"]
    status, body = await server.api("/api/v1/canvases", "admin-token-0123456789")
    assert [c["name"] for c in body["canvases"]] == ["blog", "shop"]
    status, body = await server.api("/api/v1/canvases", None)
    assert status == 401


async def test_a_request_arrives_as_a_trace_event_on_its_canvas_only(server: Server) -> None:
    async with (
        stream(server, "shop", await server.token("shop")) as shop_events,
        stream(server, "blog", await server.token("blog")) as blog_events,
    ):
        started = time.monotonic()
        await get(server, "/users/42")
        event = await shop_events.until("trace", timeout=3)
        assert time.monotonic() - started < 2
        data = event.json()
        assert set(data) == {"trace_id", "handler_id", "started_at", "status", "duration_ms"}
        assert data["handler_id"] == "get_user"
        assert data["status"] == 200
        assert event.id is not None
        assert event.id.startswith(hub_of(server).epoch + "-")
        # The trace is readable by the time its event arrives (published in the commit).
        status, body = await server.api(
            f"/api/v1/canvases/shop/traces/{data['trace_id']}", await server.token("shop")
        )
        assert status == 200, body
        with pytest.raises(TimeoutError):
            await blog_events.next(timeout=0.5)


async def test_idle_streams_get_heartbeats(server: Server) -> None:
    async with stream(server, "shop", await server.token("shop")) as events:
        comment = await events.next(timeout=2, comments=True)
        assert comment.type == "comment"
        assert comment.data == "keep-alive"


async def test_last_event_id_replays_what_was_missed(server: Server) -> None:
    token = await server.token("shop")
    async with stream(server, "shop", token) as events:
        await get(server, "/users/1")
        first = await events.until("trace")
    resume_from = first.id
    assert resume_from is not None
    await get(server, "/users/2")
    await get(server, "/users/3")
    await server.flush()
    await asyncio.sleep(0.2)  # let the notifications reach the listener
    async with stream(server, "shop", token, last_event_id=resume_from) as events:
        replayed = [await events.until("trace") for _ in range(2)]
        assert [e.json()["handler_id"] for e in replayed] == ["get_user", "get_user"]
        ids = [int(e.id.rsplit("-", 1)[1]) for e in replayed if e.id]
        assert ids == sorted(ids)
        assert ids[0] > int(resume_from.rsplit("-", 1)[1])
        with pytest.raises(TimeoutError):
            await events.until("trace", timeout=0.4)
    # An id from another process (or epoch) cannot be resumed: the client is told to resync.
    async with stream(server, "shop", token, last_event_id="0badc0de-3") as events:
        resync = await events.next()
        assert resync.type == "resync"
        assert "another process" in resync.json()["reason"]


async def test_the_listener_reconnects_and_tells_streams_to_resync(
    server: Server, database_url: str
) -> None:
    hub = hub_of(server)
    old_epoch, old_pid = hub.epoch, hub.listener_pid
    async with stream(server, "shop", await server.token("shop")) as events:
        conn = await asyncpg.connect(database_url)
        try:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", old_pid)
        finally:
            await conn.close()
        resync = await events.until("resync", timeout=10)
        assert "reconnected" in resync.json()["reason"]
        assert hub.epoch != old_epoch
        assert hub.listener_pid != old_pid
        await get(server, "/users/7")
        event = await events.until("trace", timeout=3)
        assert event.id is not None
        assert event.id.startswith(hub.epoch)


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _flood(database_url: str, canvas: str, count: int, size: int) -> None:
    """``count`` trace events of about ``size`` bytes each, through real NOTIFY."""
    conn = await asyncpg.connect(database_url)
    try:
        pad = "x" * size
        await notify.publish_many(
            conn, [(canvas, "trace", {"trace_id": str(i), "pad": pad}) for i in range(count)]
        )
    finally:
        await conn.close()


async def test_a_client_that_does_not_read_is_dropped_not_buffered(
    server: Server, database_url: str
) -> None:
    hub = hub_of(server)
    token = await server.token("shop")
    host, port = server.editor.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    request = (
        f"GET {EVENTS_PATH.format('shop')} HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    async with stream(server, "shop", token) as reader:
        for _ in range(100):
            if hub.client_count() == 2:
                break
            await asyncio.sleep(0.02)
        assert hub.client_count() == 2
        received = 0
        for _ in range(40):  # 40 x 50 x 4 KB: far more than any buffer on the way
            await _flood(database_url, "shop", 50, 4000)
            while received < 50 * (_ + 1):
                await reader.until("trace")
                received += 1
            if hub.client_count() == 1:
                break
        # The reader got every event; the other client was dropped, not buffered.
        assert hub.client_count() == 1
        assert hub.buffered_bytes() < hub.settings.client_bytes
    async with server.http.get(server.editor + "/metrics") as response:
        text = await response.text()
    assert _metric(text, 'strata_events_clients_dropped_total{reason="slow"}') == 1
    # Its socket was aborted: after whatever the kernel held, the stream ends.
    sock.setblocking(True)
    sock.settimeout(5)
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(1 << 20):
            pass
    sock.close()


async def test_shutdown_does_not_wait_for_open_streams(database_url: str, tmp_path: Path) -> None:
    settings = dataclasses.replace(
        ServeSettings(),
        database_url=database_url,
        data_dir=tmp_path,
        gateway_port=0,
        editor_port=0,
        secret=b"test-secret-0123456789abcdef",
    )
    running = await start(settings, {"shop": shop})
    try:
        async with aiohttp.ClientSession() as http:
            server = Server(running, http)
            async with stream(server, "shop", await server.token("shop")) as events:
                started = time.monotonic()
                await running.close()
                assert time.monotonic() - started < 5
                with pytest.raises((EOFError, aiohttp.ClientError)):
                    await events.next(timeout=3)
    except BaseException:
        await running.close()
        raise


async def test_batch_events_are_packed_in_few_notifications_and_oversized_ones_refused(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    got: list[str] = []
    try:
        await conn.add_listener(notify.CHANNEL, lambda *args: got.append(args[3]))
        async with conn.transaction():
            await notify.publish_many(
                conn, [("shop", "trace", {"trace_id": str(i)}) for i in range(300)]
            )
        with pytest.raises(ValueError, match="too large"):
            await notify.publish_many(conn, [("shop", "trace", {"pad": "x" * 8000})])
        with pytest.raises(ValueError, match="unknown event"):
            await notify.publish_many(conn, [("shop", "bogus", {})])
        for _ in range(100):
            if sum(len(orjson.loads(p)) for p in got) >= 300:
                break
            await asyncio.sleep(0.02)
        events = [event for p in got for event in orjson.loads(p)]
        assert [e["data"]["trace_id"] for e in events] == [str(i) for i in range(300)]
        # ~50 bytes an event: 300 fit in a few payloads, each under the 8000-byte limit.
        assert 2 <= len(got) <= 4
        assert all(len(p.encode()) <= notify.MAX_PAYLOAD for p in got)
    finally:
        await conn.close()


def test_pack_fills_payloads_to_the_limit_in_order() -> None:
    events = [("shop", "trace", {"trace_id": str(i), "pad": "x" * 3000}) for i in range(5)]
    payloads = notify.pack(events)
    assert [len(orjson.loads(p)) for p in payloads] == [2, 2, 1]
    assert all(len(p.encode()) <= notify.MAX_PAYLOAD for p in payloads)
    unpacked = [e["data"]["trace_id"] for p in payloads for e in orjson.loads(p)]
    assert unpacked == ["0", "1", "2", "3", "4"]
    assert notify.pack([]) == []

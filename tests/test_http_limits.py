"""Time limits and protocol errors at the HTTP layer of both ports (SPEC §12): headers
and bodies must arrive in time, a blocking sync handler holds a thread and not the
event loop, and unparsable requests get strata's JSON error without their bytes in
the log."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from runtime import Canvas, Request, Response
from tests.harness import Server, serve

slow = Canvas("slow")


@slow.function()
def double(value: int) -> int:
    return value * 2


@slow.http("GET", "/block")
def block(request: Request) -> dict[str, Any]:
    """A sync handler that blocks: it must hold a pool thread, never the event loop."""
    time.sleep(float(request.query.get("s", "1")))
    return {"doubled": double(21)}


@slow.http("POST", "/echo")
async def echo(request: Request) -> Response:
    return Response(200, request.body)


async def _raw(port: int, payload: bytes, *, wait: float) -> tuple[bytes, float]:
    """Send ``payload``, then read until the server closes; what came back, and when."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.monotonic()
    writer.write(payload)
    await writer.drain()
    data = b""
    try:
        async with asyncio.timeout(wait):
            while chunk := await reader.read(65536):
                data += chunk
    except TimeoutError:
        raise AssertionError(f"still open after {wait} s; received {data[:300]!r}") from None
    finally:
        writer.close()
    return data, time.monotonic() - t0


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _probe(server: Server, url: str) -> float:
    t0 = time.monotonic()
    async with server.http.get(url + "/healthz") as response:
        assert response.status == 200
    return time.monotonic() - t0


async def test_a_blocking_sync_handler_holds_neither_port_and_is_recorded(
    database_url: str, tmp_path: Path
) -> None:
    async with serve(database_url, tmp_path, {"slow": slow}) as server:
        blocked = asyncio.create_task(server.http.get(server.gateway + "/block?s=1.5"))
        await asyncio.sleep(0.3)  # the handler is asleep in its thread now
        assert not blocked.done()
        for url in (server.gateway, server.editor):
            assert await _probe(server, url) < 0.5  # would be ~1.2 s on the event loop
        async with await blocked as response:
            assert response.status == 200
            assert await response.json() == {"doubled": 42}
        async with server.http.get(server.editor + "/metrics") as response:
            metrics = await response.text()
        lag = {  # the loop's own view: no timer tick was held back 100 ms or more
            line.split('le="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("strata_event_loop_lag_seconds_bucket")
        }
        assert lag["+Inf"] > 20
        assert lag["0.1"] == lag["+Inf"]
        await server.flush()
        token = await server.token("slow")
        _, listed = await server.api("/api/v1/canvases/slow/handlers/block/traces", token)
        doc = await server.trace_doc("slow", token, listed["traces"][0]["trace_id"])
        assert [(c["function"], c["args"], c["result"]) for c in doc["calls"]] == [
            ("double", [21], 42)
        ]


@pytest.mark.parametrize("which", ["gateway", "editor"])
@pytest.mark.parametrize(
    "payload",
    [b"", b"GET /hello HTTP/1.1\r\nHost: slow.localhost\r\nX-Half: "],
    ids=["nothing", "half-the-headers"],
)
async def test_a_request_whose_headers_never_complete_is_closed_in_time(
    database_url: str, tmp_path: Path, which: str, payload: bytes
) -> None:
    async with serve(database_url, tmp_path, {"slow": slow}, header_timeout=0.5) as server:
        data, elapsed = await _raw(_port(getattr(server, which)), payload, wait=5)
        assert data == b""  # closed without an answer: no request was received
        assert 0.4 < elapsed < 2.5


async def test_a_body_that_never_completes_gets_408_and_is_not_stored(
    database_url: str, tmp_path: Path
) -> None:
    async with serve(database_url, tmp_path, {"slow": slow}, body_timeout=0.5) as server:
        head = (
            b"POST /echo HTTP/1.1\r\nHost: slow.localhost\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"
        )
        data, elapsed = await _raw(_port(server.gateway), head + b"0123456789", wait=5)
        assert data.startswith(b"HTTP/1.1 408 ")
        error = orjson.loads(data.split(b"\r\n\r\n", 1)[1])["error"]
        assert error["code"] == "request_timeout"
        assert elapsed < 2.5
        await server.flush()
        token = await server.token("slow")
        _, listed = await server.api("/api/v1/canvases/slow/handlers/echo/traces", token)
        assert listed["traces"] == []


@pytest.mark.parametrize("which", ["gateway", "editor"])
async def test_an_unparsable_request_gets_json_and_its_bytes_stay_out_of_the_log(
    database_url: str, tmp_path: Path, which: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = b"LOGLEAK-authz-secret"
    async with serve(database_url, tmp_path, {"slow": slow}) as server:
        caplog.set_level(logging.DEBUG)
        request = (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + b"\x01\r\n\r\n"
        )
        data, _ = await _raw(_port(getattr(server, which)), request, wait=5)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.split(b" ", 2)[1] == b"400"  # HTTP/1.0: the request line was not trusted
        assert b"Content-Type: application/json" in head
        assert orjson.loads(body)["error"]["code"] == "bad_request"
        async with server.http.get(server.editor + "/metrics") as response:
            metrics = await response.text()
        assert f'strata_malformed_requests_total{{port="{which}",status="400"}} 1.0' in metrics
    assert secret.decode() not in caplog.text
    assert "malformed request" in caplog.text
    assert "Traceback" not in caplog.text

"""Inputs the OpenAPI fuzzer (``test_openapi_fuzz``) found answered with a 500.

Each one now gets a 4xx in strata's JSON error shape, or the documented answer, and
changes nothing. The requests go out raw (``http.client``), since the point of several
is bytes a polite client would never send.
"""

from __future__ import annotations

import asyncio
import http.client
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from gateway.events_api import EVENTS
from tests.canvases import shop
from tests.harness import Server, serve

API = "/api/v1/canvases/shop"
#: The largest UUID: its 48-bit time field is in the year 10889, past ``datetime``.
LAST_UUID = "ffffffff-ffff-ffff-ffff-ffffffffffff"


@pytest.fixture
async def server(database_url: str, tmp_path: Path):
    async with serve(database_url, tmp_path, {"shop": shop}) as running:
        async with running.http.get(running.gateway + "/users/7") as response:
            assert response.status == 200
        await running.flush()
        yield running


def _send(
    base: str, method: str, target: str, headers: dict[str, str | bytes], body: bytes | None
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        # An event stream never ends: its first block is enough.
        stream = response.getheader("Content-Type", "").startswith("text/event-stream")
        data = response.read1(65536) if stream else response.read()
        return response.status, dict(response.getheaders()), data
    finally:
        conn.close()


async def raw(
    server: Server,
    method: str,
    target: str,
    *,
    token: str | None = None,
    headers: dict[str, str | bytes] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Send exactly ``target`` (already percent-encoded) and ``headers`` (bytes as is)."""
    sent: dict[str, str | bytes] = {"Authorization": f"Bearer {token}"} if token else {}
    sent.update(headers or {})
    return await asyncio.to_thread(_send, server.editor, method, target, sent, body)


def assert_error(status: int, body: bytes, expected: int, code: str) -> None:
    assert status == expected, body
    error = orjson.loads(body)["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]


async def _trace_id(server: Server, token: str) -> str:
    status, body = await server.api(f"{API}/handlers/get_user/traces", token)
    assert status == 200, body
    return str(body["traces"][0]["trace_id"])


async def _patch_count(server: Server) -> int:
    return int(await server.running.services.pool.fetchval("SELECT count(*) FROM patches"))


@pytest.mark.parametrize(
    "credentials",
    [b"Bearer strata_\xff\xfe", b"Bearer \xe9t\xe9", b"Bearer strata_\xc3("],
    ids=["invalid-utf8", "latin-1", "truncated-utf8"],
)
async def test_a_token_with_bytes_that_are_not_utf8_is_401(
    server: Server, credentials: bytes
) -> None:
    status, _, body = await raw(
        server, "GET", f"{API}/handlers", headers={"Authorization": credentials}
    )
    assert_error(status, body, 401, "unauthorized")


@pytest.mark.parametrize("path", ["handlers/get_user/traces", "unmatched"])
@pytest.mark.parametrize(
    "limit",
    ["%C2%B2", "%D9%A1", "9" * 5000, "1" + "0" * 30],
    ids=["superscript-two", "arabic-indic-one", "5000-digits", "past-int64"],
)
async def test_a_limit_that_is_not_a_small_ascii_number_is_400(
    server: Server, path: str, limit: str
) -> None:
    token = await server.token("shop")
    status, _, body = await raw(server, "GET", f"{API}/{path}?limit={limit}", token=token)
    assert_error(status, body, 400, "invalid_input")


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("POST", "/rerun", None),
        ("POST", "/functions/add_tax/run", b'{"args": [1, 0.2]}'),
    ],
    ids=["manifest", "rerun", "function-run"],
)
async def test_a_trace_id_whose_time_is_past_year_9999_is_404(
    server: Server, method: str, suffix: str, body: bytes | None
) -> None:
    token = await server.token("shop")
    for trace_id in (LAST_UUID, LAST_UUID.upper(), "e677d21f-dc00-7000-8000-000000000000"):
        target = f"{API}/traces/{trace_id}{suffix}"
        status, _, data = await raw(server, method, target, token=token, body=body)
        assert_error(status, data, 404, "trace_not_found")
    assert await _patch_count(server) == 0


class Raw(bytes):
    """An argument already encoded (orjson will not encode 900 levels of nesting)."""


@pytest.mark.parametrize(
    "arg",
    [
        {"$strata": "decimal", "v": "x"},
        {"$strata": "timedelta", "v": [1, 2]},
        {"$strata": "timedelta", "v": [1e10, 0, 0]},
        {"$strata": "timedelta", "v": [10**10, 0, 0]},
        {"$strata": "uuid", "v": {}},
        {"$strata": "date", "v": 5},
        {"$strata": "dict", "v": [[1]]},
        {"$strata": "set", "v": [{"$strata": "set", "v": [1]}]},
        {"$strata": ["int"], "v": "1"},
        Raw(b"[" * 900 + b"]" * 900),
    ],
    ids=[
        "decimal-x",
        "timedelta-two-items",
        "timedelta-float-overflow",
        "timedelta-int-overflow",
        "uuid-object",
        "date-number",
        "dict-not-pairs",
        "set-of-sets",
        "tag-not-a-string",
        "900-deep-lists",
    ],
)
async def test_a_malformed_tagged_argument_is_400_and_stores_no_patch(
    server: Server, arg: Any
) -> None:
    token = await server.token("shop")
    trace_id = await _trace_id(server, token)
    target = f"{API}/traces/{trace_id}/functions/add_tax/run"
    encoded = arg if isinstance(arg, Raw) else orjson.dumps(arg)
    body = b'{"args": [' + encoded + b", 0.2]}"
    status, _, data = await raw(server, "POST", target, token=token, body=body)
    assert_error(status, data, 400, "invalid_input")
    assert b"malformed tagged value" in data
    assert await _patch_count(server) == 0


async def _signed_url(server: Server) -> tuple[str, int]:
    token = await server.token("shop")
    status, manifest = await server.api(f"{API}/traces/{await _trace_id(server, token)}", token)
    assert status == 200, manifest
    url = urlsplit(manifest["base"]["url"])
    return f"{url.path}?{url.query}", manifest["base"]["bytes"]


async def test_head_of_a_signed_url_answers_the_headers_of_its_get(server: Server) -> None:
    target, size = await _signed_url(server)
    status, headers, body = await raw(server, "HEAD", target)
    assert status == 200
    assert body == b""
    assert headers["Content-Length"] == str(size)
    assert headers["Content-Encoding"] == "zstd"
    status, headers, body = await raw(server, "GET", target)
    assert (status, len(body), headers["Content-Length"]) == (200, size, str(size))


@pytest.mark.parametrize(
    ("param", "value"),
    [("sig", "%C3%A9"), ("sig", "%C2%B2" * 32), ("expires", "%C2%B2"), ("expires", "9" * 5000)],
    ids=["sig-non-ascii", "sig-unicode-digits", "expires-superscript", "expires-5000-digits"],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_a_signed_url_with_a_non_ascii_signature_or_expiry_is_403(
    server: Server, method: str, param: str, value: str
) -> None:
    target, _ = await _signed_url(server)
    path, _, query = target.partition("?")
    fields = dict(item.split("=", 1) for item in query.split("&"))
    fields[param] = value
    tampered = path + "?" + "&".join(f"{k}={v}" for k, v in fields.items())
    status, _, body = await raw(server, method, tampered)
    assert status == 403, body
    if method == "GET":
        assert_error(status, body, 403, "forbidden")


@pytest.mark.parametrize(
    "sequence", ["²", "١", "9" * 5000], ids=["superscript-two", "arabic-indic", "5000-digits"]
)
async def test_a_last_event_id_with_a_non_ascii_or_huge_sequence_resyncs(
    server: Server, sequence: str
) -> None:
    token = await server.token("shop")
    epoch = server.running.runners[0].app[EVENTS].epoch
    last_event_id = f"{epoch}-{sequence}".encode()
    status, headers, body = await raw(
        server, "GET", f"{API}/events", token=token, headers={"Last-Event-ID": last_event_id}
    )
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/event-stream")
    assert b"event: resync" in body


@pytest.mark.parametrize(
    "name",
    ["%00", "app.js%00", "x" * 300, "a/" + "b" * 256],
    ids=["nul", "nul-suffix", "300", "256"],
)
async def test_a_static_path_with_nul_or_an_overlong_name_is_404(server: Server, name: str) -> None:
    status, _, body = await raw(server, "GET", f"/static/{name}")
    assert_error(status, body, 404, "not_found")


async def test_a_method_a_route_does_not_have_is_405_with_allow(server: Server) -> None:
    token = await server.token("shop")
    status, headers, body = await raw(server, "DELETE", f"{API}/handlers", token=token)
    assert_error(status, body, 405, "method_not_allowed")
    assert set(headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}


@pytest.mark.parametrize("target", ["/no/such%0Apath", "/no/%0D%0Ax", "/%0A"])
async def test_a_path_with_a_line_break_is_an_unmatched_request_like_any_other(
    server: Server, target: str
) -> None:
    status, _, body = await asyncio.to_thread(_send, server.gateway, "GET", target, {}, None)
    assert_error(status, body, 404, "not_found")
    await server.flush()
    unmatched = await server.running.services.pool.fetchval("SELECT count(*) FROM unmatched")
    assert unmatched == 1

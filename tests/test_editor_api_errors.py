"""Every bad input to the editor API gets a clear 4xx in strata's JSON error shape."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.canvases import shop
from tests.harness import Server, serve
from trace_store.db import index

API = "/api/v1/canvases"


@pytest.fixture
async def server(database_url: str, tmp_path: Path):
    async with serve(
        database_url, tmp_path, {"shop": shop}, admin_token="admin-token-for-tests"
    ) as running:
        async with running.http.get(running.gateway + "/users/7") as response:
            assert response.status == 200
        await running.flush()
        yield running


async def _trace_id(server: Server, token: str) -> str:
    status, body = await server.api(f"{API}/shop/handlers/get_user/traces", token)
    assert status == 200
    return str(body["traces"][0]["trace_id"])


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "no header"),
        ({"Authorization": "Basic abc"}, "wrong scheme"),
        ({"Authorization": "Bearer "}, "empty token"),
        ({"Authorization": "Bearer strata_not-a-real-token"}, "unknown token"),
        ({"Authorization": "Bearer " + "x" * 5000}, "oversized token"),
    ],
)
async def test_missing_or_invalid_token_is_401(
    server: Server, headers: dict[str, str], why: str
) -> None:
    status, body = await server.api(f"{API}/shop/handlers", None, headers=headers)
    assert status == 401, why
    assert body["error"]["code"] == "unauthorized"
    assert body["error"]["message"]


async def test_admin_token_reads_every_canvas(server: Server) -> None:
    status, body = await server.api(f"{API}/shop/handlers", "admin-token-for-tests")
    assert status == 200
    assert {h["id"] for h in body["handlers"]} >= {"get_user", "create-order"}


async def test_token_of_another_canvas_is_403(server: Server) -> None:
    other = await server.token("blog")
    status, body = await server.api(f"{API}/shop/handlers", other)
    assert status == 403
    assert body["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        (f"{API}/nope/handlers", 404, "not_found"),
        (f"{API}/Bad_Canvas!/handlers", 400, "invalid_input"),
        (f"{API}/shop/handlers/no_such/traces", 404, "not_found"),
        (f"{API}/shop/handlers/BAD%20ID/traces", 400, "invalid_input"),
        (f"{API}/shop/handlers/get_user/traces?limit=0", 400, "invalid_input"),
        (f"{API}/shop/handlers/get_user/traces?limit=501", 400, "invalid_input"),
        (f"{API}/shop/handlers/get_user/traces?limit=ten", 400, "invalid_input"),
        (f"{API}/shop/handlers/get_user/traces?before=not-a-uuid", 400, "invalid_input"),
        (f"{API}/shop/traces/not-a-uuid", 400, "invalid_input"),
        (f"{API}/shop/traces/01a20400-0ca1-72de-be1b-09fcceaec63a", 404, "trace_not_found"),
        (f"{API}/shop/traces/..%2F..%2Fetc%2Fpasswd", 400, "invalid_input"),
        (f"{API}/shop/unknown-route", 404, "not_found"),
    ],
)
async def test_bad_ids_and_unknown_things(
    server: Server, path: str, status: int, code: str
) -> None:
    got, body = await server.api(path, "admin-token-for-tests")
    assert got == status, body
    assert body["error"]["code"] == code
    assert body["error"]["message"]


async def test_wrong_method_is_405_json(server: Server) -> None:
    status, body = await server.api(
        f"{API}/shop/handlers", "admin-token-for-tests", method="DELETE"
    )
    assert status == 405
    assert body["error"]["code"] == "method_not_allowed"


async def test_cursor_pages_through_all_traces(server: Server) -> None:
    for i in range(4):
        async with server.http.get(server.gateway + f"/users/{i}") as response:
            assert response.status == 200
    await server.flush()
    token = await server.token("shop")
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        query = "?limit=2" + (f"&before={cursor}" if cursor else "")
        status, body = await server.api(f"{API}/shop/handlers/get_user/traces{query}", token)
        assert status == 200
        seen += [t["trace_id"] for t in body["traces"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert len(seen) == 5
    assert len(set(seen)) == 5
    assert seen == sorted(seen, reverse=True)  # UUIDv7: newest first


def _tamper(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    path = changes.pop("_path", parts.path) if "_path" in changes else parts.path
    query.pop("_path", None)
    return f"{parts.scheme}://{parts.netloc}{path}?" + "&".join(
        f"{k}={v}" for k, v in query.items()
    )


async def test_signed_urls_refuse_tampering_expiry_and_traversal(server: Server) -> None:
    token = await server.token("shop")
    trace_id = await _trace_id(server, token)
    status, manifest = await server.api(f"{API}/shop/traces/{trace_id}", token)
    url = manifest["base"]["url"]
    assert (await server.fetch_base(url))[0] == 200

    sig = parse_qs(urlsplit(url).query)["sig"][0]
    flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
    expires = parse_qs(urlsplit(url).query)["expires"][0]
    other_key = re.sub(
        r"[0-9a-f-]{36}\.json\.zst",
        "00000000-0000-7000-8000-000000000000.json.zst",
        urlsplit(url).path,
    )
    bad_urls = {
        "signature": _tamper(url, sig=flipped),
        "expiry pushed later": _tamper(url, expires=str(int(expires) + 3600)),
        "other key": _tamper(url, _path=other_key),
        "traversal": _tamper(url, _path="/objects/traces/../../secret"),
        "encoded traversal": _tamper(url, _path="/objects/traces%2F..%2F..%2Fsecret"),
        "no signature": url.split("&sig=")[0],
    }
    for why, bad in bad_urls.items():
        status, _, data = await server.fetch_base(bad)
        assert status in (403, 404), why
        assert b"strata.trace" not in data, why
    # A correctly signed URL that has expired is refused as well.
    signer = server.running.services.signer
    row = await index.get_trace(server.running.services.pool, "shop", trace_id)
    assert row is not None
    from datetime import timedelta

    expired = signer.sign(row.object_key, timedelta(seconds=10), now=time.time() - 60)
    status, _, data = await server.fetch_base(expired.url)
    assert status == 403
    assert b"expired" in data
    # The secret file the local store keeps next to the objects is not reachable.
    forged = signer.sign("secret", timedelta(minutes=5))
    status, _, data = await server.fetch_base(forged.url)
    assert status == 404
    assert b"test-secret" not in data


async def test_a_lost_database_is_503_with_retry_after_and_one_line_a_few_times(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    import asyncpg

    token = await server.token("shop")
    with socket.socket() as probe:  # a port nothing listens on: the database is gone
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    services = server.running.services
    real = services.pool
    services.pool = await asyncpg.create_pool(
        f"postgresql://strata@127.0.0.1:{port}/gone", min_size=0, timeout=2
    )
    try:
        for path in ("/handlers/get_user/traces", "/unmatched", "/handlers"):
            for which in (token, "strata_never-seen-token"):  # cached, and not cached
                status, body = await server.api(f"/api/v1/canvases/shop{path}", which)
                assert status == 503, body
                assert body["error"]["code"] == "database_unavailable"
        async with server.http.get(
            server.editor + "/api/v1/canvases/shop/unmatched",
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            assert response.headers["Retry-After"] == "5"
    finally:
        await services.pool.close()
        services.pool = real
    assert "Traceback" not in caplog.text
    assert len([r for r in caplog.records if r.name == "strata.api"]) <= 4

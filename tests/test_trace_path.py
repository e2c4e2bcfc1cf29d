"""The whole trace path on the embedded defaults: request -> object -> index -> manifest
-> signed URL -> bytes, with every document checked against the schema."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.canvases import blog, shop
from tests.harness import Server, serve
from trace_store.document import schema


@pytest.fixture
async def server(database_url: str, tmp_path: Path):
    async with serve(database_url, tmp_path, {"shop": shop}) as running:
        yield running


async def _only_trace(server: Server, token: str, handler: str) -> str:
    status, body = await server.api(f"/api/v1/canvases/shop/handlers/{handler}/traces", token)
    assert status == 200, body
    assert len(body["traces"]) == 1, body
    return str(body["traces"][0]["trace_id"])


async def test_request_becomes_a_trace_readable_through_its_signed_url(server: Server) -> None:
    async with server.http.get(
        server.gateway + "/users/42?verbose=1&tag=a&tag=b",
        headers={"Authorization": "Bearer grand-user-secret", "Cookie": "sid=1", "X-Ok": "yes"},
    ) as response:
        assert response.status == 200
        assert (await response.json())["id"] == "42"
    await server.flush()
    token = await server.token("shop")
    trace_id = await _only_trace(server, token, "get_user")

    status, manifest = await server.api(f"/api/v1/canvases/shop/traces/{trace_id}", token)
    assert status == 200
    assert manifest["patches"] == []
    assert manifest["base"]["content_encoding"] == "zstd"
    status, headers, data = await server.fetch_base(manifest["base"]["url"])
    assert status == 200
    assert headers["Content-Encoding"] == "zstd"
    assert hashlib.sha256(data).hexdigest() == manifest["base"]["sha256"]
    assert len(data) == manifest["base"]["bytes"]

    doc = await server.trace_doc("shop", token, trace_id)
    schema.validate("trace", doc)
    assert doc["trace_id"] == trace_id
    assert doc["handler"] == {
        "id": "get_user",
        "kind": "http",
        "method": "GET",
        "route": "/users/:id",
    }
    assert doc["input"]["path"] == "/users/42"
    assert doc["input"]["params"] == {"id": "42"}
    assert doc["input"]["query"] == {"verbose": ["1"], "tag": ["a", "b"]}
    headers_in = {name.lower(): value for name, value in doc["input"]["headers"]}
    assert headers_in["authorization"] == "[redacted]"
    assert headers_in["cookie"] == "[redacted]"
    assert headers_in["x-ok"] == "yes"
    assert doc["result"]["status"] == 200
    assert [c["function"] for c in doc["calls"]] == ["time.now", "random.random"]
    assert all(c["kind"] == "builtin" and "args" not in c for c in doc["calls"])


async def test_user_function_calls_are_recorded_with_args_and_parents(server: Server) -> None:
    body = {"items": [{"price": 2.5, "qty": 2}, {"price": 1, "qty": 1}]}
    async with server.http.post(server.gateway + "/orders", json=body) as response:
        assert response.status == 201
        assert response.headers["x-a"] == "b"
        assert await response.json() == {"total": 7.2}
    await server.flush()
    token = await server.token("shop")
    doc = await server.trace_doc("shop", token, await _only_trace(server, token, "create-order"))
    schema.validate("trace", doc)
    calls = {c["function"]: c for c in doc["calls"]}
    assert calls["subtotal"]["args"] == [body["items"]]
    assert calls["subtotal"]["result"] == 6.0
    assert calls["add_tax"]["args"] == [6.0, 0.2]
    assert calls["add_tax"]["result"] == 7.2
    assert calls["order_total"]["parent"] is None
    assert calls["subtotal"]["parent"] == calls["order_total"]["id"]
    assert calls["add_tax"]["parent"] == calls["order_total"]["id"]
    assert [c["function"] for c in doc["calls"]] == ["order_total", "subtotal", "add_tax"]
    assert doc["result"]["status"] == 201
    assert json.loads(doc["input"]["body"]["data"]) == body


async def test_concurrent_async_calls_get_their_own_ids(server: Server) -> None:
    async with server.http.get(server.gateway + "/pair") as response:
        assert await response.json() == [2, 4]
    await server.flush()
    token = await server.token("shop")
    doc = await server.trace_doc("shop", token, await _only_trace(server, token, "pair"))
    schema.validate("trace", doc)
    assert sorted(c["args"][0] for c in doc["calls"]) == [1, 2]
    assert sorted(c["result"] for c in doc["calls"]) == [2, 4]
    assert len({c["id"] for c in doc["calls"]}) == 2


async def test_handler_error_is_a_500_and_a_trace_with_error(server: Server) -> None:
    async with server.http.get(server.gateway + "/fail") as response:
        assert response.status == 500
        body = await response.json()
        assert "broken on purpose" not in str(body)  # no details leak to grand-users
    await server.flush()
    token = await server.token("shop")
    doc = await server.trace_doc("shop", token, await _only_trace(server, token, "fail"))
    schema.validate("trace", doc)
    assert doc["error"]["type"] == "ValueError"
    assert doc["error"]["message"] == "broken on purpose"
    assert "Traceback" in doc["error"]["traceback"]
    assert doc["result"]["status"] == 500


async def test_bad_json_body_is_a_400_for_the_grand_user(server: Server) -> None:
    async with server.http.post(server.gateway + "/orders", data=b"{not json") as response:
        assert response.status == 400
        assert "not valid JSON" in (await response.json())["error"]["message"]


async def test_unsampled_handler_stores_nothing(server: Server) -> None:
    for _ in range(3):
        async with server.http.get(server.gateway + "/quiet") as response:
            assert await response.text() == "unsampled"
    await server.flush()
    token = await server.token("shop")
    status, body = await server.api("/api/v1/canvases/shop/handlers/quiet/traces", token)
    assert status == 200
    assert body["traces"] == []


async def test_wildcard_route_and_literal_precedence(server: Server) -> None:
    async with server.http.get(server.gateway + "/files/a/b/c.txt") as response:
        assert await response.json() == {"path": "a/b/c.txt"}
    async with server.http.get(server.gateway + "/users/me") as response:
        assert await response.text() == "me"


async def test_binary_bodies_are_kept_as_base64(server: Server) -> None:
    payload = bytes(range(256))
    async with server.http.post(server.gateway + "/echo", data=payload) as response:
        assert await response.read() == payload
    await server.flush()
    token = await server.token("shop")
    doc = await server.trace_doc("shop", token, await _only_trace(server, token, "echo"))
    schema.validate("trace", doc)
    assert doc["input"]["body"]["encoding"] == "base64"
    assert doc["input"]["body"]["bytes"] == 256


async def test_body_limit_truncates_and_says_so(database_url: str, tmp_path: Path) -> None:
    from trace_store.document.build import TraceLimits

    limits = TraceLimits(max_body_bytes=16)
    async with serve(database_url, tmp_path, {"shop": shop}, limits=limits) as server:
        async with server.http.post(server.gateway + "/echo", data=b"x" * 100) as response:
            assert len(await response.read()) == 100  # the grand-user gets everything
        await server.flush()
        token = await server.token("shop")
        doc = await server.trace_doc("shop", token, await _only_trace(server, token, "echo"))
    schema.validate("trace", doc)
    assert doc["truncated"] is True
    assert set(doc["limits"]["hit"]) == {"request_body", "response_body"}
    assert doc["input"]["body"] == {
        "encoding": "utf-8",
        "data": "x" * 16,
        "bytes": 100,
        "truncated": True,
    }


async def test_two_canvases_by_host_and_tokens_do_not_cross(
    database_url: str, tmp_path: Path
) -> None:
    async with serve(database_url, tmp_path, {"shop": shop, "blog": blog}) as server:
        port = server.gateway.rsplit(":", 1)[1]
        async with server.http.get(
            f"http://127.0.0.1:{port}/posts/hi", headers={"Host": f"blog.localhost:{port}"}
        ) as response:
            assert await response.json() == {"slug": "hi"}
        async with server.http.get(
            f"http://127.0.0.1:{port}/users/1", headers={"Host": f"shop.localhost:{port}"}
        ) as response:
            assert response.status == 200
        async with server.http.get(
            f"http://127.0.0.1:{port}/users/1", headers={"Host": f"nope.localhost:{port}"}
        ) as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "unknown_canvas"
        await server.flush()
        shop_token, blog_token = await server.token("shop"), await server.token("blog")
        status, body = await server.api(
            "/api/v1/canvases/blog/handlers/get_post/traces", blog_token
        )
        assert status == 200
        assert len(body["traces"]) == 1
        blog_trace = body["traces"][0]["trace_id"]
        status, body = await server.api(
            "/api/v1/canvases/blog/handlers/get_post/traces", shop_token
        )
        assert status == 403
        assert body["error"]["code"] == "forbidden"
        status, _ = await server.api(f"/api/v1/canvases/blog/traces/{blog_trace}", shop_token)
        assert status == 403
        # The shop token cannot reach the blog trace through its own canvas either.
        status, _ = await server.api(f"/api/v1/canvases/shop/traces/{blog_trace}", shop_token)
        assert status == 404

"""Reruns and function runs append patches; the base object never changes."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.canvases import shop
from tests.harness import Server, serve
from trace_store.document import schema
from trace_store.document.merge import merge

API = "/api/v1/canvases/shop"
ORDER = {"items": [{"price": 2.5, "qty": 2}, {"price": 1, "qty": 1}]}


@pytest.fixture
async def server(database_url: str, tmp_path: Path):
    async with serve(database_url, tmp_path, {"shop": shop}) as running:
        yield running


async def _order_trace(server: Server) -> tuple[str, str]:
    async with server.http.post(server.gateway + "/orders", json=ORDER) as response:
        assert response.status == 201
    await server.flush()
    token = await server.token("shop")
    status, body = await server.api(f"{API}/handlers/create-order/traces", token)
    assert status == 200
    return token, str(body["traces"][0]["trace_id"])


async def _base_bytes(server: Server, token: str, trace_id: str) -> tuple[bytes, dict[str, Any]]:
    status, manifest = await server.api(f"{API}/traces/{trace_id}", token)
    assert status == 200
    status, _, data = await server.fetch_base(manifest["base"]["url"])
    assert status == 200
    return data, manifest


async def _patch_rows(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM patches"))
    finally:
        await conn.close()


async def test_rerun_and_function_runs_patch_without_touching_the_base(server: Server) -> None:
    token, trace_id = await _order_trace(server)
    before, _ = await _base_bytes(server, token, trace_id)

    status, rerun = await server.api(f"{API}/traces/{trace_id}/rerun", token, method="POST")
    assert status == 201, rerun
    schema.validate("patch", rerun)
    assert rerun["kind"] == "rerun"
    assert rerun["seq"] == 1
    assert rerun["trace_id"] == trace_id
    assert rerun["result"]["status"] == 201
    assert [c["function"] for c in rerun["calls"]] == ["order_total", "subtotal", "add_tax"]

    status, run = await server.api(
        f"{API}/traces/{trace_id}/functions/add_tax/run",
        token,
        method="POST",
        json={"args": [100, 0.5]},
    )
    assert status == 201, run
    schema.validate("patch", run)
    assert run["kind"] == "function_run"
    assert run["seq"] == 2
    assert run["result"] == 150.0
    assert run["args"] == [100, 0.5]

    status, nested = await server.api(
        f"{API}/traces/{trace_id}/functions/order_total/run",
        token,
        method="POST",
        json={"args": [[{"price": 10, "qty": 3}], 0.1]},
    )
    assert status == 201
    assert nested["result"] == 33.0
    assert [c["function"] for c in nested["calls"]] == ["subtotal", "add_tax"]

    after, manifest = await _base_bytes(server, token, trace_id)
    assert after == before
    assert hashlib.sha256(after).hexdigest() == manifest["base"]["sha256"]
    assert [p["seq"] for p in manifest["patches"]] == [1, 2, 3]
    status, listing = await server.api(f"{API}/handlers/create-order/traces", token)
    assert listing["traces"][0]["patch_count"] == 3

    doc = await server.trace_doc("shop", token, trace_id)
    view = merge(doc, manifest["patches"])
    assert view["execution"]["source"] == rerun["patch_id"]
    assert view["applied_patches"] == [p["patch_id"] for p in manifest["patches"]]
    entry = view["function_results"][f"add_tax:{run['args_hash']}"]
    assert entry["result"] == 150.0
    assert entry["source"] == run["patch_id"]


async def test_function_run_args_hash_matches_the_traced_call(server: Server) -> None:
    token, trace_id = await _order_trace(server)
    doc = await server.trace_doc("shop", token, trace_id)
    traced = next(c for c in doc["calls"] if c["function"] == "subtotal")
    status, run = await server.api(
        f"{API}/traces/{trace_id}/functions/subtotal/run",
        token,
        method="POST",
        json={"args": traced["args"]},
    )
    assert status == 201
    assert run["args_hash"] == traced["args_hash"]
    assert run["result"] == traced["result"]


async def test_concurrent_reruns_get_distinct_increasing_seqs(server: Server) -> None:
    token, trace_id = await _order_trace(server)
    results = await asyncio.gather(
        *(server.api(f"{API}/traces/{trace_id}/rerun", token, method="POST") for _ in range(20))
    )
    assert all(status == 201 for status, _ in results)
    seqs = sorted(patch["seq"] for _, patch in results)
    assert seqs == list(range(1, 21))
    _, manifest = await _base_bytes(server, token, trace_id)
    assert [p["seq"] for p in manifest["patches"]] == list(range(1, 21))


async def test_a_failing_function_run_is_a_patch_with_error(server: Server) -> None:
    token, trace_id = await _order_trace(server)
    status, run = await server.api(
        f"{API}/traces/{trace_id}/functions/subtotal/run",
        token,
        method="POST",
        json={"args": [[{"price": "x", "qty": 1}]]},
    )
    assert status == 201
    schema.validate("patch", run)
    assert run["error"]["type"] == "ValueError"
    assert "result" not in run


@pytest.mark.parametrize(
    ("path", "body", "status", "why"),
    [
        ("functions/nope/run", {"args": []}, 404, "unknown function"),
        ("functions/add_tax/run", {"args": {"a": 1}}, 400, "args not a list"),
        ("functions/add_tax/run", {"args": [1]}, 400, "wrong arity"),
        ("functions/add_tax/run", {"args": [1, 2, 3]}, 400, "wrong arity"),
        ("functions/add_tax/run", {"argz": []}, 400, "wrong key"),
        ("functions/add_tax/run", b"{not json", 400, "invalid JSON"),
        ("functions/add_tax/run", {"args": [{"$strata": "bogus", "v": 1}, 1]}, 400, "bad tag"),
        ("functions/bad name!/run", {"args": []}, 400, "malformed function name"),
    ],
)
async def test_bad_function_runs_are_refused_and_write_nothing(
    server: Server, database_url: str, path: str, body: Any, status: int, why: str
) -> None:
    token, trace_id = await _order_trace(server)
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    got, error = await server.api(f"{API}/traces/{trace_id}/{path}", token, method="POST", **kwargs)
    assert got == status, (why, error)
    assert error["error"]["message"]
    assert await _patch_rows(database_url) == 0


async def test_runs_on_another_canvas_trace_are_refused(database_url: str, tmp_path: Path) -> None:
    from tests.canvases import blog

    async with serve(database_url, tmp_path, {"shop": shop, "blog": blog}) as server:
        port = server.gateway.rsplit(":", 1)[1]
        async with server.http.get(
            f"http://127.0.0.1:{port}/posts/x", headers={"Host": f"blog.localhost:{port}"}
        ) as response:
            assert response.status == 200
        await server.flush()
        blog_token, shop_token = await server.token("blog"), await server.token("shop")
        _, listing = await server.api("/api/v1/canvases/blog/handlers/get_post/traces", blog_token)
        blog_trace = listing["traces"][0]["trace_id"]
        status, _ = await server.api(f"{API}/traces/{blog_trace}/rerun", shop_token, method="POST")
        assert status == 404  # not a shop trace
        status, _ = await server.api(
            f"/api/v1/canvases/blog/traces/{blog_trace}/rerun", shop_token, method="POST"
        )
        assert status == 403
        assert await _patch_rows(database_url) == 0


async def test_an_oversized_patch_is_refused_with_413(database_url: str, tmp_path: Path) -> None:
    from runtime import Canvas, Request

    big = Canvas("shop")

    @big.function()
    def noise(n: int) -> str:
        import os

        return os.urandom(n).hex()

    @big.http("GET", "/x")
    def x(request: Request) -> str:
        return noise(1)

    async with serve(database_url, tmp_path, {"shop": big}) as server:
        async with server.http.get(server.gateway + "/x") as response:
            assert response.status == 200
        await server.flush()
        token = await server.token("shop")
        _, listing = await server.api(f"{API}/handlers/x/traces", token)
        trace_id = listing["traces"][0]["trace_id"]
        status, error = await server.api(
            f"{API}/traces/{trace_id}/functions/noise/run",
            token,
            method="POST",
            json={"args": [400_000]},
        )
        assert status == 413
        assert "over the limit" in error["error"]["message"]
        assert await _patch_rows(database_url) == 0
        # The refused patch did not consume a seq: the next one is 1.
        status, ok = await server.api(
            f"{API}/traces/{trace_id}/functions/noise/run",
            token,
            method="POST",
            json={"args": [4]},
        )
        assert status == 201
        assert ok["seq"] == 1

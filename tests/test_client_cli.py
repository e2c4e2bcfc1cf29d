"""The Python client, ``strata traces list|show`` and ``strata replay`` against a real
server: downloads from the signed URL, sha256 checks, merged views, replay reports."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from runtime.replay import replay
from tests import canvases_v2
from tests.canvases import shop
from tests.cli_support import strata
from tests.harness import Server, serve
from trace_store.client import Client
from trace_store.document import schema
from trace_store.errors import Forbidden, IntegrityError, NotFound

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def server(database_url: str, tmp_path: Path):
    async with serve(database_url, tmp_path, {"shop": shop}) as running:
        yield running


async def _trace(server: Server, method: str, path: str, handler: str, **kwargs: object) -> str:
    async with server.http.request(method, server.gateway + path, **kwargs) as response:
        assert response.status < 500
    await server.flush()
    token = await server.token("shop")
    async with Client(server.editor, token) as client:
        traces, _ = await client.traces("shop", handler, limit=1)
    return str(traces[0]["trace_id"])


async def _strata(*args: str, token: str, editor: str) -> tuple[int, str, str]:
    return await strata(*args, env={"STRATA_TOKEN": token, "STRATA_EDITOR_URL": editor})


async def test_client_downloads_verifies_and_merges(server: Server) -> None:
    trace_id = await _trace(
        server, "POST", "/orders", "create-order", json={"items": [{"price": 1, "qty": 2}]}
    )
    token = await server.token("shop")
    async with Client(server.editor, token) as client:
        assert {h["id"] for h in await client.handlers("shop")} >= {"create-order", "get_user"}
        doc = await client.trace("shop", trace_id)
        schema.validate("trace", doc)
        rerun = await client.rerun("shop", trace_id)
        run = await client.run_function("shop", trace_id, "add_tax", [10, 0.1])
        view = await client.merged("shop", trace_id)
        assert view["applied_patches"] == [rerun["patch_id"], run["patch_id"]]
        assert view["function_results"][f"add_tax:{run['args_hash']}"]["result"] == 11.0
        # A manifest whose sha256 does not match what the URL serves is refused.
        manifest = await client.manifest("shop", trace_id)
        manifest["base"]["sha256"] = "0" * 64
        with pytest.raises(IntegrityError):
            await client.base(manifest)
        with pytest.raises(NotFound):
            await client.manifest("shop", "01a20400-0ca1-72de-be1b-09fcceaec63a")
    async with Client(server.editor, await server.token("blog")) as other:
        with pytest.raises(Forbidden):
            await other.trace("shop", trace_id)


async def test_cli_lists_and_shows_the_merged_view(server: Server) -> None:
    trace_id = await _trace(
        server, "POST", "/orders", "create-order", json={"items": [{"price": 4, "qty": 1}]}
    )
    token = await server.token("shop")
    async with Client(server.editor, token) as client:
        rerun = await client.rerun("shop", trace_id)
        first = await client.run_function("shop", trace_id, "add_tax", [4, 0.5])
        second = await client.run_function("shop", trace_id, "subtotal", [[{"price": 3, "qty": 3}]])

    code, out, err = await _strata(
        "traces",
        "list",
        "--canvas",
        "shop",
        "--handler",
        "create-order",
        token=token,
        editor=server.editor,
    )
    assert code == 0, err
    assert trace_id in out
    assert out.strip().endswith("3")

    code, out, err = await _strata(
        "traces",
        "show",
        trace_id,
        "--canvas",
        "shop",
        "--merged",
        token=token,
        editor=server.editor,
    )
    assert code == 0, err
    view = orjson.loads(out)
    assert view["format"] == "strata.merged/1"
    assert view["applied_patches"] == [rerun["patch_id"], first["patch_id"], second["patch_id"]]
    assert view["function_results"][f"add_tax:{first['args_hash']}"]["result"] == 6.0
    assert view["function_results"][f"subtotal:{second['args_hash']}"]["result"] == 9.0
    assert view["input"]["path"] == "/orders"

    code, out, err = await _strata(
        "traces", "show", trace_id, "--canvas", "shop", token="strata_wrong", editor=server.editor
    )
    assert code == 2
    assert "401" in err
    assert "Traceback" not in err


async def test_every_trace_of_a_segment_shows_and_a_tampered_range_is_refused(
    server: Server,
) -> None:
    import asyncio

    async def get(user: int) -> None:
        async with server.http.get(f"{server.gateway}/users/{user}") as response:
            assert response.status == 200

    await asyncio.gather(*(get(user) for user in range(8)))  # one batch: one segment
    await server.flush()
    token = await server.token("shop")
    async with Client(server.editor, token) as client:
        traces, _ = await client.traces("shop", "get_user", limit=20)
        manifests = [await client.manifest("shop", t["trace_id"]) for t in traces]
        assert len({m["base"]["url"].split("?")[0] for m in manifests}) == 1
        for manifest in manifests:
            assert manifest["base"]["range"]["length"] == manifest["base"]["bytes"]
            doc = await client.base(manifest)
            assert doc["trace_id"] == manifest["trace_id"]
        # The neighbour's frame, or a range one byte off, does not pass as this trace.
        first, second = manifests[0], manifests[1]
        first["base"]["range"] = second["base"]["range"]
        with pytest.raises(IntegrityError):
            await client.base(first)
        second["base"]["range"]["offset"] += 1
        with pytest.raises(IntegrityError):
            await client.base(second)
    users = set()
    for t in traces:
        code, out, err = await _strata(
            "traces", "show", t["trace_id"], "--canvas", "shop", token=token, editor=server.editor
        )
        assert code == 0, err
        users.add(orjson.loads(out)["input"]["path"])
    assert users == {f"/users/{user}" for user in range(8)}


async def test_replay_of_unchanged_code_reports_no_difference(server: Server) -> None:
    token = await server.token("shop")
    for method, path, handler, kwargs in [
        ("GET", "/users/5", "get_user", {}),
        ("POST", "/orders", "create-order", {"json": {"items": [{"price": 2, "qty": 2}]}}),
        ("GET", "/dice", "dice", {}),
    ]:
        trace_id = await _trace(server, method, path, handler, **kwargs)
        async with Client(server.editor, token) as client:
            doc = await client.trace("shop", trace_id)
        report = await replay(shop, doc)
        assert report.same, report.as_json()
        # The recorded clock and randomness were answered from the trace.
        assert report.result is not None
        assert report.result["body"]["data"] == doc["result"]["body"]["data"]


async def test_replay_takes_the_handler_of_a_document_that_names_none(server: Server) -> None:
    # An adopted request's document has `handler: null`; its manifest names the handler.
    token = await server.token("shop")
    trace_id = await _trace(server, "GET", "/users/5", "get_user")
    async with Client(server.editor, token) as client:
        doc = await client.trace("shop", trace_id)
    doc["handler"] = None
    with pytest.raises(NotFound):
        await replay(shop, doc)
    report = await replay(shop, doc, handler_id="get_user")
    assert (report.handler_id, report.same) == ("get_user", True)


async def test_replay_reports_changed_results_and_unrecorded_builtins(server: Server) -> None:
    token = await server.token("shop")
    order = await _trace(
        server, "POST", "/orders", "create-order", json={"items": [{"price": 10, "qty": 1}]}
    )
    dice = await _trace(server, "GET", "/dice", "dice")
    async with Client(server.editor, token) as client:
        order_doc, dice_doc = await client.trace("shop", order), await client.trace("shop", dice)

    report = await replay(canvases_v2.shop, order_doc)
    kinds = {d.kind for d in report.differences}
    assert kinds == {"result", "call"}
    body_change = next(d for d in report.differences if d.message == "the response body changed")
    assert orjson.loads(body_change.recorded) == {"total": 12.0}
    assert orjson.loads(body_change.now) == {"total": 12.5}

    report = await replay(canvases_v2.shop, dice_doc)
    unrecorded = [d for d in report.differences if d.kind == "unrecorded_builtin"]
    assert len(unrecorded) == 1
    assert "random.randint" in unrecorded[0].message

    async def strata_replay(trace_id: str, app: str, *extra: str) -> tuple[int, str, str]:
        return await _strata(
            "replay", trace_id, "--canvas", "shop", "--app", app, *extra,
            token=token, editor=server.editor,
        )  # fmt: skip

    code, out, err = await strata_replay(order, "tests.canvases_v2:shop")
    assert code == 1, err
    assert "the response body changed" in out
    code, out, err = await strata_replay(order, "tests.canvases:shop")
    assert code == 0, err
    assert "no difference" in out
    code, out, err = await strata_replay(dice, "tests.canvases_v2:shop", "--json")
    assert code == 1
    assert any(d["kind"] == "unrecorded_builtin" for d in orjson.loads(out)["differences"])

"""The editor loop's API (SPEC §14): a handler's source, and a trace explained line by
line with the current code, builtins answered from the trace."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from runtime.explain import ExplainLimits, explain
from runtime.replay import replay
from tests.canvases_dev import dev
from tests.harness import Server, serve
from trace_store.document import codec, compact

API = "/api/v1/canvases/dev"
SOURCE = Path(__file__).with_name("canvases_dev.py")


def line(marker: str) -> int:
    """The line of ``canvases_dev.py`` that ends with ``@marker``."""
    (number,) = [
        n
        for n, text in enumerate(SOURCE.read_text().splitlines(), 1)
        if text.endswith(f"@{marker}")
    ]
    return number


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    async with serve(database_url, tmp_path, {"dev": dev}) as running:
        yield running


async def _trace(server: Server, path: str, token: str) -> dict[str, Any]:
    async with server.http.get(server.gateway + path, headers={"Host": "dev.localhost"}) as r:
        assert r.status == 200, await r.text()
    await server.flush()
    status, listed = await server.api(f"{API}/handlers/order/traces?limit=1", token)
    assert status == 200
    trace: dict[str, Any] = listed["traces"][0]
    return trace


async def _explain(server: Server, trace_id: str, token: str) -> dict[str, Any]:
    status, body = await server.api(f"{API}/traces/{trace_id}/explain", token, method="POST")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def test_source_names_the_file_by_its_module_and_the_lines_by_the_file(
    server: Server,
) -> None:
    token = await server.token("dev")
    status, body = await server.api(f"{API}/handlers/order/source", token)
    assert status == 200, body
    file_lines = SOURCE.read_text().splitlines()
    assert (body["handler_id"], body["module"], body["file"]) == (
        "order",
        "tests.canvases_dev",
        "tests/canvases_dev.py",
    )
    first = body["first_line"]
    assert body["lines"] == file_lines[first - 1 : first - 1 + len(body["lines"])]
    assert body["lines"][line("order-def") - first].startswith("def order(")
    text = "".join(f"{text}\n" for text in body["lines"])
    assert body["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    (price,) = body["functions"]
    assert price["name"] == "price"
    assert price["lines"][line("price-base") - price["first_line"]].lstrip().startswith("base =")

    assert (await server.api(f"{API}/handlers/nope/source", token))[0] == 404
    assert (await server.api(f"{API}/handlers/order/source", None))[0] == 401
    other = await server.token("shop")
    assert (await server.api(f"{API}/handlers/order/source", other))[0] == 403


async def test_explain_marks_the_branch_that_ran_and_the_values_of_every_line(
    server: Server,
) -> None:
    token = await server.token("dev")
    tea = await _trace(server, "/order/tea?count=3", token)
    found = await _explain(server, tea["trace_id"], token)
    _, code = await server.api(f"{API}/handlers/order/source", token)
    assert found["code_sha256"] == code["sha256"]
    assert (found["differs"], found["truncated"], found["unrecorded"]) == (False, False, [])
    assert found["result"]["status"] == 200
    handler, *calls = found["frames"]
    assert (handler["function"], handler["kind"], handler["call_id"]) == ("order", "handler", None)
    lines = handler["lines"]
    assert lines[str(line("order-def"))]["values"]["request"]["$strata"] == "repr"
    assert lines[str(line("item"))] == {"hits": 1, "values": {"item": "tea"}}
    assert lines[str(line("count"))] == {"hits": 1, "values": {"count": 3}}
    assert lines[str(line("else"))] == {"hits": 1, "values": {"note": "common"}}
    assert lines[str(line("loop"))]["hits"] == 4  # three turns and the exit
    assert lines[str(line("loop"))]["values"] == {"i": 2}  # after its last run
    assert lines[str(line("append"))] == {"hits": 3, "values": {"totals": [2.5, 5.0, 7.5]}}
    lucky = lines[str(line("lucky"))]["values"]["lucky"]
    assert lucky == _body(found["result"])["lucky"]  # the value the run returned
    assert handler["not_executed"] == [line("then")]
    # One frame per call of the user function, with its arguments on its def line.
    assert [c["call_id"] for c in calls] == [0, 1, 2]
    # Each call opens in place: under the handler's line that made it.
    assert {(c["caller"], c["called_from"]) for c in calls} == {(0, line("append"))}
    assert (handler["caller"], handler["called_from"]) == (None, None)
    assert {c["function"] for c in calls} == {"price"}
    def_line = str(calls[0]["first_line"])
    assert [c["lines"][def_line]["values"] for c in calls] == [
        {"item": "tea", "qty": qty} for qty in (1, 2, 3)
    ]
    assert calls[2]["lines"][str(line("price-base"))]["values"] == {"base": 2.5}

    unicorn = await _trace(server, "/order/unicorn?count=1", token)
    other = await _explain(server, unicorn["trace_id"], token)
    branch = other["frames"][0]
    assert branch["lines"][str(line("then"))] == {"hits": 1, "values": {"note": "rare"}}
    assert branch["not_executed"] == [line("else")]


async def test_explain_writes_nothing_and_answers_builtins_from_the_trace(
    server: Server, database_url: str
) -> None:
    token = await server.token("dev")
    trace = await _trace(server, "/order/tea?count=1", token)
    recorded = _body((await _base(server, trace["trace_id"], token))["result"])["lucky"]
    for _ in range(3):  # the same die roll every time: it is the trace's
        found = await _explain(server, trace["trace_id"], token)
        assert _body(found["result"])["lucky"] == recorded
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM patches") == 0
    finally:
        await conn.close()


def _body(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of a trace's (or an explain's) ``result``."""
    body: dict[str, Any] = orjson.loads(result["body"]["data"])
    return body


async def _base(server: Server, trace_id: str, token: str) -> dict[str, Any]:
    _, manifest = await server.api(f"{API}/traces/{trace_id}", token)
    _, _, data = await server.fetch_base(manifest["base"]["url"])
    doc: dict[str, Any] = compact.expanded(codec.decode(data))
    return doc


async def test_a_call_the_trace_never_saw_is_listed_and_stops_the_frame(server: Server) -> None:
    token = await server.token("dev")
    trace = await _trace(server, "/order/tea?count=1", token)
    doc = await _base(server, trace["trace_id"], token)
    doc["calls"] = [c for c in doc["calls"] if c["kind"] != "builtin"]  # as if the code changed
    found = await explain(dev, doc)
    assert [u["function"] for u in found["unrecorded"]] == ["random.randint"]
    assert found["differs"] is True
    handler = found["frames"][0]
    assert str(line("return")) in map(str, handler["not_executed"])


async def test_a_handler_that_never_ends_is_cut_by_the_limits() -> None:
    doc = _doc_for("spin", "/spin")
    by_events = await explain(dev, doc, limits=ExplainLimits(max_events=5_000))
    assert by_events["truncated"] is True
    (frame,) = by_events["frames"]
    assert 2_000 < frame["lines"][str(line("spin"))]["hits"] <= 5_000
    by_time = await explain(dev, doc, limits=ExplainLimits(time_limit=0.2, max_events=10**9))
    assert by_time["truncated"] is True
    assert by_time["result"] is None


def _doc_for(handler_id: str, path: str) -> dict[str, Any]:
    return {
        "trace_id": "00000000-0000-7000-8000-000000000000",
        "handler": {"id": handler_id},
        "input": {"method": "GET", "path": path, "query": {}, "params": {}, "headers": []},
        "calls": [],
    }


async def test_a_format_1_trace_explains_and_replays_as_its_format_2_original(
    server: Server,
) -> None:
    # Traces written before strata.trace/2 stay readable for their whole retention: the
    # /1 document a /2 one stands for explains and replays exactly as the stored one.
    token = await server.token("dev")
    trace = await _trace(server, "/order/tea?count=2", token)
    _, manifest = await server.api(f"{API}/traces/{trace['trace_id']}", token)
    _, _, data = await server.fetch_base(manifest["base"]["url"])
    stored = codec.decode(data)
    old = compact.expanded(stored)
    assert (stored["format"], old["format"]) == ("strata.trace/2", "strata.trace/1")
    assert all("args_hash" in call for call in old["calls"])
    explained = await explain(dev, stored)
    assert explained["frames"]
    assert await explain(dev, old) == explained
    replayed = [await replay(dev, doc) for doc in (stored, old)]
    assert replayed[0].differences == replayed[1].differences == []
    assert replayed[0].result == replayed[1].result

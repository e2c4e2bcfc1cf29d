"""The per-request recorder: call trees, isolation under concurrency, limits, sampling."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest

from runtime import Canvas, Request, stdlib
from runtime.execute import execute
from runtime.sampling import Sampling
from trace_store.document import codec, compact, schema
from trace_store.document.build import TraceLimits, build_trace
from trace_store.document.ids import uuid7
from trace_store.errors import ConfigError
from trace_store.record import C_FUNCTION, C_ID, C_PARENT, C_RESULT, PendingTrace

canvas = Canvas("rec")


@canvas.function()
def leaf(x: int) -> int:
    return x + 1


@canvas.function()
def middle(x: int) -> int:
    return leaf(x) * leaf(x + 1)


@canvas.function()
async def waits(tag: str, delay: float) -> str:
    await asyncio.sleep(delay)
    return tag + str(leaf(len(tag)))


@canvas.function()
def explode(x: int) -> int:
    raise KeyError(x)


@canvas.http("GET", "/tree")
def tree(request: Request) -> dict[str, Any]:
    return {"v": middle(1), "t": stdlib.time.now(), "r": stdlib.random.randint(1, 6)}


@canvas.http("GET", "/many")
def many(request: Request) -> int:
    return sum(leaf(i) for i in range(int(request.query["n"])))


@canvas.http("GET", "/caught")
def caught(request: Request) -> str:
    try:
        explode(3)
    except KeyError:
        return "handled"
    return "unreachable"


@canvas.http("GET", "/concurrent/:tag")
async def concurrent(request: Request) -> str:
    return await waits(request.params["tag"], float(request.query.get("d", "0")))


def _doc(handler_id: str, run: Any, request: Request) -> dict[str, Any]:
    handler = canvas.handlers[handler_id]
    pending = PendingTrace.of_run(
        "rec", handler.description, run, method=request.method, path=request.path,
        query_string="", params=request.params, raw_headers=[], body=request.body,
    )  # fmt: skip
    doc = codec.decode(codec.encode(build_trace(pending, TraceLimits(max_calls=10))))
    schema.validate("trace", doc)
    return compact.expanded(doc)


async def test_call_tree_has_parents_and_builtins() -> None:
    request = Request("GET", "/tree")
    run = await execute(canvas.handlers["tree"], request, record=True)
    assert run.calls is not None
    names = [c[C_FUNCTION] for c in run.calls]
    assert names == ["middle", "leaf", "leaf", "time.now", "random.randint"]
    assert [c[C_PARENT] for c in run.calls] == [None, 0, 0, None, None]
    assert run.calls[0][C_RESULT] == 6
    doc = _doc("tree", run, request)
    assert doc["calls"][4]["kind"] == "builtin"
    assert 1 <= doc["calls"][4]["result"] <= 6


async def test_unsampled_runs_record_nothing() -> None:
    run = await execute(canvas.handlers["tree"], Request("GET", "/tree"), record=False)
    assert run.calls is None
    assert run.status == 200


async def test_concurrent_requests_never_share_a_recorder() -> None:
    async def one(tag: str, delay: float) -> Any:
        req = Request("GET", f"/concurrent/{tag}", params={"tag": tag}, query=[("d", str(delay))])
        return await execute(canvas.handlers["concurrent"], req, record=True)

    runs = await asyncio.gather(
        *(one(t, 0.01 * (i % 3)) for i, t in enumerate(["a", "bb", "ccc", "dddd"]))
    )
    for run, tag in zip(runs, ["a", "bb", "ccc", "dddd"], strict=True):
        assert run.calls is not None
        assert [c[C_FUNCTION] for c in run.calls] == ["waits", "leaf"]
        assert run.calls[0][C_RESULT] == tag + str(len(tag) + 1)
        assert run.calls[1][C_PARENT] == run.calls[0][C_ID]


async def test_call_limit_cuts_the_trace_and_says_so() -> None:
    request = Request("GET", "/many", query=[("n", "25")])
    run = await execute(canvas.handlers["many"], request, record=True, max_calls=10)
    assert run.body == str(sum(i + 1 for i in range(25))).encode()  # the handler ran fully
    assert run.calls is not None
    assert len(run.calls) == 10
    assert run.truncated_calls
    doc = _doc("many", run, request)
    assert doc["truncated"]
    assert doc["limits"]["hit"] == ["calls"]


async def test_a_caught_error_in_a_function_is_recorded_as_its_error() -> None:
    request = Request("GET", "/caught")
    run = await execute(canvas.handlers["caught"], request, record=True)
    assert run.body == b"handled"
    assert run.error is None
    doc = _doc("caught", run, request)
    assert doc["calls"][0]["error"]["type"] == "KeyError"
    assert "result" not in doc["calls"][0]


def test_functions_work_outside_any_request() -> None:
    assert middle(1) == 6


@pytest.mark.parametrize(("text", "every"), [("all", 1), ("none", 0), ("1/10", 10), (" ALL ", 1)])
def test_sampling_parses(text: str, every: int) -> None:
    assert Sampling.parse(text).every == every


@pytest.mark.parametrize("text", ["some", "2/3", "1/0", "1/", "0.5", ""])
def test_bad_sampling_names_the_setting(text: str) -> None:
    with pytest.raises(ConfigError, match="STRATA_TRACE_SAMPLE"):
        Sampling.parse(text)


def test_one_in_n_samples_about_one_in_n() -> None:
    sampling = Sampling.parse("1/4")
    hits = sum(sampling.decide() for _ in range(20_000))
    assert 4_000 < hits < 6_000
    assert not any(Sampling.parse("none").decide() for _ in range(100))


def test_uuid7_is_time_ordered_and_unique() -> None:
    ids = [uuid7(1_700_000_000_000_000_000 + i * 1_000_000) for i in range(200)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 200
    same_ms = {uuid7(1_700_000_000_000_000_000) for _ in range(1000)}
    assert len(same_ms) == 1000  # across several refills of the random pool
    parsed = uuid.UUID(ids[0])
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert str(parsed) == ids[0]


def test_uuid7_in_a_forked_child_does_not_repeat_the_parent() -> None:
    uuid7(0)  # the pool now holds bytes the parent will hand out next
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, uuid7(0).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child != uuid7(0)

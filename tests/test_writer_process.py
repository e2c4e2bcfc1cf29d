"""The writer process (``STRATA_WRITER=process``) end to end, against real Postgres.

Each test starts a real ``python -m trace_store.writer.child`` through the server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.config import ServeSettings
from runtime import Canvas, Request
from runtime.execute import execute
from tests.canvases import shop
from tests.fixtures_postgres import count_traces
from tests.harness import Server, serve
from trace_store.errors import ConfigError
from trace_store.record import PendingTrace
from trace_store.writer.process import ProcessWriter
from trace_store.writer.queue import WriterConfig

locks = Canvas("locks")
GUARD = threading.Lock()


@locks.function()
def guarded(lock: Any, n: int) -> int:
    with lock:
        return n + 1


@locks.function()
def explode(n: int) -> int:
    raise ValueError(f"no {n}")


@locks.http("GET", "/guarded")
async def use_lock(request: Request) -> dict[str, int]:
    return {"n": guarded(GUARD, 41)}


@locks.http("GET", "/boom")
async def boom(request: Request) -> None:
    explode(7)


@locks.function()
def inner(x: int) -> int:
    return x + 1


@locks.function()
async def outer(x: int) -> int:
    await asyncio.sleep(0)  # interleave with the other outer() under gather
    return inner(x)


@locks.http("GET", "/mixed")
async def mixed(request: Request) -> list[int]:
    return [*await asyncio.gather(outer(1), outer(2)), inner(3)]


async def test_sync_calls_inside_interleaved_async_calls_get_the_right_parent() -> None:
    # The sync wrapper keeps its parent on the recorder, the async one in a contextvar.
    handler, params = locks.match("GET", "/mixed")  # type: ignore[misc]
    run = await execute(handler, Request("GET", "/mixed", params=params), record=True)
    calls = {c[0]: c for c in run.calls or []}
    outers = {cid: c[4][0] for cid, c in calls.items() if c[2] == "outer"}
    inners = [c for c in calls.values() if c[2] == "inner"]
    assert len(outers) == 2
    assert len(inners) == 3
    for call in inners:
        if call[4] == (3,):
            assert call[1] is None
        else:
            assert outers[call[1]] == call[4][0]
    assert run.body == b"[2,3,4]"


def process_writer(server: Server) -> ProcessWriter:
    writer = server.running.services.writer
    assert isinstance(writer, ProcessWriter)
    return writer


def child_pid(writer: ProcessWriter) -> int | None:
    """The writer's current child process, if one is running."""
    child = writer._child
    return child.proc.pid if child is not None and child.alive else None


async def metric(server: Server, prefix: str) -> float:
    async with server.http.get(server.gateway + "/metrics") as response:
        text = await response.text()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix)]
    return sum(values)


async def get(server: Server, path: str, expect: int = 200) -> None:
    async with server.http.get(server.gateway + path) as response:
        assert response.status == expect, await response.text()
        await response.read()


async def latest_doc(server: Server, canvas: str) -> dict[str, Any]:
    token = await server.token(canvas)
    trace_id = await server.running.services.pool.fetchval(
        "SELECT trace_id FROM traces WHERE canvas = $1 ORDER BY started_at DESC LIMIT 1", canvas
    )
    return await server.trace_doc(canvas, token, str(trace_id))


async def test_a_request_is_stored_and_indexed_by_the_writer_process(
    database_url: str, tmp_path: Path
) -> None:
    async with serve(database_url, tmp_path, {"shop": shop}, writer_mode="process") as server:
        writer = process_writer(server)
        assert child_pid(writer) not in (None, os.getpid())
        await get(server, "/users/7?x=1")
        await server.flush()
        doc = await latest_doc(server, "shop")  # manifest, signed URL, object bytes
        assert doc["input"]["params"] == {"id": "7"}
        assert doc["input"]["query"] == {"x": ["1"]}
        assert [c["function"] for c in doc["calls"]] == ["time.now", "random.random"]
        # The child's counters reach the gateway's /metrics.
        assert await metric(server, 'strata_traces_written_total{kind="traces"}') == 1
        assert await metric(server, "strata_traces_indexed_total") == 1
        assert await metric(server, "strata_writer_batch_size_count") == 1


async def test_unpicklable_arguments_are_traced_as_repr(database_url: str, tmp_path: Path) -> None:
    async with serve(database_url, tmp_path, {"locks": locks}, writer_mode="process") as server:
        await get(server, "/guarded")
        await server.flush()
        doc = await latest_doc(server, "locks")
        (call,) = doc["calls"]
        assert call["function"] == "guarded"
        lock_arg, n = call["args"]
        assert lock_arg["$strata"] == "repr"
        assert lock_arg["type"] == "lock"
        assert n == 41
        assert call["result"] == 42


async def test_a_handler_error_keeps_its_traceback(database_url: str, tmp_path: Path) -> None:
    async with serve(database_url, tmp_path, {"locks": locks}, writer_mode="process") as server:
        await get(server, "/boom", expect=500)
        await server.flush()
        doc = await latest_doc(server, "locks")
        assert doc["error"]["type"] == "ValueError"
        assert doc["error"]["message"] == "no 7"
        assert "Traceback" in doc["error"]["traceback"]
        assert "in explode" in doc["error"]["traceback"]
        (call,) = doc["calls"]
        assert call["error"]["type"] == "ValueError"
        assert "in explode" in call["error"]["traceback"]


async def _locked_index(database_url: str) -> tuple[asyncpg.Connection, Any]:
    """Hold ``traces`` locked: the writer process can store objects but not index them."""
    blocker = await asyncpg.connect(database_url)
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("LOCK TABLE traces IN ACCESS EXCLUSIVE MODE")
    return blocker, tx


async def test_a_held_writer_process_leaves_the_traces_in_the_log(
    database_url: str, tmp_path: Path
) -> None:
    # The index is locked: the writer stores objects and cannot commit them; the
    # gateway goes on appending to the log. Nothing is dropped, requests never wait,
    # and the gauges count every held trace (the log's covers the writer's memory).
    async with serve(database_url, tmp_path, {"shop": shop}, writer_mode="process") as server:
        blocker, tx = await _locked_index(database_url)
        slowest = 0.0
        try:
            for i in range(300):
                started = time.perf_counter()
                await get(server, f"/users/{i}")
                slowest = max(slowest, time.perf_counter() - started)
            await asyncio.sleep(0.5)
            assert await metric(server, "strata_log_traces ") == 300
            assert await metric(server, "strata_writer_queue_depth") == 300
        finally:
            await tx.rollback()
            await blocker.close()
        assert slowest < 1.0
        await server.flush()
        assert await count_traces(server.running.services.pool) == 300
        assert await metric(server, "strata_traces_dropped_total") == 0
        assert await metric(server, "strata_log_traces ") == 0


async def test_a_full_log_drops_and_counts_and_says_so_in_readyz(
    database_url: str, tmp_path: Path
) -> None:
    config = WriterConfig(queue_traces=5, batch_size=5)
    async with serve(
        database_url,
        tmp_path,
        {"shop": shop},
        writer_mode="process",
        writer=config,
        log_bytes=1 << 20,
    ) as server:
        blocker, tx = await _locked_index(database_url)
        sent = 0
        try:
            while await metric(server, 'strata_traces_dropped_total{reason="log_full"}') == 0:
                assert sent < 20_000, "the log never filled"
                for _ in range(100):
                    await get(server, f"/users/{sent}?pad={'x' * 2000}")
                    sent += 1
            async with server.http.get(server.editor + "/readyz") as response:
                report = await response.json()
            assert response.status == 503
            assert report["status"] == "degraded"
            assert report["checks"]["log"].startswith("full: ")
            assert "STRATA_LOG_BYTES" in report["checks"]["log"]
            assert await metric(server, "strata_log_bytes") <= 1 << 20
        finally:
            await tx.rollback()
            await blocker.close()
        await server.flush()
        stored = await count_traces(server.running.services.pool)
        dropped = await metric(server, "strata_traces_dropped_total")
        assert stored > 0
        assert stored + dropped == sent  # every trace is stored or counted
        await get(server, "/users/again")  # room again: appends succeed, readyz recovers
        await server.flush()
        async with server.http.get(server.editor + "/readyz") as response:
            assert response.status == 200, await response.text()


async def test_a_killed_writer_process_loses_nothing(database_url: str, tmp_path: Path) -> None:
    async with serve(database_url, tmp_path, {"shop": shop}, writer_mode="process") as server:
        writer = process_writer(server)
        pool = server.running.services.pool
        blocker, tx = await _locked_index(database_url)
        try:
            for i in range(10):
                await get(server, f"/users/{i}")
            await asyncio.sleep(0.3)  # the child has them, stuck on the index
            first = child_pid(writer)
            assert first is not None
            os.kill(first, signal.SIGKILL)
            for i in range(10, 20):  # the gateway keeps answering meanwhile
                await get(server, f"/users/{i}")
            deadline = time.monotonic() + 20
            while child_pid(writer) in (None, first):
                assert time.monotonic() < deadline, "no new writer process"
                await asyncio.sleep(0.05)
        finally:
            await tx.rollback()
            await blocker.close()
        await server.flush()
        assert await metric(server, "strata_writer_restarts_total") == 1
        # The new writer read on from the committed position: every trace is there.
        assert await count_traces(pool) == 20
        assert await metric(server, "strata_traces_dropped_total") == 0


def test_the_writer_mode_is_parsed_strictly() -> None:
    assert ServeSettings.from_env({}).writer_mode == "process"
    assert ServeSettings.from_env({"STRATA_WRITER": "inline"}).writer_mode == "inline"
    with pytest.raises(ConfigError, match="STRATA_WRITER"):
        ServeSettings.from_env({"STRATA_WRITER": "thread"})


def _pending(calls: int, body: int = 0) -> PendingTrace:
    return PendingTrace(
        canvas="shop",
        kind="traces",
        handler=None,
        started_ns=0,
        duration_ns=0,
        method="GET",
        path="/",
        query_string="",
        params={},
        raw_headers=(),
        body=b"x" * body,
        calls=[[i, None, "f", "user", (), {}, i, None, 0, 0] for i in range(calls)],
    )


def test_a_frame_is_bounded_by_its_pickling_work_and_takes_at_least_one_trace() -> None:
    from trace_store.writer.process import FRAME_BODY_BYTES, FRAME_CALLS, FRAME_TRACES
    from trace_store.writer.queue import TraceQueue

    def _take_frame(q: TraceQueue) -> list[PendingTrace]:
        return q.take(FRAME_TRACES, FRAME_CALLS, FRAME_BODY_BYTES)

    def queue(*traces: PendingTrace) -> TraceQueue:
        q = TraceQueue(WriterConfig(queue_calls=10**9))
        for p in traces:
            assert q.push(p)
        return q

    q = queue(*(_pending(FRAME_CALLS // 2) for _ in range(5)))
    assert [len(_take_frame(q)) for _ in range(3)] == [2, 2, 1]
    q = queue(_pending(FRAME_CALLS * 3), _pending(1))
    assert len(_take_frame(q)) == 1  # a trace over the bound still goes, alone
    q = queue(*(_pending(0, FRAME_BODY_BYTES // 2 + 1) for _ in range(3)))
    assert len(_take_frame(q)) == 1
    assert q.bytes == 2 * (FRAME_BODY_BYTES // 2 + 1)
    q = queue(*(_pending(1) for _ in range(300)))
    assert len(_take_frame(q)) == 256


def test_a_queue_is_bounded_by_call_records_and_takes_one_trace_over_the_bound() -> None:
    from trace_store.writer.queue import TraceQueue

    q = TraceQueue(WriterConfig(queue_calls=100))
    assert q.push(_pending(60))
    assert not q.push(_pending(60))  # 120 call records would not fit
    assert q.push(_pending(40))
    q.pop()
    q.pop()
    assert q.push(_pending(500))  # an empty queue takes a trace over the bound, alone
    assert (len(q), q.calls) == (1, 500)


def test_a_batch_that_does_not_pickle_becomes_one_frame_a_trace() -> None:
    from trace_store.writer import wire

    deep: list[object] = []
    node = deep
    for _ in range(5_000):  # deeper than pickle recurses
        child: list[object] = []
        node.append(child)
        node = child
    traces = [_pending(3) for _ in range(4)]
    traces[1].calls[0][4] = (deep,)  # type: ignore[index]
    ready = [wire.prepare(p) for p in traces]
    assert wire.encode_batch_fast(ready) is None
    frames, left_out = wire.encode_traces_alone(ready)
    assert (len(frames), left_out) == (4, 0)
    decoded = [wire.loads(f)[1][0] for f in frames]
    assert [len(p.calls or ()) for p in decoded] == [3, 3, 3, 3]
    assert decoded[1].values_tagged
    assert not decoded[0].values_tagged

"""Workers and crons (SPEC §15) against the real Postgres: enqueue as a recorded builtin,
every attempt a trace, retries and dead messages, work waiting for its worker, leases
that bring a killed process's messages back, and cron ticks run once across processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg
import orjson
import pytest

from gateway.config import WorkSettings
from gateway.workers import Workers
from runtime import stdlib
from runtime.replay import UnrecordedBuiltin, replay
from runtime.schedule import Schedule
from tests import canvases_work
from tests.canvases_slow import slow
from tests.canvases_work import jobs, jobs_v2
from tests.harness import Server, serve
from tests.test_serve_process import strata_serve
from trace_store import stored_trace
from trace_store.db import index, queue
from trace_store.document import codec, compact, schema
from trace_store.errors import InvalidInput

if TYPE_CHECKING:
    from gateway.services import Services
    from runtime.canvas import Canvas

ROOT = Path(__file__).resolve().parent.parent


async def _eventually(check: Callable[[], Awaitable[Any]], seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def _docs(server: Server, handler: str, count: int) -> list[dict[str, Any]]:
    """The base documents of ``count`` traces of ``handler`` (oldest first), once there."""
    pool = server.running.services.pool

    async def rows() -> list[index.IndexRow] | None:
        await server.flush()
        found = await index.list_traces(pool, "jobs", handler, limit=100)
        return found if len(found) >= count else None

    found = await _eventually(rows)
    store = server.running.services.store
    return [compact.expanded(await stored_trace.load(store, row)) for row in reversed(found)]


@contextlib.asynccontextmanager
async def _naps(
    database_url: str,
    tmp_path: Path,
    canvas: Canvas,
    events: list[dict[str, float]],
    settings: WorkSettings,
) -> AsyncIterator[tuple[Services, Workers]]:
    """``canvas`` (one worker of "naps") served with no workers of serve's own (role
    editor), ``events`` queued, and workers with ``settings`` started (stopped on exit;
    stopping twice is harmless). Check traces inside the block: the server closes at
    its end."""
    async with serve(database_url, tmp_path, {"slow": canvas}, role="editor") as server:
        services = server.running.services
        assert server.running.workers is None  # the editor role runs no workers
        for event in events:
            await queue.enqueue(services.pool, "slow", "naps", event)
        workers = Workers(services, settings)
        workers.start()
        try:
            yield services, workers
        finally:
            await workers.stop()


async def test_an_http_handler_enqueues_and_the_worker_trace_has_the_event(
    database_url: str, tmp_path: Path
) -> None:
    async with serve(database_url, tmp_path, {"jobs": jobs}) as server:
        async with server.http.post(
            server.gateway + "/signup", json={"email": "a@example.com"}
        ) as response:
            assert response.status == 200
            message_id = (await response.json())["queued"]
        (worker,) = await _docs(server, "send_welcome", 1)
        (http,) = await _docs(server, "signup", 1)
    schema.validate("trace", worker)
    assert worker["handler"] == {"id": "send_welcome", "kind": "worker", "queue": "emails"}
    assert worker["input"]["kind"] == "worker"
    assert worker["input"]["message_id"] == message_id
    assert worker["input"]["attempt"] == 1
    assert worker["input"]["event"] == {"to": "a@example.com", "n": 1.0}
    assert worker["result"] == {"value": {"sent_to": "a@example.com", "price": 2.0}}
    assert [c["function"] for c in worker["calls"]] == ["total"]
    # The HTTP trace recorded the enqueue as a builtin, with its message id.
    (enqueue,) = [c for c in http["calls"] if c["function"] == "queue.enqueue"]
    assert enqueue["kind"] == "builtin"
    assert enqueue["result"] == message_id

    # Replaying the HTTP trace answers the enqueue from the trace: nothing is queued.
    stdlib.queue.install(_refuse)
    try:
        report = await replay(jobs, http)
        assert report.same, report.as_json()
        conn = await asyncpg.connect(database_url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM queue_messages") == 0
        finally:
            await conn.close()
        # With other arguments the replay has no answer: it refuses, it never enqueues.
        changed = orjson.loads(orjson.dumps(http))
        changed["input"]["body"]["data"] = '{"email": "b@example.com"}'
        other = await replay(jobs, changed)
        assert other.error is not None
        assert other.error["type"] == UnrecordedBuiltin.__qualname__
    finally:
        stdlib.queue.install(None)


async def _signed_in(browser: Any, server: Server, token: str) -> tuple[Any, Any]:
    """A new browser context and its page, signed in to the editor with ``token``."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(server.editor + "/")
    await page.fill("#token-input", token)
    await page.click("#token-form button[type=submit]")
    return context, page


async def _refuse(canvas: str, name: str, value: Any) -> str:
    raise AssertionError("a replay enqueued")


async def test_retries_leave_one_trace_per_attempt_and_dead_messages_are_kept(
    database_url: str, tmp_path: Path
) -> None:
    canvases_work.calls.clear()
    async with serve(database_url, tmp_path, {"jobs": jobs}) as server:
        pool = server.running.services.pool
        await queue.enqueue(pool, "jobs", "flaky", {"key": "k1"})
        await queue.enqueue(pool, "jobs", "doomed", {"id": 7})
        server.running.workers.wake()  # type: ignore[union-attr]
        flaky = await _docs(server, "flaky", 3)
        doomed = await _docs(server, "doomed", 3)
        assert [d["input"]["attempt"] for d in flaky] == [1, 2, 3]
        assert [d["error"] is None for d in flaky] == [False, False, True]
        assert flaky[2]["result"] == {"value": "done"}
        assert flaky[0]["error"]["message"] == "not yet (1)"
        assert [d["input"]["attempt"] for d in doomed] == [1, 2, 3]
        assert all(d["error"]["type"] == "ValueError" for d in doomed)
        token = await server.token("jobs")

        async def dead() -> Any:
            status, body = await server.api("/api/v1/canvases/jobs/queues", token)
            assert status == 200
            queues = {q["name"]: q for q in body["queues"]}
            return queues if queues.get("doomed", {}).get("dead") == 1 else None

        queues = await _eventually(dead)
        assert queues["doomed"]["worker"] == "doomed"
        async with server.http.get(server.editor + "/metrics") as response:
            metrics = await response.text()
        assert 'strata_worker_attempts_total{outcome="dead",queue="doomed"} 1.0' in metrics
        assert 'strata_worker_attempts_total{outcome="error",queue="flaky"} 2.0' in metrics
        assert queues["flaky"]["ready"] == 0
        status, body = await server.api(
            "/api/v1/canvases/jobs/queues/doomed/messages?state=dead", token
        )
        assert status == 200
        (message,) = body["messages"]
        assert message["attempts"] == 3
        assert message["event"] == {"id": 7}
        assert "this always fails" in message["last_error"]
        # No further attempt after max_attempts.
        await asyncio.sleep(2.5)
        assert len(await index.list_traces(pool, "jobs", "doomed", limit=10)) == 3


async def test_work_waits_for_its_worker_and_survives_a_restart(
    database_url: str, tmp_path: Path
) -> None:
    async with serve(database_url, tmp_path, {"jobs": jobs}) as server:
        async with server.http.post(server.gateway + "/later", json={"customer": "acme"}) as r:
            assert r.status == 200
        token = await server.token("jobs")
        status, body = await server.api("/api/v1/canvases/jobs/queues", token)
        reports = {q["name"]: q for q in body["queues"]}["reports"]
        assert reports["worker"] is None  # unmatched work: nobody handles it yet
        assert reports["ready"] == 1
        status, body = await server.api("/api/v1/canvases/jobs/queues/reports/messages", token)
        assert body["messages"][0]["event"] == {"customer": "acme"}
        for bad in ("/queues/..%2f/messages", "/queues/reports/messages?state=gone"):
            status, body = await server.api(f"/api/v1/canvases/jobs{bad}", token)
            assert status in (400, 404), bad
            assert "error" in body
    # Restarted with the worker written: the message that waited is processed and traced.
    async with serve(database_url, tmp_path, {"jobs": jobs_v2}) as server:
        pool = server.running.services.pool

        async def traced() -> Any:
            await server.flush()
            return await index.list_traces(pool, "jobs", "build_report", limit=5)

        (row,) = await _eventually(traced)
        doc = await stored_trace.load(server.running.services.store, row)
        assert doc["result"] == {"value": "report for acme"}
        assert await pool.fetchval("SELECT count(*) FROM queue_messages") == 0


def test_schedules_are_aligned_and_bad_ones_are_refused() -> None:
    from datetime import UTC, datetime

    every = Schedule.parse(None, 30)
    at = datetime(2026, 12, 1, 10, 0, 44, 500000, tzinfo=UTC)
    assert every.latest(at) == datetime(2026, 12, 1, 10, 0, 30, tzinfo=UTC)
    assert every.after(every.latest(at)) == datetime(2026, 12, 1, 10, 1, tzinfo=UTC)
    cron = Schedule.parse("*/5 * * * *", None)
    assert cron.latest(datetime(2026, 12, 1, 10, 5, tzinfo=UTC)) == datetime(
        2026, 12, 1, 10, 5, tzinfo=UTC
    )
    assert cron.after(datetime(2026, 12, 1, 10, 5, tzinfo=UTC)) == datetime(
        2026, 12, 1, 10, 10, tzinfo=UTC
    )
    for expression, seconds in (
        ("0 0 31 2 *", None),
        ("* * *", None),
        (None, 0),
        (None, None),
        ("* * * * *", 5),
        (None, True),
    ):
        with pytest.raises(ValueError, match=r"cron|every"):
            Schedule.parse(expression, seconds)  # type: ignore[arg-type]


def _ticks(objects: list[Path]) -> list[str]:
    """The tick of every cron trace stored under ``objects`` directories."""
    found = []
    for root in objects:
        for path in root.rglob("*.zst"):
            if ".pins" in path.parts:
                continue
            for _, _, raw in codec.frames(path.read_bytes()):
                doc = orjson.loads(raw)
                if doc["handler"]["kind"] == "cron":
                    found.append(doc["input"]["tick"])
    return found


async def test_a_cron_runs_once_per_tick_across_two_processes(
    database_url: str, tmp_path: Path
) -> None:
    app = "tests.canvases_work:ticks"
    dirs = [tmp_path / "a", tmp_path / "b"]

    def env(data: Path) -> dict[str, str]:
        return {
            "STRATA_DATABASE_URL": database_url,
            "STRATA_DATA_DIR": str(data),
            "STRATA_STORE": "",
            "STRATA_BATCH_WAIT_MS": "20",
        }

    started = time.time()
    with (
        strata_serve(["--app", app], env(dirs[0]), cwd=ROOT),
        strata_serve(["--app", app], env(dirs[1]), cwd=ROOT),
    ):
        await asyncio.sleep(20)
    ended = time.time()
    ticks = _ticks([d / "objects" for d in dirs])
    assert len(ticks) == len(set(ticks))  # never two runs of one tick
    expected = int(ended // 2) - int(started // 2)
    assert abs(len(ticks) - expected) <= 1, (len(ticks), expected)

    # Both stopped for 10 s, then one starts: the latest missed tick runs once.
    await asyncio.sleep(10)
    restarted = time.time()
    with strata_serve(["--app", app], env(dirs[0]), cwd=ROOT) as printed:
        ready = time.time()
        await asyncio.sleep(1.0)
        async with aiohttp.ClientSession() as http, http.get(printed["editor"] + "/metrics") as r:
            metrics = await r.text()
    assert 'strata_cron_missed_total{handler="heartbeat"} 1.0' in metrics
    after = _ticks([d / "objects" for d in dirs])
    assert len(after) == len(set(after))
    late = sorted(_unix(t) for t in set(after) - set(ticks))
    # The tick that came last while both were stopped ran once, at start-up ...
    assert any(restarted - 2 <= t <= ready for t in late), (late, restarted, ready)
    # ... and none of the four before it.
    assert not any(ended + 1 < t < restarted - 2 for t in late), (late, ended, restarted)


def _unix(tick: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(tick.replace("Z", "+00:00")).timestamp()


async def test_a_killed_worker_process_lets_its_message_come_back(
    database_url: str, tmp_path: Path
) -> None:
    env = {
        "STRATA_DATABASE_URL": database_url,
        "STRATA_DATA_DIR": str(tmp_path / "data"),
        "STRATA_STORE": "",
        "STRATA_WORKER_LEASE": "2",
    }
    conn = await asyncpg.connect(database_url)
    try:
        with strata_serve(["--app", "tests.canvases_slow:slow", "--role", "worker"], env) as p:
            await _wait_migrated(conn)
            await queue.enqueue(conn, "slow", "naps", {"seconds": 30})
            await _eventually(
                lambda: conn.fetchval("SELECT count(*) FROM queue_messages WHERE state = 'running'")
            )
            os.kill(p["proc"].pid, signal.SIGKILL)
            for child in _children(p["proc"].pid):
                os.kill(child, signal.SIGKILL)
            p["proc"].wait()
        env["STRATA_DATA_DIR"] = str(tmp_path / "data2")
        with strata_serve(["--app", "tests.canvases_slow:fast", "--role", "worker"], env):
            # The lease lapses; the restarted process takes the message again (attempt 2).
            await _eventually(lambda: _gone(conn), seconds=20)
            await _eventually(lambda: conn.fetchval("SELECT count(*) FROM traces"), seconds=10)
        (doc,) = [
            orjson.loads(raw)
            for path in (tmp_path / "data2" / "objects" / "traces").rglob("*.zst")
            for _, _, raw in codec.frames(path.read_bytes())
        ]
        assert doc["input"]["attempt"] == 2  # the killed run counted
        assert doc["result"] == {"value": "skipped a 30 s nap"}
    finally:
        await conn.close()


async def _gone(conn: asyncpg.Connection) -> bool:
    return int(await conn.fetchval("SELECT count(*) FROM queue_messages")) == 0


async def _wait_migrated(conn: asyncpg.Connection) -> None:
    await _eventually(
        lambda: conn.fetchval("SELECT to_regclass('queue_messages') IS NOT NULL"), seconds=30
    )


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


async def test_worker_traces_rerun_explain_and_open_in_the_page(
    browser: Any, database_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    async with serve(database_url, tmp_path, {"jobs": jobs}) as server:
        async with server.http.post(server.gateway + "/signup", json={"email": "c@example.com"}):
            pass
        (worker,) = await _docs(server, "send_welcome", 1)
        token = await server.token("jobs")
        trace = f"/api/v1/canvases/jobs/traces/{worker['trace_id']}"
        status, patch = await server.api(trace + "/rerun", token, method="POST")
        assert status == 201, patch
        assert patch["result"] == {"value": {"sent_to": "c@example.com", "price": 2.0}}
        status, run = await server.api(
            trace + "/functions/total/run", token, method="POST", json={"args": [4.0]}
        )
        assert status == 201, run
        assert run["result"] == 8.0
        status, explained = await server.api(trace + "/explain", token, method="POST")
        assert status == 200, explained
        assert not explained["differs"]
        status, listed = await server.api("/api/v1/canvases/jobs/handlers", token)
        kinds = {h["id"]: h["kind"] for h in listed["handlers"]}
        assert kinds["send_welcome"] == "worker"
        assert kinds["signup"] == "http"

        context, page = await _signed_in(browser, server, token)
        try:
            row = page.locator(".handler-row[data-handler-id='send_welcome']")
            await expect(row.locator(".route")).to_have_text("worker of emails")
            await row.locator(".dot").first.click()
            await expect(page.locator("#input-event")).to_contain_text("c@example.com")
            await expect(page.locator("#input")).to_have_attribute("data-kind", "worker")
            await expect(page.locator("#result .result-value")).to_contain_text("sent_to")
        finally:
            await context.close()


async def test_stopping_finishes_what_fits_the_grace_and_gives_back_the_rest(
    database_url: str, tmp_path: Path
) -> None:
    events = [{"seconds": 0.3}, {"seconds": 30}]
    settings = WorkSettings(grace=1.0, poll=0.05)
    async with _naps(database_url, tmp_path, slow, events, settings) as (services, workers):
        await _eventually(
            lambda: services.pool.fetchval(
                "SELECT count(*) = 2 FROM queue_messages WHERE state = 'running'"
            )
        )
        started = time.monotonic()
        await workers.stop()
        assert time.monotonic() - started < 3  # the grace, not the 30 s nap
        left = await services.pool.fetch("SELECT state, attempts, event::text FROM queue_messages")
        assert [(r["state"], r["attempts"]) for r in left] == [("ready", 0)]  # untried
        assert orjson.loads(left[0]["event"]) == {"seconds": 30}
        await services.writer.flush()
        (row,) = await index.list_traces(services.pool, "slow", "nap", limit=5)
        doc = await stored_trace.load(services.store, row)
        assert doc["result"] == {"value": "rested"}


WAITING = """
from runtime import Canvas, stdlib

app = Canvas("live")


@app.http("POST", "/report")
async def report(request):
    return {"queued": await stdlib.queue.enqueue("reports", request.json())}
"""

WITH_WORKER = (
    WAITING
    + """

@app.worker("reports")
async def build_report(event):
    return "report for " + event["customer"]
"""
)


async def test_waiting_work_shows_in_the_page_and_a_reloaded_worker_drains_it(
    browser: Any, database_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    from tests.harness import serve_module

    async with serve_module(database_url, tmp_path, WAITING) as (server, module):
        token = await server.token("live")
        context, page = await _signed_in(browser, server, token)
        try:
            await expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
            async with server.http.post(server.gateway + "/report", json={"customer": "acme"}):
                pass
            waiting = page.locator(".waiting-queue[data-queue='reports']")
            await expect(waiting).to_contain_text("acme", timeout=5000)
            await expect(waiting.locator(".scaffold")).to_contain_text('@canvas.worker("reports")')
            module.write_text(WITH_WORKER)  # the developer writes the worker; --reload loads it
            row = page.locator(".handler-row[data-handler-id='build_report']")
            await expect(row.locator(".dot")).to_have_count(1, timeout=10_000)
            await expect(page.locator("#waiting-work")).to_contain_text("None.", timeout=5000)
        finally:
            await context.close()


async def test_a_backlog_is_taken_as_slots_free_not_at_each_poll(
    database_url: str, tmp_path: Path
) -> None:
    # Two slots and a poll of a minute: only finished messages can start the next.
    settings = WorkSettings(concurrency=2, poll=60.0)
    events = [{"seconds": 0.05}] * 10
    async with _naps(database_url, tmp_path, slow, events, settings) as (services, _):
        await _eventually(
            lambda: services.pool.fetchval("SELECT count(*) = 0 FROM queue_messages"),
            seconds=20,
        )


async def test_cron_traces_rerun_and_replay(database_url: str, tmp_path: Path) -> None:
    from tests.canvases_work import ticks

    async with serve(database_url, tmp_path, {"ticks": ticks}) as server:
        pool = server.running.services.pool

        async def traced() -> Any:
            await server.flush()
            return await index.list_traces(pool, "ticks", "heartbeat", limit=5)

        row = (await _eventually(traced, seconds=10))[0]
        doc = await stored_trace.load(server.running.services.store, row)
        schema.validate("trace", doc)
        assert doc["handler"] == {"id": "heartbeat", "kind": "cron", "schedule": "every 2s"}
        assert doc["input"]["kind"] == "cron"
        assert doc["input"]["tick"].endswith("Z")
        assert doc["result"] == {"value": "tock"}
        token = await server.token("ticks")
        status, patch = await server.api(
            f"/api/v1/canvases/ticks/traces/{row.trace_id}/rerun", token, method="POST"
        )
        assert status == 201, patch
        assert patch["result"] == {"value": "tock"}
        report = await replay(ticks, doc)
        assert report.same, report.as_json()


async def test_a_worker_that_hangs_is_abandoned_after_its_timeout(
    database_url: str, tmp_path: Path
) -> None:
    from tests.canvases_slow import stuck

    settings = WorkSettings(timeout=0.3, poll=0.05, backoff_base=0.1)
    async with _naps(database_url, tmp_path, stuck, [{"seconds": 1e9}], settings) as (
        services,
        _,
    ):
        await _eventually(
            lambda: services.pool.fetchval(
                "SELECT count(*) = 1 FROM queue_messages WHERE state = 'dead'"
            )
        )
        await services.writer.flush()
        rows = await index.list_traces(services.pool, "slow", "nap_forever", limit=5)
        docs = [await stored_trace.load(services.store, row) for row in rows]
        assert sorted(d["input"]["attempt"] for d in docs) == [1, 2]
        assert all(d["error"]["type"] == "RunTimeout" for d in docs)


async def test_enqueue_refuses_values_a_worker_could_not_get_back(
    database_url: str, tmp_path: Path
) -> None:
    class Opaque:
        pass

    deep: Any = []
    for _ in range(100):
        deep = [deep]
    enqueued: list[Any] = []

    async def keep(canvas: str, name: str, value: Any) -> str:
        enqueued.append(value)
        return "id"

    from runtime.recorder import current_canvas

    stdlib.queue.install(keep)
    token = current_canvas.set("jobs")
    try:
        for name, bad in (("emails", Opaque()), ("emails", {"x": deep}), ("UPPER", 1)):
            with pytest.raises(InvalidInput):
                await stdlib.queue.enqueue(name, bad)
        assert enqueued == []
        assert await stdlib.queue.enqueue("emails", {"ok": (1, 2)}) == "id"
        # Text that is not UTF-8 is refused before any query is sent.
        with pytest.raises(InvalidInput):
            await queue.enqueue(None, "jobs", "emails", "\ud800")  # type: ignore[arg-type]
    finally:
        current_canvas.reset(token)
        stdlib.queue.install(None)


async def test_a_cron_slower_than_its_interval_skips_the_ticks_it_ran_through(
    database_url: str, tmp_path: Path
) -> None:
    from tests.canvases_slow import ticks_slowly

    async with serve(database_url, tmp_path, {"slowticks": ticks_slowly}):
        await asyncio.sleep(7.5)
        conn = await asyncpg.connect(database_url)
        try:
            runs = await conn.fetch("SELECT tick, claimed_at FROM cron_runs ORDER BY tick")
        finally:
            await conn.close()
    assert 2 <= len(runs) <= 4, runs  # about one run every 3 s, not one a second
    # Each run is for a tick that had just come, not for one left behind by the last run.
    assert all((r["claimed_at"] - r["tick"]).total_seconds() < 1.5 for r in runs), runs

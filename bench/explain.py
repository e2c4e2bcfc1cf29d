"""Explain a trace (``runtime.explain``): the handler's code on a recorded trace under
the line tracer, in a thread with its own event loop. ms per explain and µs per line
event, next to the same replay without the tracer, for a 20-call trace (as
``bench.capture``'s), a 10,000-iteration loop and that loop cut by the event cap.
Everything runs in this process."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bench import capture
from bench.canvas import canvas as bench_canvas
from runtime import Canvas, Request
from runtime.execute import execute
from runtime.explain import ExplainLimits, explain
from runtime.replay import replay
from trace_store.document.build import TraceLimits, build_trace
from trace_store.record import PendingTrace

# The 20-call trace is bench.canvas's /chain; a tight loop shows the cost per line at volume.
loops = Canvas("bench-explain")


@loops.http("GET", "/tally")
def tally(request: Request) -> dict[str, int]:
    n = int(request.query.get("n", "10000"))
    total = 0
    for i in range(n):
        square = i * i
        total = (total + square) % 1_000_003
    return {"total": total}


MAX_CALLS = 10_000
CAP = 5_000


async def _doc(canvas: Canvas, handler_id: str, path: str, key: str, value: str) -> dict[str, Any]:
    """A trace document as explain gets it: recorded, built, through JSON and back."""
    handler = canvas.handlers[handler_id]
    run = await execute(handler, Request("GET", path, query=[(key, value)]), record=True)
    pending = PendingTrace.of_run(
        canvas.name, handler.description, run, method="GET", path=path,
        query_string=f"{key}={value}", params={}, raw_headers=capture.HEADERS, body=b"",
    )  # fmt: skip
    doc: dict[str, Any] = orjson.loads(orjson.dumps(build_trace(pending, TraceLimits())))
    return doc


def _canvas_of(doc: dict[str, Any]) -> Canvas:
    return bench_canvas if doc["canvas"] == bench_canvas.name else loops


async def per_call_ms(call: Callable[[], Awaitable[Any]], n: int, rounds: int = 7) -> float:
    """Median over rounds of the mean ms per awaited call."""
    await call()  # warm: linecache, first-call allocations
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            await call()
        samples.append((time.perf_counter() - t0) / n * 1e3)
    return statistics.median(samples)


def line_events(found: dict[str, Any]) -> int:
    return sum(line["hits"] for frame in found["frames"] for line in frame["lines"].values())


async def _noop() -> None:
    return None


async def _fixed() -> None:
    """explain()'s wrapper alone: hand-off to a worker thread and a new event loop there
    (``asyncio.to_thread`` reuses the default executor's thread after the first call, as
    it does in the gateway's long-lived loop; the new loop is made every time)."""
    await asyncio.to_thread(lambda: asyncio.run(_noop()))


async def _measure() -> None:
    chain_doc = await _doc(bench_canvas, "chain", "/chain", "seed", "1")
    tally_doc = await _doc(loops, "tally", "/tally", "n", "10000")
    full = ExplainLimits()
    capped = ExplainLimits(max_events=CAP)

    def explaining(doc: dict[str, Any], limits: ExplainLimits) -> Callable[[], Awaitable[Any]]:
        return lambda: explain(_canvas_of(doc), doc, limits=limits, max_calls=MAX_CALLS)

    def replaying(doc: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
        return lambda: replay(_canvas_of(doc), doc, max_calls=MAX_CALLS)

    # Sanity: the full explains reproduce the trace; the capped one is cut at the cap.
    checks = {}
    for name, doc in (("chain", chain_doc), ("tally", tally_doc)):
        found = await explaining(doc, full)()
        assert not found["differs"], name
        assert not found["truncated"], name
        assert (await replaying(doc)()).same, name
        checks[name] = found
    cut = await explaining(tally_doc, capped)()
    assert cut["truncated"] is True
    assert line_events(cut) <= CAP, line_events(cut)

    fixed = await per_call_ms(_fixed, 500)
    rows = [
        (
            "20-call trace (`chain`)",
            checks["chain"],
            await per_call_ms(explaining(chain_doc, full), 300),
            await per_call_ms(replaying(chain_doc), 3000),
        ),
        (
            "loop, 10,000 iterations (`tally`)",
            checks["tally"],
            await per_call_ms(explaining(tally_doc, full), 3),
            await per_call_ms(replaying(tally_doc), 100),
        ),
        (
            f"same loop, `ExplainLimits(max_events={CAP:,})`",
            cut,
            await per_call_ms(explaining(tally_doc, capped), 10),
            None,
        ),
    ]

    print("\n## Explain: a trace's code under the line tracer (ms, µs per line event)\n")
    print(
        "| trace | frames | line events | explain ms | µs per line event"
        " | tracer µs per line event (explain − replay − fixed) | replay ms (no tracer)"
        " | explain / replay | truncated |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, found, explain_ms, replay_ms in rows:
        events = line_events(found)
        per_event = explain_ms * 1e3 / events
        if replay_ms is None:
            net, shown, ratio = "—", "—", "—"
        else:
            net = f"{(explain_ms - replay_ms - fixed) * 1e3 / events:.2f}"
            shown, ratio = f"{replay_ms:.3f}", f"{explain_ms / replay_ms:.1f}×"
        print(
            f"| {name} | {len(found['frames'])} | {events:,} | {explain_ms:.3f}"
            f" | {per_event:.2f} | {net} | {shown} | {ratio} | {str(found['truncated']).lower()} |"
        )
    print(
        f"| fixed cost: thread hand-off + new event loop, no handler | — | — | {fixed:.3f}"
        " | — | — | — | — | — |"
    )


def main() -> None:
    asyncio.run(_measure())


if __name__ == "__main__":
    main()

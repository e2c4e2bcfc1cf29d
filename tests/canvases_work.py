"""Canvases with background work (SPEC §15), for the worker and cron tests."""

from __future__ import annotations

from collections import Counter
from typing import Any

from runtime import stdlib
from runtime.canvas import Canvas
from runtime.http import Request

jobs = Canvas("jobs")
#: Calls per message key, so a worker can fail the first times it sees one.
calls: Counter[str] = Counter()


@jobs.http("POST", "/signup")
async def signup(request: Request) -> dict[str, Any]:
    body = request.json()
    message_id = await stdlib.queue.enqueue("emails", {"to": body["email"], "n": 1.0})
    return {"queued": message_id}


@jobs.http("POST", "/later")
async def later(request: Request) -> dict[str, Any]:
    """Work for a queue whose worker does not exist yet."""
    return {"queued": await stdlib.queue.enqueue("reports", request.json())}


@jobs.worker("emails")
async def send_welcome(event: dict[str, Any]) -> dict[str, Any]:
    return {"sent_to": event["to"], "price": await total(event["n"])}


@jobs.function()
async def total(n: float) -> float:
    return n * 2


@jobs.worker("flaky")
def flaky(event: dict[str, str]) -> str:
    calls[event["key"]] += 1
    if calls[event["key"]] <= 2:
        raise RuntimeError(f"not yet ({calls[event['key']]})")
    return "done"


@jobs.worker("doomed", max_attempts=3)
def doomed(event: Any) -> None:
    raise ValueError("this always fails")


ticks = Canvas("ticks")


@ticks.cron(every=2)
def heartbeat() -> str:
    return "tock"


#: The jobs canvas once its "reports" worker is written.
jobs_v2 = Canvas("jobs")


@jobs_v2.worker("reports")
async def build_report(event: dict[str, Any]) -> str:
    return f"report for {event['customer']}"

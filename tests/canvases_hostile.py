"""A canvas of requests that once stalled a process (issue 13): a recursion error that
~500 call records share, a 600-deep body walked by a recursive user function, a trace at
its call and body limits, and a sync handler that blocks."""

from __future__ import annotations

import time
from typing import Any

from runtime import Canvas, Request, Response

canvas = Canvas("hostile")


@canvas.function()
def recurse(n: int) -> int:
    return recurse(n + 1) + 1


@canvas.function()
def depth(node: Any) -> int:
    return 1 + max((depth(child) for child in node), default=0) if isinstance(node, list) else 0


@canvas.function()
def tick(i: int) -> int:
    return i


@canvas.http("GET", "/recurse")
async def recursion(request: Request) -> int:
    return recurse(0)


@canvas.http("POST", "/deep")
async def deep(request: Request) -> dict[str, int]:
    return {"depth": depth(request.json())}


@canvas.http("POST", "/max")
async def maximal(request: Request) -> Response:
    total = sum(tick(i) for i in range(12_000))  # past the 10,000-call limit
    return Response(200, request.body + str(total).encode())


@canvas.http("GET", "/block")
def block(request: Request) -> str:
    time.sleep(1.0)
    return "done"


# The same trivial handler both ways: bench.stall measures what the thread hop of a sync
# handler costs.
@canvas.http("GET", "/hello-sync")
def hello_sync(request: Request) -> str:
    return "hello"


@canvas.http("GET", "/hello-async")
async def hello_async(request: Request) -> str:
    return "hello"

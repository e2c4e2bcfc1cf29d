"""The demo canvas that ``make run`` serves.

Try::

    curl localhost:8000/hello
    curl localhost:8000/users/42?verbose=1 -H 'Authorization: Bearer s3cret'
    curl -X POST localhost:8000/orders -d '{"items": [{"sku": "tea", "qty": 2, "price": 3.5}]}'
"""

from __future__ import annotations

from typing import Any

from runtime import Canvas, Request, Response, stdlib

canvas = Canvas("demo")


@canvas.function()
def add_tax(amount: float, rate: float) -> float:
    """Price with tax, rounded to cents."""
    return round(amount * (1 + rate), 2)


@canvas.function()
def line_total(item: dict[str, Any]) -> float:
    """One order line: quantity times unit price."""
    return float(item["qty"]) * float(item["price"])


@canvas.function()
def order_total(items: list[dict[str, Any]], rate: float) -> float:
    """The sum of all lines, with tax."""
    return add_tax(sum(line_total(item) for item in items), rate)


@canvas.function()
def step(value: int) -> int:
    """One link of the 20-call chain used by the benchmarks."""
    return value * 31 % 1_000_003


@canvas.http("GET", "/hello")
async def hello(request: Request) -> str:
    return "hello, world"


@canvas.http("GET", "/users/:id")
async def get_user(request: Request) -> dict[str, Any]:
    return {
        "id": request.params["id"],
        "verbose": request.query.get("verbose") == "1",
        "at": stdlib.time.now(),
        "session": stdlib.uuid.uuid4(),
    }


@canvas.http("POST", "/orders", id="create-order")
def create_order(request: Request) -> Response:
    body = request.json()
    items = body.get("items", []) if isinstance(body, dict) else []
    total = order_total(items, 0.2)
    return Response(201, {"total": total, "lines": len(items)}, headers={"x-order": "accepted"})


@canvas.http("GET", "/chain")
async def chain(request: Request) -> dict[str, int]:
    value = 1
    for _ in range(20):
        value = step(value)
    return {"value": value}


@canvas.http("GET", "/dice")
async def dice(request: Request) -> dict[str, int]:
    return {"roll": stdlib.random.randint(1, 6)}


@canvas.http("GET", "/files/*path")
async def files(request: Request) -> dict[str, str]:
    return {"path": request.params["path"]}


@canvas.http("GET", "/boom")
async def boom(request: Request) -> None:
    raise RuntimeError("the demo handler failed on purpose")

"""The shop canvas after a code change: same handler ids, different behaviour.

``strata replay`` runs these against traces recorded with :mod:`tests.canvases`.
"""

from __future__ import annotations

from typing import Any

from runtime import Canvas, Request, Response, stdlib

shop = Canvas("shop")


@shop.function()
def add_tax(amount: float, rate: float) -> float:
    return round(amount * (1 + rate), 2)


@shop.function()
def subtotal(items: list[dict[str, Any]]) -> float:
    return sum(float(i["price"]) * int(i["qty"]) for i in items)


@shop.function()
def order_total(items: list[dict[str, Any]], rate: float) -> float:
    return add_tax(subtotal(items), rate)


@shop.http("POST", "/orders", id="create-order")
def create_order(request: Request) -> Response:
    body = request.json()
    total = order_total(body["items"], 0.25)  # the tax rate changed
    return Response(201, {"total": total}, headers={"x-a": "b"})


@shop.http("GET", "/users/:id")
async def get_user(request: Request) -> dict[str, Any]:
    return {"id": request.params["id"], "at": stdlib.time.now(), "roll": stdlib.random.random()}


@shop.http("GET", "/dice")
async def dice(request: Request) -> dict[str, int]:
    return {"roll": stdlib.random.randint(1, 20)}  # arguments the trace never saw

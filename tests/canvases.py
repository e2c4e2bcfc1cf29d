"""Canvases used by the tests (importable as ``tests.canvases:shop`` by ``serve``)."""

from __future__ import annotations

import asyncio
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


@shop.function()
async def slow_double(value: int) -> int:
    await asyncio.sleep(0.001)
    return value * 2


@shop.function()
def step(value: int) -> int:
    return value * 31 % 1_000_003


@shop.http("GET", "/users/:id")
async def get_user(request: Request) -> dict[str, Any]:
    return {"id": request.params["id"], "at": stdlib.time.now(), "roll": stdlib.random.random()}


@shop.http("GET", "/users/me")
async def me(request: Request) -> str:
    return "me"


@shop.http("POST", "/orders", id="create-order")
def create_order(request: Request) -> Response:
    body = request.json()
    total = order_total(body["items"], 0.2)
    return Response(201, {"total": total}, headers={"x-a": "b"})


@shop.http("GET", "/pair")
async def pair(request: Request) -> list[int]:
    return list(await asyncio.gather(slow_double(1), slow_double(2)))


@shop.http("GET", "/chain")
async def chain(request: Request) -> dict[str, int]:
    value = 1
    for _ in range(20):
        value = step(value)
    return {"value": value}


@shop.http("GET", "/files/*path")
async def files(request: Request) -> dict[str, str]:
    return {"path": request.params["path"]}


@shop.http("GET", "/fail")
async def fail(request: Request) -> None:
    raise ValueError("broken on purpose")


@shop.http("GET", "/quiet", sample="none")
async def quiet(request: Request) -> str:
    return "unsampled"


@shop.http("GET", "/dice")
async def dice(request: Request) -> dict[str, int]:
    return {"roll": stdlib.random.randint(1, 6)}


@shop.http("POST", "/echo")
async def echo(request: Request) -> bytes:
    return request.body


blog = Canvas("blog")


@blog.http("GET", "/posts/:slug")
async def get_post(request: Request) -> dict[str, str]:
    return {"slug": request.params["slug"]}

"""A canvas for the editor loop's tests: its line numbers are found by the ``# @name``
markers at the ends of lines, so editing this file keeps the tests true."""

from __future__ import annotations

from typing import Any

from runtime import Canvas, Request, stdlib

dev = Canvas("dev")


@dev.function()
def price(item: str, qty: int) -> float:
    base = {"tea": 2.5, "unicorn": 1000.0}.get(item, 1.0)  # @price-base
    return base * qty  # @price-return


@dev.http("GET", "/order/:item")
def order(request: Request) -> dict[str, Any]:  # @order-def
    item = request.params["item"]  # @item
    count = int(request.query.get("count", "3"))  # @count
    if item == "unicorn":  # noqa: SIM108 - a branch for the tests @if
        note = "rare"  # @then
    else:
        note = "common"  # @else
    totals = []  # @totals
    for i in range(count):  # @loop
        totals.append(price(item, i + 1))  # @append
    lucky = stdlib.random.randint(1, 6)  # @lucky
    return {"item": item, "note": note, "total": sum(totals), "lucky": lucky}  # @return


@dev.http("GET", "/spin")
def spin(request: Request) -> dict[str, Any]:
    turns = 0
    while True:  # @spin
        turns += 1

"""The canvas the tracing benchmarks serve (``bench.gateway``) and record in-process
(``bench.capture``, ``bench.explain``): one route per shape of trace.

- ``/hello``: no user call, the fixed cost of a trace.
- ``/chain``: 20 user calls on small ints, as ``examples/demo.py``'s.
- ``/wide``: the same calls, 200 of them.
- ``/tagged``: 20 user calls whose arguments and results JSON cannot say as they are
  (bytes, datetimes, ints beyond 2**53): every value goes through the tagged path.

``seed`` in the query varies the values (``bench.capture`` trains a dictionary on other
requests than the one it compresses); without it every request is the same. The
handlers are ``async`` like the demo's, so the gateway runs them on its event loop
rather than in its thread pool, and ``execute()`` finishes them without suspending.
"""

from __future__ import annotations

import datetime as dt

from runtime import Canvas, Request

canvas = Canvas("bench")

CHAIN_CALLS = 20
WIDE_CALLS = 200
TAGGED_CALLS = 20
#: Above 2**53, so tagged; below 2**63, so orjson still writes the response.
BIG = 2**60
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@canvas.function()
def step(value: int) -> int:
    """One link of a chain of small ints."""
    return value * 31 % 1_000_003


@canvas.function()
def mix(blob: bytes, at: dt.datetime, big: int) -> tuple[bytes, dt.datetime, int]:
    """One link of a chain whose every argument and result is tagged."""
    return blob[1:] + blob[:1], at + dt.timedelta(seconds=1), BIG + big * 31 % BIG


@canvas.http("GET", "/hello")
async def hello(request: Request) -> str:
    return "hello, world"


@canvas.http("GET", "/chain")
async def chain(request: Request) -> dict[str, int]:
    value = int(request.query.get("seed", "1"))
    for _ in range(CHAIN_CALLS):
        value = step(value)
    return {"value": value}


@canvas.http("GET", "/wide")
async def wide(request: Request) -> dict[str, int]:
    value = int(request.query.get("seed", "1"))
    for _ in range(WIDE_CALLS):
        value = step(value)
    return {"value": value}


@canvas.http("GET", "/tagged")
async def tagged(request: Request) -> dict[str, str | int]:
    seed = int(request.query.get("seed", "1"))
    blob, at, big = seed.to_bytes(16, "big"), EPOCH + dt.timedelta(days=seed), BIG + seed
    for _ in range(TAGGED_CALLS):
        blob, at, big = mix(blob, at, big)
    return {"blob": blob.hex(), "at": at.isoformat(), "big": big}

"""A worker that takes its time (killed in the middle by the lease test), and the same
queue's worker once it is quick."""

from __future__ import annotations

import asyncio
from typing import Any

from runtime.canvas import Canvas

slow = Canvas("slow")


@slow.worker("naps")
async def nap(event: dict[str, Any]) -> str:
    await asyncio.sleep(event["seconds"])
    return "rested"


fast = Canvas("slow")


@fast.worker("naps")
async def nap_quickly(event: dict[str, Any]) -> str:
    return f"skipped a {event['seconds']} s nap"


#: A worker that never finishes (abandoned by its timeout).
stuck = Canvas("slow")


@stuck.worker("naps", max_attempts=2)
async def nap_forever(event: dict[str, Any]) -> None:
    await asyncio.sleep(1e9)


#: A cron slower than its interval.
ticks_slowly = Canvas("slowticks")


@ticks_slowly.cron(every=1)
async def long_tick() -> str:
    await asyncio.sleep(2.5)
    return "done"

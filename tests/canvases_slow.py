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

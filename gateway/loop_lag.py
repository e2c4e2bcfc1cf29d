"""How late the event loop runs what is due: the one number that shows a stall.

Every :data:`TICK` seconds a task asks to be woken and measures how much later it ran.
A request that holds the loop (strata's own code or a handler's) delays that wake-up by
as long as it holds it, so ``strata_event_loop_lag_seconds`` shows stalls as the
process itself saw them, whatever the clients' machines were doing. Alert on its p99.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from prometheus_client import Histogram

if TYPE_CHECKING:
    from trace_store.metrics import Metrics

TICK = 0.02
BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def start(metrics: Metrics) -> asyncio.Task[None]:
    """Start measuring; the histogram is registered with ``metrics``."""
    lag = Histogram(
        "strata_event_loop_lag_seconds",
        f"How late the event loop woke a task due every {TICK * 1000:.0f} ms",
        registry=metrics.registry,
        buckets=BUCKETS,
    )

    async def measure() -> None:
        while True:
            due = time.perf_counter() + TICK
            await asyncio.sleep(TICK)
            lag.observe(max(0.0, time.perf_counter() - due))

    return asyncio.create_task(measure(), name="strata-loop-lag")

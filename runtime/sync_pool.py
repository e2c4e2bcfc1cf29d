"""A bounded thread pool for sync handlers and sync user functions.

A ``def`` handler that blocks (a sleep, a slow library call) must not hold the event
loop, or every other request on the process waits with it. Like Starlette's ``def``
endpoints, sync code runs in a bounded pool of threads; the request's context
(and with it the trace recorder) follows it into the thread, so recording is the
same. When every thread is busy, further sync calls wait for one.
"""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

R = TypeVar("R")


class SyncPool:
    """Runs sync callables off the event loop, at most ``threads`` at a time."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="strata-sync")

    async def run(self, function: Callable[..., R], *args: Any) -> R:
        """``function(*args)`` in a pool thread, in a copy of the caller's context."""
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, context.run, function, *args)

    def close(self) -> None:
        """Stop the threads once their current calls return; queued calls are dropped."""
        self._executor.shutdown(wait=False, cancel_futures=True)

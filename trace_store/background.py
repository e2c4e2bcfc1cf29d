"""How strata's background loops live through outages: back off, and say it twice.

The pin outbox, lease renewal, retention and index maintenance all retry forever. When
Postgres or the store is unreachable, a loop that logged a traceback on every attempt
filled the log with one a second and hammered a server that was coming back. With
:class:`Retries`, an outage is one line when it starts and one when it ends, and the
attempts in between back off exponentially; an error that is not an outage is a bug,
logged with its traceback (at most once per backoff step).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, TypeVar

from trace_store.db import OUTAGE_ERRORS
from trace_store.errors import StoreUnavailable, describe

if TYPE_CHECKING:
    import logging
    from collections.abc import Awaitable, Callable

T = TypeVar("T")

_OUTAGES: tuple[type[BaseException], ...] = (*OUTAGE_ERRORS, StoreUnavailable)


class Retries:
    """The failures of one background loop: when to try again, and what to log."""

    def __init__(self, name: str, log: logging.Logger, *, base: float, cap: float = 30.0) -> None:
        self.name = name
        self._log = log
        self._base = base
        self._cap = max(cap, base)
        self._failures = 0
        self._outage_since: float | None = None

    @property
    def in_outage(self) -> bool:
        """Whether the last attempt failed because something was unreachable."""
        return self._outage_since is not None

    def failed(self, exc: Exception) -> float:
        """Record a failed attempt; the seconds to wait before the next one."""
        delay: float = min(self._base * 2.0**self._failures, self._cap)
        self._failures += 1
        if isinstance(exc, _OUTAGES):
            if self._outage_since is None:
                self._outage_since = time.monotonic()
                self._log.warning(
                    "%s: cannot reach the database or the store (%s); retrying,"
                    " backing off up to %.0f s",
                    self.name,
                    describe(exc),
                    self._cap,
                )
        else:
            self._log.error("%s failed; retrying in %.1f s", self.name, delay, exc_info=exc)
        return delay

    def succeeded(self) -> None:
        """Record a successful attempt (the end of an outage, if one was on)."""
        if self._outage_since is not None:
            self._log.warning(
                "%s: reachable again after %.0f s and %d failed attempts",
                self.name,
                time.monotonic() - self._outage_since,
                self._failures,
            )
        self._failures = 0
        self._outage_since = None


class GaveUp(Exception):
    """:func:`until_done` ran out of time before the call succeeded."""


async def until_done(
    call: Callable[[], Awaitable[T]], retries: Retries, *, give_up: float | None = None
) -> T:
    """``await call()`` until it succeeds, backing off with ``retries`` between failed
    attempts; :class:`GaveUp` once ``give_up`` seconds have passed (``None``: never)."""
    loop = asyncio.get_running_loop()
    deadline = None if give_up is None else loop.time() + give_up
    while True:
        try:
            result = await call()
        except Exception as exc:
            if deadline is not None and loop.time() > deadline:
                raise GaveUp(f"{retries.name}: gave up after {give_up:g} s") from exc
            await asyncio.sleep(retries.failed(exc))
            continue
        retries.succeeded()
        return result

"""Builtins: where non-determinism and side effects live.

Each builtin's arguments (hashed) and result are recorded, so a replay can answer it
from the trace instead of touching the clock, the random generator or the network.
Results are plain JSON-friendly values (``datetime``, ``float``, ``int``, ``str``,
``dict``) so that a recorded result and a live one have the same type.
"""

from __future__ import annotations

import random as _random
import uuid as _uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp

from runtime.canvas import QUEUE_RE
from runtime.recorder import call_builtin, call_builtin_async, current_canvas
from trace_store.document.values import MAX_DEPTH, TAG, to_json
from trace_store.errors import InvalidInput

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

_rng = _random.SystemRandom()


class _Time:
    @staticmethod
    def now() -> datetime:
        """The current time, timezone-aware UTC."""
        return call_builtin("time.now", _now)


def _now() -> datetime:
    return datetime.now(UTC)


class _Random:
    @staticmethod
    def random() -> float:
        """A float in [0, 1)."""
        return call_builtin("random.random", _rng.random)

    @staticmethod
    def randint(a: int, b: int) -> int:
        """An int N with a <= N <= b."""
        return call_builtin("random.randint", _rng.randint, a, b)


class _UUID:
    @staticmethod
    def uuid4() -> str:
        """A random UUID, as its canonical string."""
        return call_builtin("uuid.uuid4", _uuid4)


def _uuid4() -> str:
    return str(_uuid.uuid4())


#: Outbound responses larger than this are cut (the result says so).
MAX_HTTP_BODY = 10 * 1024 * 1024


class _HTTP:
    """Outbound HTTP through one shared aiohttp session per event loop."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=10), raise_for_status=False
            )
        return self._session

    async def _request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        json: Any = None,
        data: str | bytes | None = None,
    ) -> dict[str, Any]:
        async with self._client().request(
            method, url, headers=headers, params=params, json=json, data=data
        ) as response:
            raw = await response.content.read(MAX_HTTP_BODY + 1)
            return {
                "status": response.status,
                "headers": {k.lower(): v for k, v in response.headers.items()},
                "text": raw[:MAX_HTTP_BODY].decode(response.charset or "utf-8", "replace"),
                "truncated": len(raw) > MAX_HTTP_BODY,
            }

    async def get(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """GET ``url``; returns ``{status, headers, text, truncated}``."""
        return await call_builtin_async(
            "http.get", self._request, "GET", url, headers=headers, params=params
        )

    async def post(
        self,
        url: str,
        *,
        json: Any = None,
        data: str | bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST ``json`` or ``data`` to ``url``; returns ``{status, headers, text, truncated}``."""
        return await call_builtin_async(
            "http.post", self._request, "POST", url, headers=headers, json=json, data=data
        )

    async def close(self) -> None:
        """Close the shared session (the gateway calls this on shutdown)."""
        if self._session is not None:
            await self._session.close()
            self._session = None


time = _Time()
random = _Random()
uuid = _UUID()
http = _HTTP()


class _Queue:
    """``await stdlib.queue.enqueue(queue, value)``: a message for the queue's worker."""

    def __init__(self) -> None:
        self._enqueue: Callable[[str, str, Any], Awaitable[str]] | None = None

    def install(self, enqueue: Callable[[str, str, Any], Awaitable[str]] | None) -> None:
        """Where messages go: ``enqueue(canvas, queue, tagged value) -> message id``
        (``serve`` installs its database's; ``None`` uninstalls it)."""
        self._enqueue = enqueue

    async def enqueue(self, queue: str, value: Any) -> str:
        """Queue ``value`` for ``queue``'s worker (durable: in Postgres); returns the
        message id. A builtin: replays and explains answer it from the trace (they never
        run a builtin live), so they never enqueue."""
        if not isinstance(queue, str) or not QUEUE_RE.fullmatch(queue):
            raise InvalidInput(
                f"invalid queue name {str(queue)[:80]!r}: expected [a-z0-9][a-z0-9_.-]{{0,63}}"
            )
        return await call_builtin_async("queue.enqueue", self._live, queue, value)

    async def _live(self, queue: str, value: Any) -> str:
        canvas = current_canvas.get()
        if self._enqueue is None or canvas is None:
            raise InvalidInput("stdlib.queue.enqueue needs strata serve with a database")
        tagged = to_json(value)
        if _has_repr(tagged):  # it would reach the worker as a description, not a value
            raise InvalidInput(
                f"the value enqueued on {queue!r} holds an object strata cannot store as a"
                f" value (nested deeper than {MAX_DEPTH}, or of a type it keeps only as its"
                " repr): enqueue JSON values, bytes, dates, sets, tuples"
            )
        return await self._enqueue(canvas, queue, tagged)


def _has_repr(tagged: Any) -> bool:
    """Whether a tagged value holds a ``repr`` tag anywhere."""
    if isinstance(tagged, list):
        return any(_has_repr(item) for item in tagged)
    if isinstance(tagged, dict):
        if tagged.get(TAG) == "repr":
            return True
        return any(_has_repr(item) for item in tagged.values())
    return False


queue = _Queue()

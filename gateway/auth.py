"""Bearer-token checks for ``/api/`` routes: 401 without a valid token, 403 for another
canvas's token."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from trace_store.db.tokens import ALL_CANVASES, canvas_of
from trace_store.errors import Forbidden, Unauthorized

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.services import Services

_CACHE_SECONDS = 10.0
_CACHE_MAX = 10_000


class TokenChecker:
    """Resolves tokens with a short cache, so the API does not hit Postgres per call."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._cache: dict[str, tuple[float, str]] = {}

    async def canvas_for(self, request: web.Request) -> str:
        """The canvas the request's token grants (``*`` for the admin token)."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
        token = token.strip()
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await canvas_of(self._services.pool, token, self._services.settings.admin_token)
        if found is None:
            raise Unauthorized("invalid token")
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[token] = (now + _CACHE_SECONDS, found)
        return found

    def forget(self) -> None:
        """Drop every cached answer (a token was revoked somewhere)."""
        self._cache.clear()

    async def require(self, request: web.Request, canvas: str) -> None:
        """Raise unless the request's token may read ``canvas``."""
        granted = await self.canvas_for(request)
        if granted != ALL_CANVASES and granted != canvas:
            raise Forbidden(f"this token is not valid for canvas {canvas[:80]!r}")

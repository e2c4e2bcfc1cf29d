"""Domain errors to HTTP, in one middleware.

Handlers raise :class:`~trace_store.errors.StrataError` subclasses; this middleware
turns each into ``{"error": {"code", "message"}}`` with the class's status. A database
that cannot be reached is a 503 with ``Retry-After`` (and one log line a few times a
minute, not a traceback per request). Anything else is a bug: it is logged and
answered 500 without details.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from trace_store.db import OUTAGE_ERRORS
from trace_store.errors import StrataError, describe
from trace_store.logs import RateLimitedLog

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler

log = logging.getLogger("strata.api")
_outage_log = RateLimitedLog(log, per_minute=4)
#: Seconds a client is asked to wait after a 503.
RETRY_AFTER = "5"

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    503: "unavailable",
}


def json_error(status: int, code: str, message: str) -> web.Response:
    """An error response in strata's JSON shape (a 503 says when to retry)."""
    return web.Response(
        status=status,
        body=orjson.dumps({"error": {"code": code, "message": message}}),
        content_type="application/json",
        headers={"Retry-After": RETRY_AFTER} if status == 503 else None,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure as JSON with a fitting status."""
    try:
        return await handler(request)
    except StrataError as exc:
        status = exc.status if 400 <= exc.status < 600 else 500
        if status == 503:
            _outage_log.warning("%s %s: %s", request.method, request.path[:200], exc)
        elif status >= 500:
            log.error("%s %s failed: %s", request.method, request.path, exc)
        return json_error(status, exc.code, str(exc))
    except OUTAGE_ERRORS as exc:
        _outage_log.warning(
            "%s %s: database unavailable: %s", request.method, request.path[:200], describe(exc)
        )
        return json_error(503, "database_unavailable", "the database is unavailable; retry later")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        response = json_error(exc.status, code, exc.reason or code)
        # A 405 must say which methods the resource has (RFC 9110 §15.5.6).
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return json_error(500, "internal_error", "internal error")

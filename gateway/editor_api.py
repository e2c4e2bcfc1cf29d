"""The editor API (SPEC §8): handlers, trace lists, manifests.

Every route checks the token first, then validates ids, then reads. Trace bodies never
pass through here: a manifest hands out a signed URL and the editor fetches the base
object straight from the store.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.auth import TokenChecker
from gateway.services import SERVICES, Services
from trace_store import keys
from trace_store.db import index, patches
from trace_store.db.tokens import ALL_CANVASES
from trace_store.errors import InvalidInput, NotFound, TraceNotFound
from trace_store.parsing import ascii_uint
from trace_store.timestamps import rfc3339_of

if TYPE_CHECKING:
    from runtime.canvas import Canvas

API = "/api/v1/canvases/{canvas}"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500

TOKENS = web.AppKey("tokens", TokenChecker)


async def authorised_canvas(request: web.Request) -> tuple[Services, Canvas]:
    """Authorise the request for the path's canvas and return it."""
    services = request.app[SERVICES]
    name = request.match_info["canvas"]
    if not keys.CANVAS_RE.fullmatch(name):
        # Authorise before saying anything about the name.
        await request.app[TOKENS].canvas_for(request)
        raise InvalidInput(f"invalid canvas name {name[:80]!r}")
    await request.app[TOKENS].require(request, name)
    canvas = services.canvases.get(name)
    if canvas is None:
        raise NotFound(f"unknown canvas {name!r}")
    return services, canvas


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    return parse_limit(raw, MAX_LIMIT)


def parse_limit(raw: str, top: int) -> int:
    """A ``limit`` query value: ASCII digits, 1 to ``top``; else :class:`InvalidInput`."""
    # A few leading zeros are harmless; thousands of digits are not worth parsing.
    value = ascii_uint(raw, 20)
    if value is None or not 1 <= value <= top:
        raise InvalidInput(f"limit must be an integer from 1 to {top}, got {raw[:40]!r}")
    return value


async def list_handlers(request: web.Request) -> web.Response:
    """``GET .../handlers``."""
    _, canvas = await authorised_canvas(request)
    handlers = [h.description for h in sorted(canvas.handlers.values(), key=lambda h: h.id)]
    return web.json_response({"handlers": handlers})


def _moment(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO 8601 time, got {raw[:40]!r}") from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{name} needs a time zone (Z or +hh:mm), got {raw[:40]!r}")
    return moment


def _filter(request: web.Request) -> index.TraceFilter:
    """SPEC §14's filters of a trace list, validated."""
    status = request.query.get("status")
    if status is not None and status not in index.STATUS_FILTERS:
        raise InvalidInput(f"status must be one of {', '.join(index.STATUS_FILTERS)}")
    function = request.query.get("function")
    if function is not None and not keys.FUNCTION_RE.fullmatch(function):
        raise InvalidInput(f"invalid function name {function[:80]!r}")
    # since >= until is an empty range, not an error.
    return index.TraceFilter(status, _moment(request, "since"), _moment(request, "until"), function)


async def list_traces(request: web.Request) -> web.Response:
    """``GET .../handlers/{handler_id}/traces?limit=&before=&status=&since=&until=&function=``,
    newest first."""
    services, canvas = await authorised_canvas(request)
    handler_id = keys.check_handler_id(request.match_info["handler_id"])
    if handler_id not in canvas.handlers:
        raise NotFound(f"unknown handler {handler_id!r} in canvas {canvas.name!r}")
    limit = _limit(request)
    before = request.query.get("before")
    if before is not None:
        before = keys.check_trace_id(before)
    keep = _filter(request)
    # One more than the page: `next` is null on the last page, even a full one.
    rows = await index.list_traces(
        services.pool, canvas.name, handler_id, limit=limit + 1, before=before, keep=keep
    )
    more, rows = len(rows) > limit, rows[:limit]
    next_cursor = rows[-1].trace_id if more else None
    ids = [r.trace_id for r in rows]
    counts = await patches.count_patches(services.pool, canvas.name, ids)
    patched = [i for i in ids if counts.get(i)]
    reruns = await patches.latest_rerun_status(services.pool, canvas.name, patched)
    summaries = []
    for r in rows:
        summary = {**r.summary(), "pinned": r.pinned, "patch_count": counts.get(r.trace_id, 0)}
        if r.trace_id in reruns:
            summary["latest_status"] = reruns[r.trace_id]
        summaries.append(summary)
    return web.json_response({"traces": summaries, "next": next_cursor})


async def authorised_trace(request: web.Request) -> tuple[Services, Canvas, index.IndexRow]:
    """Authorise the path's canvas and return the index row of the path's trace."""
    services, canvas = await authorised_canvas(request)
    trace_id = keys.check_trace_id(request.match_info["trace_id"])
    row = await index.get_trace(services.pool, canvas.name, trace_id)
    if row is None:
        raise TraceNotFound(f"no trace {trace_id} in canvas {canvas.name!r}")
    return services, canvas, row


async def manifest(request: web.Request) -> web.Response:
    """``GET .../traces/{trace_id}``: a signed URL for the base, plus the patches."""
    services, canvas, row = await authorised_trace(request)
    signed = await services.store.sign_get(row.object_key, services.settings.signed_url_ttl)
    trace_patches = await patches.list_patches(services.pool, canvas.name, row.trace_id)
    base: dict[str, object] = {
        "url": signed.url,
        "expires_at": rfc3339_of(signed.expires_at),
        "bytes": row.size_bytes,
        "sha256": row.sha256.hex(),
        "content_encoding": "zstd",
    }
    if row.offset is not None:  # one frame of a segment: fetch it with a Range header
        base["range"] = {"offset": row.offset, "length": row.size_bytes}
    return web.json_response(
        {
            "trace_id": row.trace_id,
            "handler_id": row.handler_id,
            "started_at": rfc3339_of(row.started_at),
            "base": base,
            "patches": trace_patches,
        }
    )


async def list_canvases(request: web.Request) -> web.Response:
    """``GET /api/v1/canvases``: the loaded canvases the token may read."""
    granted = await request.app[TOKENS].canvas_for(request)
    services = request.app[SERVICES]
    names = sorted(services.canvases) if granted == ALL_CANVASES else [granted]
    canvases = [
        {"name": name, "handlers": len(services.canvases[name].handlers)}
        for name in names
        if name in services.canvases
    ]
    return web.json_response({"canvases": canvases})


def add_api_routes(app: web.Application, services: Services) -> None:
    """Register the editor API on ``app``."""
    app[TOKENS] = TokenChecker(services)
    app.router.add_get("/api/v1/canvases", list_canvases)
    app.router.add_get(f"{API}/handlers", list_handlers)
    app.router.add_get(f"{API}/handlers/{{handler_id}}/traces", list_traces)
    app.router.add_get(f"{API}/traces/{{trace_id}}", manifest)

"""The editor loop's API (SPEC §14): a handler's current source, and a trace explained
by that code (the values of every line, what did not run).

An explain runs canvas code under a line tracer in a thread of its own; a process runs
at most :data:`CONCURRENT_EXPLAINS` at a time, so a burst of them cannot take every
core from the requests it serves. One that cannot start within :data:`QUEUE_WAIT`
seconds is answered 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from gateway.editor_api import API, authorised_canvas, authorised_trace
from runtime.explain import ExplainLimits, explain
from runtime.source import handler_source
from trace_store import keys, stored_trace
from trace_store.errors import NotFound, StrataError

CONCURRENT_EXPLAINS: Final = 2
QUEUE_WAIT: Final = 5.0

_SLOTS = web.AppKey("explain_slots", asyncio.Semaphore)


class ExplainBusy(StrataError):
    """Every explain slot of this process is taken."""

    code = "explain_busy"
    status = 503


async def source(request: web.Request) -> web.Response:
    """``GET .../handlers/{handler_id}/source``."""
    _, canvas = await authorised_canvas(request)
    handler_id = request.match_info["handler_id"]
    if not keys.HANDLER_ID_RE.fullmatch(handler_id):
        raise NotFound(f"canvas {canvas.name!r} has no handler {handler_id[:80]!r}")
    return web.json_response(handler_source(canvas, handler_id))


async def explain_trace(request: web.Request) -> web.Response:
    """``POST .../traces/{trace_id}/explain``: nothing is written."""
    services, canvas, row = await authorised_trace(request)
    if row.handler_id not in canvas.handlers:
        raise NotFound(f"handler {row.handler_id!r} is no longer in canvas {canvas.name!r}")
    code = handler_source(canvas, row.handler_id)
    doc = await stored_trace.load(services.store, row)
    slots = request.app[_SLOTS]
    try:
        await asyncio.wait_for(slots.acquire(), QUEUE_WAIT)
    except TimeoutError:
        raise ExplainBusy(
            f"{CONCURRENT_EXPLAINS} explains are running; try again shortly"
        ) from None
    try:
        found = await explain(
            canvas,
            doc,
            handler_id=row.handler_id,
            limits=ExplainLimits(),
            max_calls=services.settings.limits.max_calls,
        )
    finally:
        slots.release()
    return web.json_response({**found, "code_sha256": code["sha256"]})


def add_explain_routes(app: web.Application) -> None:
    """Register ``source`` and ``explain`` (after the editor API: they use its tokens)."""
    app[_SLOTS] = asyncio.Semaphore(CONCURRENT_EXPLAINS)
    app.router.add_get(f"{API}/handlers/{{handler_id}}/source", source)
    app.router.add_post(f"{API}/traces/{{trace_id}}/explain", explain_trace)

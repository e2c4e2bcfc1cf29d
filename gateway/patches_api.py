"""Reruns and function runs (SPEC §8-§9): each appends a patch; the base never changes.

``POST .../traces/{id}/rerun`` runs the handler's current code on the trace's input
with builtins live. ``POST .../traces/{id}/functions/{function}/run`` runs one user
function on ``{"args": [...]}`` (tagged values, as traces record them, are accepted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from gateway.editor_api import API, authorised_trace
from gateway.http_server import read_body
from runtime.rerun import rerun_handler, run_function
from trace_store import keys, stored_trace
from trace_store.db import patches
from trace_store.document.values import MalformedValue, from_json
from trace_store.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from gateway.services import Services
    from trace_store.db.index import IndexRow
    from trace_store.types import JSONObject

MAX_ARGS_BYTES = 1024 * 1024


async def _base(services: Services, row: IndexRow) -> JSONObject:
    return await stored_trace.load(services.store, row)


def _created(patch: JSONObject) -> web.Response:
    return web.Response(status=201, body=orjson.dumps(patch), content_type="application/json")


async def rerun(request: web.Request) -> web.Response:
    """Run the handler again on the trace's input and store a ``rerun`` patch."""
    services, canvas, row = await authorised_trace(request)
    handler = canvas.handlers.get(row.handler_id)
    if handler is None:
        raise NotFound(f"handler {row.handler_id!r} is no longer in canvas {canvas.name!r}")
    base = await _base(services, row)
    settings = services.settings
    run = await rerun_handler(
        handler,
        base["input"],
        max_calls=settings.limits.max_calls,
        time_limit=settings.run_timeout,
        sync_pool=services.sync_pool,
    )
    body = patches.rerun_document(run, settings.limits)
    patch = await patches.append(services.pool, canvas.name, row.trace_id, row.started_at, body)
    return _created(patch)


async def _args(request: web.Request, services: Services) -> list[Any]:
    raw = await read_body(request, services.settings.body_timeout)
    if len(raw) > MAX_ARGS_BYTES:
        raise InvalidInput(f"request body over {MAX_ARGS_BYTES} bytes")
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict) or set(payload) != {"args"}:
        raise InvalidInput('body must be a JSON object {"args": [...]}')
    args = payload["args"]
    if not isinstance(args, list):
        raise InvalidInput('"args" must be a list of positional arguments')
    try:
        decoded: list[Any] = from_json(args)
    except MalformedValue as exc:
        raise InvalidInput(f'"args" holds a malformed tagged value: {exc}') from None
    return decoded


async def run_one_function(request: web.Request) -> web.Response:
    """Run one user function with the given args and store a ``function_run`` patch."""
    services, canvas, row = await authorised_trace(request)
    name = request.match_info["function"]
    if not keys.FUNCTION_RE.fullmatch(name):
        raise InvalidInput(f"invalid function name {name[:80]!r}")
    function = canvas.functions.get(name)
    if function is None:
        raise NotFound(f"no function {name!r} in canvas {canvas.name!r}")
    args = await _args(request, services)
    settings = services.settings
    run = await run_function(
        function,
        args,
        max_calls=settings.limits.max_calls,
        time_limit=settings.run_timeout,
        sync_pool=services.sync_pool,
    )
    body = patches.function_run_document(name, args, run)
    patch = await patches.append(services.pool, canvas.name, row.trace_id, row.started_at, body)
    return _created(patch)


def add_patch_routes(app: web.Application) -> None:
    """Register the two run routes."""
    app.router.add_post(f"{API}/traces/{{trace_id}}/rerun", rerun)
    app.router.add_post(f"{API}/traces/{{trace_id}}/functions/{{function}}/run", run_one_function)

"""The grand-user gateway: host -> canvas, route -> handler, run, answer, hand off.

This is the hot path. It does the routing, runs the handler (recording only when the
request is sampled), builds the HTTP response and appends the raw material of the
trace to the writer's queue. Nothing here waits for the object store or Postgres.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import CIMultiDict

from gateway.errors import json_error
from gateway.health import add_health_routes
from gateway.http_server import read_body
from gateway.services import SERVICES, Services
from runtime.execute import execute
from runtime.http import Request
from trace_store import keys
from trace_store.errors import StrataError
from trace_store.record import PendingTrace

if TYPE_CHECKING:
    from runtime.canvas import Canvas


class HostRouter:
    """Picks the canvas for a ``Host`` header: ``<canvas>.<domain>``.

    With exactly one canvas loaded, every host reaches it.
    """

    def __init__(self, canvases: dict[str, Canvas], domain: str) -> None:
        # Names, not canvas objects, are remembered: a reload swaps the canvas.
        self._canvases = canvases
        self._suffix = "." + domain
        self._only = next(iter(canvases)) if len(canvases) == 1 else None
        self._cache: dict[str, str | None] = {}

    def pick(self, host: str | None) -> Canvas | None:
        if self._only is not None:
            return self._canvases.get(self._only)
        if not host:
            return None
        if host in self._cache:
            known = self._cache[host]
            return None if known is None else self._canvases.get(known)
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.lower().rstrip(".")
        found = None
        if name.endswith(self._suffix) and name[: -len(self._suffix)] in self._canvases:
            found = name[: -len(self._suffix)]
        if len(self._cache) < 4096:  # bounded: hosts are client input
            self._cache[host] = found
        return None if found is None else self._canvases.get(found)


def _no_canvas(host: str | None) -> web.Response:
    return json_error(404, "unknown_canvas", f"no canvas serves host {str(host)[:200]!r}")


def _capture_unmatched(services: Services, canvas: str, request: web.Request, body: bytes) -> None:
    """Hand a 404's input to the writer (stored under ``unmatched/``, summarised in batches).

    Unmatched requests are rare and valuable (the first input of a handler to come), so
    they are not sampled. A scanner must not crowd out handler traces though: while the
    writer's memory queue is half full, new 404s are shed (counted) instead of queued.
    """
    writer = services.writer
    if writer.queued * 2 >= writer.config.queue_traces:
        services.metrics.traces_dropped.labels("unmatched_shed").inc()
        return
    writer.submit(
        PendingTrace(
            canvas=canvas,
            kind=keys.UNMATCHED,
            handler=None,
            started_ns=time.time_ns(),
            duration_ns=0,
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            params={},
            raw_headers=request.raw_headers,
            body=body,
        )
    )


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Answer one grand-user request."""
    services = request.app[SERVICES]
    canvas = request.app[HOSTS].pick(request.host)
    if canvas is None:
        services.metrics.count_request("-", "unknown_canvas")
        return _no_canvas(request.host)
    method, path = request.method, request.path
    try:
        body = await read_body(request, services.settings.body_timeout)
    except StrataError as exc:  # too slow or too large: nothing of it is kept
        services.metrics.count_request(canvas.name, "rejected")
        rejected = json_error(exc.status, exc.code, str(exc))
        rejected.force_close()  # the rest of the body may still be on its way
        return rejected
    match = canvas.match(method, path)
    if match is None:
        services.metrics.count_request(canvas.name, "unmatched")
        _capture_unmatched(services, canvas.name, request, body)
        return json_error(404, "not_found", f"no handler for {method} {path[:200]}")
    handler, params = match
    sampling = handler.sample or services.settings.sample
    sampled = sampling.decide()
    req = Request(
        method, path, params=params, query=request.query, headers=request.headers, body=body
    )
    run = await execute(
        handler,
        req,
        record=sampled,
        max_calls=services.settings.limits.max_calls,
        sync_pool=services.sync_pool,
    )
    assert run.status is not None  # an HTTP handler's run always has a response
    response = web.Response(status=run.status, body=run.body, headers=CIMultiDict(run.headers))
    services.metrics.count_request(canvas.name, "error" if run.error else "ok")
    if sampled or run.error is not None:  # errors are always traced
        services.writer.submit(
            PendingTrace.of_run(
                canvas.name,
                handler.description,
                run,
                method=method,
                path=path,
                query_string=request.query_string,
                params=params,
                raw_headers=request.raw_headers,
                body=body,
                sampled=sampled,
            )
        )
    return response


HOSTS = web.AppKey("hosts", HostRouter)


def build_gateway_app(services: Services) -> web.Application:
    """The grand-user app: health routes, then every other path to :func:`dispatch`."""
    app = web.Application(client_max_size=services.settings.max_request_bytes)
    app[SERVICES] = services
    app[HOSTS] = HostRouter(services.canvases, services.settings.domain)
    add_health_routes(app)
    # Every path, a newline in it too (a "." would not match %0A: aiohttp would 404 it).
    app.router.add_route("*", r"/{tail:[\s\S]*}", dispatch)
    return app

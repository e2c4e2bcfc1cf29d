"""The editor's event stream, ``GET /api/v1/canvases/{canvas}/events`` (SPEC §8): one
:class:`~gateway.events.EventHub` per process, its subscribers written out as
``text/event-stream`` with bounded buffers and write timeouts (see
:mod:`gateway.events` for the hub, resumption and the ``LISTEN`` connection).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.editor_api import TOKENS, authorised_canvas
from gateway.events import EventHub
from trace_store.db import tokens

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gateway.config import EventSettings
    from gateway.services import Services


EVENTS = web.AppKey("events", EventHub)


async def stream_events(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/canvases/{canvas}/events``: ``trace``, ``patch``, ``unmatched``
    (and ``resync``) events as ``text/event-stream``."""
    _, found = await authorised_canvas(request)
    canvas = found.name
    hub = request.app[EVENTS]
    if hub.client_count() >= hub.settings.max_clients:
        raise web.HTTPServiceUnavailable(reason="too many open event streams")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache, no-store",
            # Tell buffering reverse proxies (nginx) to pass events through at once.
            "X-Accel-Buffering": "no",
        }
    )
    sub, first = hub.subscribe(canvas, request.headers.get("Last-Event-ID"), request.transport)
    settings = hub.settings
    try:
        await response.prepare(request)
        await asyncio.wait_for(response.write(b"".join(first)), settings.write_timeout)
        while sub.closed is None:
            if sub.chunks:
                data = sub.take()
            else:
                sub.wake.clear()
                try:
                    await asyncio.wait_for(sub.wake.wait(), settings.heartbeat)
                    continue
                except TimeoutError:
                    data = b": keep-alive\n\n"
            try:
                await asyncio.wait_for(response.write(data), settings.write_timeout)
            except TimeoutError:
                sub.close("write_timeout")
                hub.drop(sub)
    except (ConnectionError, RuntimeError):
        pass  # the client went away (or was dropped): nothing left to tell it
    finally:
        hub.unsubscribe(sub)
    return response


def add_event_routes(
    app: web.Application, services: Services, settings: EventSettings | None = None
) -> None:
    """Register the event stream; listen while ``app`` runs.

    Call after :func:`gateway.editor_api.add_api_routes` (the token checker).
    """
    hub = EventHub(services, settings or services.settings.events)
    app[EVENTS] = hub
    # A revoked token must be refused at once, by every process: drop cached answers.
    hub.listen_also(tokens.REVOKED_CHANNEL, lambda _canvas: app[TOKENS].forget())

    async def listener(app: web.Application) -> AsyncIterator[None]:
        await hub.start()
        yield
        await hub.stop()

    async def end_streams(app: web.Application) -> None:
        # Runs before the server waits for open handlers: without it every open stream
        # would hold the shutdown for its full timeout.
        hub.close_all("shutdown")

    app.cleanup_ctx.append(listener)
    app.on_shutdown.append(end_streams)
    app.router.add_get("/api/v1/canvases/{canvas}/events", stream_events)

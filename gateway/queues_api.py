"""The editor's view of a canvas's queues (SPEC §15).

``GET .../queues`` lists every queue that has a worker or holds a message; a queue
whose ``worker`` is ``null`` holds work nobody handles yet, like a 404. ``GET
.../queues/{queue}/messages?state=ready|dead`` shows the messages themselves, with the
value each was enqueued with, so that the worker can be written against a real one.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.editor_api import API, authorised_canvas, parse_limit
from runtime.canvas import QUEUE_RE
from trace_store.db import queue
from trace_store.errors import InvalidInput, NotFound
from trace_store.timestamps import rfc3339_of

MAX_MESSAGES = 1000
STATES = ("ready", "dead")


async def list_queues(request: web.Request) -> web.Response:
    """``GET .../queues``."""
    services, canvas = await authorised_canvas(request)
    found = {s.name: s for s in await queue.stats(services.pool, canvas.name)}
    queues: list[dict[str, Any]] = []
    for name in sorted(found.keys() | canvas.workers.keys()):
        stats = found.get(name)
        worker = canvas.workers.get(name)
        queues.append(
            {
                "name": name,
                "worker": None if worker is None else worker.id,
                "ready": 0 if stats is None else stats.ready,
                "running": 0 if stats is None else stats.running,
                "dead": 0 if stats is None else stats.dead,
                "oldest_ready_at": None
                if stats is None or stats.oldest_ready_at is None
                else rfc3339_of(stats.oldest_ready_at),
            }
        )
    return web.json_response({"queues": queues})


async def list_messages(request: web.Request) -> web.Response:
    """``GET .../queues/{queue}/messages?state=ready|dead&limit=``, oldest first."""
    services, canvas = await authorised_canvas(request)
    name = request.match_info["queue"]
    if not QUEUE_RE.fullmatch(name):
        raise NotFound(f"canvas {canvas.name!r} has no queue {name[:80]!r}")
    state = request.query.get("state", "ready")
    if state not in STATES:
        raise InvalidInput(f"state must be one of {', '.join(STATES)}, got {state[:40]!r}")
    limit = parse_limit(request.query.get("limit", "100"), MAX_MESSAGES)
    found = await queue.messages(services.pool, canvas.name, name, state=state, limit=limit)
    return web.json_response(
        {
            "queue": name,
            "worker": None if name not in canvas.workers else canvas.workers[name].id,
            "messages": [
                {
                    "message_id": m.message_id,
                    "state": m.state,
                    "enqueued_at": rfc3339_of(m.enqueued_at),
                    "attempts": m.attempts,
                    "event": m.event,
                    "last_error": m.last_error,
                }
                for m in found
            ],
        }
    )


def add_queue_routes(app: web.Application) -> None:
    """Register the queue routes on the editor app."""
    app.router.add_get(f"{API}/queues", list_queues)
    app.router.add_get(f"{API}/queues/{{queue}}/messages", list_messages)

"""The editor's view of unmatched (404) requests (SPEC §8, §11).

``GET .../unmatched`` lists the summary rows that no **current** handler matches, most
recently seen first: a row whose path a loaded handler now matches is hidden (its
requests were adopted at start-up), and shows again if that handler goes away.
``GET .../unmatched/{trace_id}`` is the manifest of one stored unmatched request, so the
editor can read its input straight from the store like any trace.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from gateway.editor_api import API, authorised_canvas, parse_limit
from trace_store import keys
from trace_store.db import unmatched
from trace_store.errors import ObjectNotFound, TraceNotFound
from trace_store.timestamps import rfc3339_of

DEFAULT_LIMIT = 100


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    return parse_limit(raw, unmatched.PATHS_PER_CANVAS)


def entry_summary(entry: unmatched.Entry) -> dict[str, Any]:
    """One entry of the unmatched list."""
    return {
        "method": entry.method,
        "path": entry.path,
        "count": entry.count,
        "first_seen": rfc3339_of(entry.first_seen),
        "last_seen": rfc3339_of(entry.last_seen),
        "trace_id": entry.trace_id,
        # The path was cut to the summary's bound; the stored request has all of it.
        "path_truncated": entry.path_truncated,
        # The handler that adopted earlier requests of this path, if it is gone now.
        "adopted_by": entry.adopted_by,
    }


async def list_unmatched(request: web.Request) -> web.Response:
    """``GET .../unmatched?limit=``: requests no current handler matches, newest first."""
    services, canvas = await authorised_canvas(request)
    limit = _limit(request)
    # The whole bounded summary is read, so filtering never leaves the page short.
    entries = await unmatched.list_entries(services.pool, canvas.name)
    shown = [e for e in entries if canvas.match(e.method, e.path) is None][:limit]
    return web.json_response({"unmatched": [entry_summary(e) for e in shown]})


async def unmatched_manifest(request: web.Request) -> web.Response:
    """``GET .../unmatched/{trace_id}``: a signed URL for one stored unmatched request."""
    services, canvas = await authorised_canvas(request)
    trace_id = keys.check_trace_id(request.match_info["trace_id"])
    entry = await unmatched.find_sample(services.pool, canvas.name, trace_id)
    if entry is None:
        raise TraceNotFound(f"no unmatched request {trace_id} in canvas {canvas.name!r}")
    key = keys.unmatched_key(canvas.name, trace_id)
    try:
        # Unmatched objects are small and their hash is not indexed: read it once.
        data = await services.store.get(key)
    except ObjectNotFound:
        raise TraceNotFound(f"unmatched request {trace_id} has expired from the store") from None
    signed = await services.store.sign_get(key, services.settings.signed_url_ttl)
    return web.json_response(
        {
            "trace_id": trace_id,
            "method": entry.method,
            "path": entry.path,
            "base": {
                "url": signed.url,
                "expires_at": rfc3339_of(signed.expires_at),
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "content_encoding": "zstd",
            },
        }
    )


def add_unmatched_routes(app: web.Application) -> None:
    """Register the unmatched routes on the editor app (after the editor API's)."""
    app.router.add_get(f"{API}/unmatched", list_unmatched)
    app.router.add_get(f"{API}/unmatched/{{trace_id}}", unmatched_manifest)

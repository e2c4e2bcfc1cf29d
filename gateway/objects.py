"""``/objects/<key>?expires=&sig=``: signed downloads for stores strata serves itself.

Only the local and memory stores use this route; cloud stores hand out their own
presigned URLs. The response carries the stored bytes untouched, with
``Content-Encoding: zstd`` so a browser decodes them natively.
"""

from __future__ import annotations

from aiohttp import web

from gateway.services import SERVICES
from trace_store.errors import NotFound


async def get_object(request: web.Request) -> web.Response:
    """Serve one object if the URL's signature, expiry and key check out."""
    services = request.app[SERVICES]
    store = services.store
    if not store.serves_signed_urls_itself:
        raise NotFound("this store's objects are served by the store itself")
    key = services.signer.verify(
        request.match_info["key"],
        request.query.get("expires", ""),
        request.query.get("sig", ""),
    )
    info = await store.head(key)
    headers = {
        "Content-Type": info.content_type or "application/json",
        "Cache-Control": "private, max-age=300, immutable",
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "Content-Encoding, Content-Length",
    }
    if info.content_encoding:
        headers["Content-Encoding"] = info.content_encoding
    if request.method == "HEAD":
        # No body to measure: the stored size is the length a GET would send. aiohttp
        # refuses ``content_length`` on a Response, but keeps an explicit header.
        headers["Content-Length"] = str(info.size)
        return web.Response(headers=headers)
    return web.Response(body=await store.get(key), headers=headers)


def add_object_routes(app: web.Application) -> None:
    """Register ``/objects/{key}`` (GET and HEAD)."""
    app.router.add_get("/objects/{key:.+}", get_object)

"""``/objects/<key>?expires=&sig=``: signed downloads for stores strata serves itself.

Only the local and memory stores use this route; cloud stores hand out their own
presigned URLs. The response carries the stored bytes untouched, with
``Content-Encoding: zstd`` so a browser decodes them natively.
"""

from __future__ import annotations

from aiohttp import web

from gateway.services import SERVICES
from trace_store.errors import NotFound, RangeNotSatisfiable


async def get_object(request: web.Request) -> web.Response:
    """Serve one object (or one byte range of it: a trace's frame in a segment) if the
    URL's signature, expiry and key check out."""
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
        "Accept-Ranges": "bytes",
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "Content-Encoding, Content-Length, Content-Range",
    }
    if info.content_encoding:
        headers["Content-Encoding"] = info.content_encoding
    if request.method == "HEAD":
        # No body to measure: the stored size is the length a GET would send. aiohttp
        # refuses ``content_length`` on a Response, but keeps an explicit header.
        headers["Content-Length"] = str(info.size)
        return web.Response(headers=headers)
    byte_range = _byte_range(request, info.size)
    if byte_range is not None:
        start, end = byte_range
        headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    body = await store.get(key, byte_range=byte_range)
    return web.Response(body=body, headers=headers, status=200 if byte_range is None else 206)


def _byte_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """The inclusive range of one ``Range: bytes=`` header (a trace's frame), ``None``
    for none. As RFC 9110 §14.2 has it, a header that is not one byte range is ignored
    (the whole object is sent); one that starts past the end is a 416."""
    header = request.headers.get("Range", "")
    try:
        wanted = request.http_range if header.startswith("bytes=") else None
    except ValueError:
        wanted = None
    if wanted is None:
        return None
    start, stop, _ = wanted.indices(size)  # "5-", "-5", an end past the size
    if not 0 <= start < stop:
        raise RangeNotSatisfiable(f"range {header[:80]!r} lies outside this {size}-byte object")
    return start, stop - 1


def add_object_routes(app: web.Application) -> None:
    """Register ``/objects/{key}`` (GET and HEAD)."""
    app.router.add_get("/objects/{key:.+}", get_object)

"""``GET /api/v1/openapi.json``: the editor API's OpenAPI 3.1 document, no token needed.

The document is package data (``gateway/openapi.json``), written by hand from the
handlers and kept true by the tests: every route of the editor app must appear in it,
and a fuzzer run from the served copy must find no undocumented status or shape.
"""

from __future__ import annotations

import functools
from importlib import resources

from aiohttp import web

PATH = "/api/v1/openapi.json"


@functools.cache
def document_bytes() -> bytes:
    """The shipped document, exactly as stored (read once per process)."""
    return resources.files("gateway").joinpath("openapi.json").read_bytes()


async def openapi_document(request: web.Request) -> web.Response:
    """Serve the document. It describes the API, not any data, so it needs no token."""
    return web.Response(
        body=document_bytes(),
        content_type="application/json",
        headers={"Cache-Control": "no-cache"},
    )


def add_openapi_routes(app: web.Application) -> None:
    """Register the document's route on the editor app."""
    app.router.add_get(PATH, openapi_document)

"""The editor page: ``/`` and ``/static/...`` on the editor port, no token needed.

The page is static (plain HTML and ES modules, no build step); everything it shows
comes from the token-checked ``/api/`` routes and from signed object URLs. It is served
with a Content-Security-Policy that allows scripts from this origin only; ``connect-src``
stays open to any http(s) origin because the base objects come straight from the
bucket, whose origin the page learns from each manifest.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

from trace_store.errors import InvalidInput, NotFound
from trace_store.keys import check_key

STATIC_DIR = Path(__file__).parent / "static"

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' http: https:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page changes with the server version; revalidate rather than cache stale code.
    "Cache-Control": "no-cache",
}

_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


def _file(relative: str) -> Path:
    """A file under :data:`STATIC_DIR`, never outside it."""
    try:
        # Safe segments only, bounded: a NUL byte or a 300-character name would make
        # the filesystem calls below raise instead of finding nothing.
        check_key(relative)
    except InvalidInput:
        raise NotFound(f"no static file {relative[:80]!r}") from None
    root = STATIC_DIR.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound(f"no static file {relative[:80]!r}")
    return path


def _serve(path: Path) -> web.FileResponse:
    content_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
    headers = dict(_HEADERS)
    headers["Content-Type"] = f"{content_type or 'text/plain'}; charset=utf-8"
    return web.FileResponse(path, headers=headers)


async def index(request: web.Request) -> web.FileResponse:
    """``GET /``: the editor page."""
    return _serve(_file("index.html"))


async def static_file(request: web.Request) -> web.FileResponse:
    """``GET /static/{path}``: the page's modules, styles and vendored code."""
    return _serve(_file(request.match_info["path"]))


def add_static_routes(app: web.Application) -> None:
    """Register the editor page on ``app``."""
    app.router.add_get("/", index)
    app.router.add_get("/static/{path:.+}", static_file)

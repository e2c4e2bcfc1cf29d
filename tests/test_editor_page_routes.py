"""The editor page's static routes: served without a token, with a strict CSP, and never
outside ``gateway/static``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.canvases import shop
from tests.harness import Server, serve


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    async with serve(database_url, tmp_path, {"shop": shop}) as running:
        yield running


async def test_the_page_and_its_modules_are_served_with_a_strict_policy(server: Server) -> None:
    async with server.http.get(server.editor + "/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert '<script type="module" src="/static/app.js">' in await response.text()
    for name in ["app.js", "merge.js", "sse.js", "base.js", "vendor/fzstd.js", "style.css"]:
        async with server.http.get(f"{server.editor}/static/{name}") as response:
            assert response.status == 200, name
            expected = "text/css" if name.endswith(".css") else "text/javascript"
            assert response.content_type == expected, name


async def test_the_page_has_an_icon(server: Server) -> None:
    async with server.http.get(server.editor + "/") as response:
        assert '<link rel="icon" href="/static/favicon.svg"' in await response.text()
    async with server.http.get(server.editor + "/static/favicon.svg") as response:
        assert response.status == 200
        assert response.content_type == "image/svg+xml"
        assert (await response.read()).startswith(b"<svg")


@pytest.mark.parametrize(
    "path",
    ["/static/%2e%2e/serve.py", "/static/..%2fserve.py", "/static/nope.js", "/static/vendor"],
)
async def test_nothing_outside_the_static_folder_is_served(server: Server, path: str) -> None:
    async with server.http.get(server.editor + path) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"


async def test_signed_downloads_serve_one_byte_range_and_refuse_others(server: Server) -> None:
    store = server.running.services.store
    key = "traces/shop/get_user/01a20400-0ca1-72de-be1b-09fcceaec63a.0123456789abcdef.seg.zst"
    await store.put_or_verify(key, bytes(range(100)))
    url = (await store.sign_get(key, timedelta(minutes=1))).url
    for header, status, body in (
        ("bytes=10-19", 206, bytes(range(10, 20))),
        ("bytes=90-", 206, bytes(range(90, 100))),
        ("bytes=95-200", 206, bytes(range(95, 100))),  # an end past the object is clamped
        ("bytes=-5", 206, bytes(range(95, 100))),
    ):
        async with server.http.get(url, headers={"Range": header}) as response:
            assert response.status == status, header
            assert await response.read() == body, header
            assert response.headers["Content-Range"].endswith("/100")
            assert "Content-Encoding" not in response.headers  # a segment has none
    for header in ("bytes=100-", "bytes=500-600"):
        async with server.http.get(url, headers={"Range": header}) as response:
            assert response.status == 416, header
            assert (await response.json())["error"]["code"] == "range_not_satisfiable"
    # What is not one byte range is ignored (RFC 9110): the whole object.
    for header in ("bytes=5-2", "bytes=0-1,4-5", "pages=1-2", "bytes=x", "a/../../b", ""):
        async with server.http.get(url, headers={"Range": header}) as response:
            assert response.status == 200, header
            assert await response.read() == bytes(range(100))

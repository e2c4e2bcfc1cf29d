"""The editor page's static routes: served without a token, with a strict CSP, and never
outside ``gateway/static``."""

from __future__ import annotations

from collections.abc import AsyncIterator
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

"""Start a real strata server inside the test's event loop, on free ports."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from gateway.config import ServeSettings
from gateway.serve import Running, start
from runtime.canvas import Canvas
from trace_store import codec, tokens


@dataclasses.dataclass
class Server:
    """A started server plus an HTTP client and helpers to talk to it."""

    running: Running
    http: aiohttp.ClientSession

    @property
    def gateway(self) -> str:
        return self.running.urls["gateway"]

    @property
    def editor(self) -> str:
        return self.running.urls["editor"]

    async def token(self, canvas: str) -> str:
        return await tokens.create_token(self.running.services.pool, canvas)

    async def api(
        self, path: str, token: str | None, *, method: str = "GET", **kwargs: Any
    ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.http.request(
            method, self.editor + path, headers=headers, **kwargs
        ) as response:
            assert response.content_type == "application/json", await response.text()
            return response.status, await response.json()

    async def flush(self) -> None:
        await self.running.services.writer.flush()

    async def fetch_base(self, url: str) -> tuple[int, dict[str, str], bytes]:
        """GET a signed URL with no credentials; returns status, headers and raw bytes."""
        async with aiohttp.ClientSession(auto_decompress=False) as plain, plain.get(url) as r:
            return r.status, dict(r.headers), await r.read()

    async def trace_doc(self, canvas: str, token: str, trace_id: str) -> dict[str, Any]:
        status, manifest = await self.api(f"/api/v1/canvases/{canvas}/traces/{trace_id}", token)
        assert status == 200, manifest
        status, _, data = await self.fetch_base(manifest["base"]["url"])
        assert status == 200
        doc: dict[str, Any] = codec.decode(data)
        return doc


@contextlib.asynccontextmanager
async def serve(
    database_url: str, data_dir: Path, canvases: dict[str, Canvas], **overrides: Any
) -> AsyncIterator[Server]:
    """A running server with both apps on port 0, closed (and drained) on exit."""
    settings = dataclasses.replace(
        ServeSettings(),
        database_url=database_url,
        data_dir=data_dir,
        gateway_port=0,
        editor_port=0,
        secret=b"test-secret-0123456789abcdef",
        **overrides,
    )
    running = await start(settings, canvases)
    try:
        async with aiohttp.ClientSession() as http:
            yield Server(running, http)
    finally:
        await running.close()

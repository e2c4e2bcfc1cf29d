"""Start a real strata server inside the test's event loop, on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from gateway.config import ServeSettings
from gateway.serve import Running, start
from runtime.canvas import Canvas
from trace_store.backends.base import ObjectStore
from trace_store.db import tokens
from trace_store.document import codec, compact, schema
from trace_store.writer.batch_writer import TraceWriter


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

    async def trace_doc(
        self, canvas: str, token: str, trace_id: str, *, stored: bool = False
    ) -> dict[str, Any]:
        """The trace's base as readers see it (``/1`` Call objects, see
        :func:`compact.expanded`), checked against the schema as stored; ``stored``:
        the document as stored."""
        status, manifest = await self.api(f"/api/v1/canvases/{canvas}/traces/{trace_id}", token)
        assert status == 200, manifest
        status, _, data = await self.fetch_base(manifest["base"]["url"])
        assert status == 200
        doc: dict[str, Any] = codec.decode(data)
        schema.validate("trace", doc)
        return doc if stored else compact.expanded(doc)


@contextlib.asynccontextmanager
async def serve(
    database_url: str, data_dir: Path, canvases: dict[str, Canvas], **overrides: Any
) -> AsyncIterator[Server]:
    """A running server with both apps on port 0, closed (and drained) on exit.

    The writer runs inline unless ``writer_mode="process"`` is given: quicker to start,
    and tests can hold its store puts with :func:`hold_puts`.
    """
    overrides.setdefault("writer_mode", "inline")
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


@contextlib.asynccontextmanager
async def serve_module(
    database_url: str, tmp_path: Path, code: str
) -> AsyncIterator[tuple[Server, Path]]:
    """A server with ``--reload`` on, serving the canvas ``app`` of a new module file that
    holds ``code``; yields the server and the file (write it to change the code)."""
    from gateway.loader import load_canvases

    # One module name per server: a file is imported once per name and process.
    module = tmp_path / "code" / f"live_{uuid.uuid4().hex[:12]}.py"
    module.parent.mkdir()
    module.write_text(code)
    canvases = load_canvases([f"{module}:app"])
    async with serve(database_url, tmp_path / "data", canvases, reload=True) as server:
        yield server, module


class HeldStore:
    """A writer's store behind a hook: ``hook`` is awaited at the start of every
    ``put_many`` (once per attempt of a batch), so a test can hold the writer on the
    store or make an attempt fail; everything else goes straight to the wrapped store."""

    def __init__(self, store: ObjectStore, hook: Callable[[], Awaitable[None]]) -> None:
        self._store = store
        self._hook = hook

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def put_many(
        self, items: Sequence[tuple[str, bytes]], **kwargs: Any
    ) -> list[BaseException | None]:
        await self._hook()
        return await self._store.put_many(items, **kwargs)


def hold_puts(server: Server, hook: Callable[[], Awaitable[None]]) -> None:
    """Run ``hook`` before each store write of the server's (inline) writer."""
    writer = server.running.services.writer
    assert isinstance(writer, TraceWriter)
    writer.store = HeldStore(writer.store, hook)  # type: ignore[assignment]


@dataclasses.dataclass
class SseEvent:
    """One server-sent event (``type`` "comment" for a comment line)."""

    type: str
    data: str
    id: str | None

    def json(self) -> Any:
        return orjson.loads(self.data)


class SseReader:
    """A minimal event-stream parser over an aiohttp response, for tests."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.last_id: str | None = None
        self.retry: int | None = None

    async def next(self, timeout: float = 5.0, *, comments: bool = False) -> SseEvent:
        """The next event (or comment, when asked), failing after ``timeout`` seconds."""
        return await asyncio.wait_for(self._next(comments), timeout)

    async def _next(self, comments: bool) -> SseEvent:
        event, data, seen_id = "message", [], None
        while True:
            raw = await self.response.content.readline()
            if not raw:
                raise EOFError("the event stream ended")
            line = raw.decode().rstrip("\r\n")
            if line == "":
                if seen_id is not None:
                    self.last_id = seen_id
                if data:
                    return SseEvent(event, "\n".join(data), self.last_id)
                event, data, seen_id = "message", [], None
                continue
            if line.startswith(":"):
                if comments:
                    return SseEvent("comment", line[1:].strip(), None)
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            elif name == "id":
                seen_id = value
            elif name == "retry" and value.isdigit():
                self.retry = int(value)

    async def until(self, kind: str, timeout: float = 5.0) -> SseEvent:
        """Skip events until one of type ``kind``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            event = await self.next(max(remaining, 0.001))
            if event.type == kind:
                return event

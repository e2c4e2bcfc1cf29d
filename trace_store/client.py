"""The Python client of the editor API: what an editor does, from a script or terminal.

It lists handlers and traces, fetches a manifest, downloads the base **from the signed
URL with no credentials**, checks its sha256, decompresses it and folds the patches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

from trace_store import codec
from trace_store.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    StrataError,
    TraceNotFound,
    Unauthorized,
)
from trace_store.merge import merge

if TYPE_CHECKING:
    from types import TracebackType

    from trace_store.types import JSONObject

_ERRORS: dict[int, type[StrataError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
}


class IntegrityError(StrataError):
    """The downloaded base does not match the manifest's sha256."""

    code = "integrity_error"


@dataclass
class Client:
    """``async with Client(editor_url, token) as client: ...``"""

    editor_url: str
    token: str
    timeout: float = 60.0
    _http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("use Client as an async context manager")
        return self._http

    async def _api(self, method: str, path: str, **kwargs: Any) -> Any:
        url = self.editor_url.rstrip("/") + path
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.http.request(method, url, headers=headers, **kwargs) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = {"error": {"message": await response.text()}}
            if response.status >= 400:
                message = (body.get("error") or {}).get("message", response.reason)
                raise _ERRORS.get(response.status, StrataError)(
                    f"{method} {path}: {response.status} {message}"
                )
            return body

    async def handlers(self, canvas: str) -> list[JSONObject]:
        """The canvas's handlers."""
        body = await self._api("GET", f"/api/v1/canvases/{quote(canvas)}/handlers")
        return list(body["handlers"])

    async def traces(
        self, canvas: str, handler_id: str, *, limit: int = 50, before: str | None = None
    ) -> tuple[list[JSONObject], str | None]:
        """One page of a handler's traces (newest first) and the next cursor."""
        params: dict[str, str] = {"limit": str(limit)}
        if before:
            params["before"] = before
        path = f"/api/v1/canvases/{quote(canvas)}/handlers/{quote(handler_id)}/traces"
        body = await self._api("GET", path, params=params)
        return list(body["traces"]), body["next"]

    async def manifest(self, canvas: str, trace_id: str) -> JSONObject:
        """The trace's manifest: signed base URL and patches."""
        body: JSONObject = await self._api(
            "GET", f"/api/v1/canvases/{quote(canvas)}/traces/{quote(trace_id)}"
        )
        return body

    async def base(self, manifest: JSONObject) -> JSONObject:
        """Download, verify and decode the base trace of ``manifest``."""
        base = manifest["base"]
        # A fresh session: the signed URL must work with no credentials at all, and the
        # bytes must arrive as stored (zstd) for the sha256 to be checked.
        async with (
            aiohttp.ClientSession(auto_decompress=False) as plain,
            plain.get(base["url"]) as response,
        ):
            data = await response.read()
            if response.status != 200:
                error = TraceNotFound if response.status == 404 else Forbidden
                raise error(f"base download failed: {response.status} {data[:200]!r}")
        digest = hashlib.sha256(data).hexdigest()
        if digest != base["sha256"]:
            raise IntegrityError(f"base sha256 {digest} does not match {base['sha256']}")
        doc: JSONObject = codec.decode(data)
        return doc

    async def trace(self, canvas: str, trace_id: str) -> JSONObject:
        """The base trace document."""
        return await self.base(await self.manifest(canvas, trace_id))

    async def merged(self, canvas: str, trace_id: str) -> JSONObject:
        """The merged view: the base with every patch folded in."""
        manifest = await self.manifest(canvas, trace_id)
        return merge(await self.base(manifest), manifest["patches"])

    async def rerun(self, canvas: str, trace_id: str) -> JSONObject:
        """Re-run the handler on the trace's input; returns the new patch."""
        path = f"/api/v1/canvases/{quote(canvas)}/traces/{quote(trace_id)}/rerun"
        body: JSONObject = await self._api("POST", path)
        return body

    async def run_function(
        self, canvas: str, trace_id: str, function: str, args: list[Any]
    ) -> JSONObject:
        """Run one user function with ``args``; returns the new patch."""
        path = (
            f"/api/v1/canvases/{quote(canvas)}/traces/{quote(trace_id)}"
            f"/functions/{quote(function)}/run"
        )
        body: JSONObject = await self._api("POST", path, json={"args": args})
        return body

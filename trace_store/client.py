"""The Python client of the editor API: what an editor does, from a script or terminal.

It lists handlers and traces, fetches a manifest, downloads the base **from the signed
URL with no credentials**, checks its sha256, decompresses it and folds the patches.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import orjson

from trace_store.document import codec
from trace_store.document.merge import merge
from trace_store.errors import (
    ApiError,
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    ServerUnreachable,
    TraceNotFound,
    Unauthorized,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from types import TracebackType

    from trace_store.types import JSONObject

#: How much of a server's error message is kept (an HTML error page can be long).
_MESSAGE_CHARS = 300


# The API's error answers as ApiError (status, code, message) that are also the domain
# error of that status, so callers can catch either ``ApiError`` or ``NotFound`` & co.
class ApiInvalidInput(ApiError, InvalidInput):
    """The API answered 400."""


class ApiUnauthorized(ApiError, Unauthorized):
    """The API answered 401: no token, or one that matches no token."""


class ApiForbidden(ApiError, Forbidden):
    """The API answered 403: the token is for another canvas."""


class ApiNotFound(ApiError, NotFound):
    """The API answered 404: no such canvas, handler or trace."""


_ERRORS: dict[int, type[ApiError]] = {
    400: ApiInvalidInput,
    401: ApiUnauthorized,
    403: ApiForbidden,
    404: ApiNotFound,
}


def _one_line(text: str) -> str:
    """``text`` on one line and cut short: it ends up in a terminal's error line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _MESSAGE_CHARS else flat[: _MESSAGE_CHARS - 3] + "..."


def api_error(request: str, status: int, body: Any, reason: str | None) -> ApiError:
    """The :class:`ApiError` for an error answer; ``body`` is its decoded JSON (or text)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or "http_error")
        message = str(error.get("message") or reason or "")
    else:
        code, message = "http_error", str(body or reason or "")
    return _ERRORS.get(status, ApiError)(request, status, code, _one_line(message))


@contextlib.asynccontextmanager
async def _transport_errors(request: str, seconds: float) -> AsyncIterator[None]:
    """Turn aiohttp's connection failures and timeouts into :class:`ServerUnreachable`."""
    try:
        yield
    except TimeoutError:
        raise ServerUnreachable(f"{request}: no answer within {seconds:g}s") from None
    except aiohttp.InvalidURL as exc:
        raise InvalidInput(f"{request}: not a usable URL ({exc})") from None
    except aiohttp.ClientError as exc:
        detail = _one_line(str(exc) or type(exc).__name__)
        if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(
            exc.os_error, ConnectionRefusedError
        ):
            detail = "connection refused (is the server running?)"
        raise ServerUnreachable(f"{request}: {detail}") from None


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
        """One API call's decoded JSON. Raises :class:`ApiError` (a subclass per status)
        for an error answer, :class:`ServerUnreachable` when there is no answer."""
        url = self.editor_url.rstrip("/") + path
        request = f"{method} {url}"
        headers = {"Authorization": f"Bearer {self.token}"}
        async with (
            _transport_errors(request, self.timeout),
            self.http.request(method, url, headers=headers, **kwargs) as response,
        ):
            text = await response.text(errors="replace")
            try:
                body: Any = orjson.loads(text)
                is_json = True
            except orjson.JSONDecodeError:
                body, is_json = text, False
            if response.status >= 400:
                raise api_error(request, response.status, body, response.reason)
            if not is_json:
                # Something answered, but not an editor API (a wrong port, a proxy page).
                raise ApiError(
                    request,
                    response.status,
                    "not_json",
                    f"not a strata editor API (the answer is not JSON: {_one_line(text)[:80]!r})",
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
        """Download, verify and decode the base trace of ``manifest``: the whole object,
        or the trace's frame of a segment (``base.range``)."""
        base = manifest["base"]
        span = base.get("range")
        headers = {}
        if span is not None:
            offset, length = int(span["offset"]), int(span["length"])
            headers["Range"] = f"bytes={offset}-{offset + length - 1}"
        # A fresh session: the signed URL must work with no credentials at all, and the
        # bytes must arrive as stored (zstd) for the sha256 to be checked.
        request = f"GET {base['url']}"
        async with (
            _transport_errors(request, self.timeout),
            aiohttp.ClientSession(
                auto_decompress=False, timeout=aiohttp.ClientTimeout(total=self.timeout)
            ) as plain,
            plain.get(base["url"], headers=headers) as response,
        ):
            data = await response.read()
            if response.status not in (200, 206):
                error = TraceNotFound if response.status == 404 else Forbidden
                raise error(f"base download failed: {response.status} {data[:200]!r}")
        if span is not None and response.status == 200:
            data = data[offset : offset + length]  # a store that ignores Range sends it all
        digest = hashlib.sha256(data).hexdigest()
        if digest != base["sha256"] or len(data) != base["bytes"]:
            raise IntegrityError(
                f"base sha256 {digest} ({len(data)} bytes) does not match the manifest's"
                f" {base['sha256']} ({base['bytes']} bytes)"
            )
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

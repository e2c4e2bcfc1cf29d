"""The request a handler receives and the response it may return."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy, MultiMapping

from trace_store.errors import InvalidInput

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


class Request:
    """A grand-user request as a handler sees it.

    ``query`` is multi-valued (``query.getall("tag")``); ``headers`` is case-insensitive
    and multi-valued. The same object is rebuilt from a trace's input for reruns and
    replays, so it never refers to the live connection.
    """

    __slots__ = ("_json", "body", "headers", "method", "params", "path", "query")

    def __init__(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        query: MultiMapping[str] | Iterable[tuple[str, str]] = (),
        headers: MultiMapping[str] | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        self.method = method
        self.path = path
        self.params: dict[str, str] = params or {}
        # The gateway passes aiohttp's own read-only proxies through without copying.
        self.query: MultiMapping[str] = (
            query if isinstance(query, MultiDictProxy) else MultiDictProxy(MultiDict(query))
        )
        self.headers: MultiMapping[str] = (
            headers
            if isinstance(headers, CIMultiDictProxy)
            else CIMultiDictProxy(CIMultiDict(headers))
        )
        self.body = body
        self._json: Any = _UNSET

    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON; :class:`InvalidInput` (a 400) when it is not JSON."""
        if self._json is _UNSET:
            try:
                self._json = orjson.loads(self.body)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"request body is not valid JSON: {exc}") from None
        return self._json

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


_UNSET: Any = object()


class Response:
    """What a handler returns when it needs a status or headers.

    ``body`` may be a dict or list (sent as JSON), a str (text/plain), bytes, or None.
    """

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, status: int = 200, body: Any = None, headers: Mapping[str, str] | None = None
    ) -> None:
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"invalid HTTP status {status!r}")
        self.status = status
        self.body = body
        self.headers: dict[str, str] = dict(headers or {})


def render(value: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Turn a handler's return value into ``(status, headers, body bytes)``."""
    if isinstance(value, Response):
        status, headers, body = value.status, value.headers, value.body
    else:
        status, headers, body = 200, {}, value
    out_headers = list(headers.items())
    lower = {name.lower() for name in headers}
    if body is None:
        data, ctype = b"", None
    elif isinstance(body, (bytes, bytearray, memoryview)):
        data, ctype = bytes(body), "application/octet-stream"
    elif isinstance(body, str):
        data, ctype = body.encode(), "text/plain; charset=utf-8"
    else:
        data = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
        ctype = "application/json"
    if ctype is not None and "content-type" not in lower:
        out_headers.append(("Content-Type", ctype))
    return status, out_headers, data

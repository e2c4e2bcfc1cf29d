"""The HTTP server under both ports: time limits, protocol errors as JSON, quiet logs.

aiohttp parses requests; what it does with a connection that never completes one, or
with bytes it cannot parse, is set here:

- **Headers in time.** A connection must deliver a request's headers within
  ``header_timeout`` seconds of opening, or of the previous response (aiohttp's
  keep-alive timer, which it arms at connect and which no trickled byte extends); an
  idle keep-alive connection is closed after the same time.
- **Bodies in time.** :func:`read_body` reads a request body within ``body_timeout``
  (408 after it) and within the size limit (413); the connection is then closed after
  at most :data:`LINGER_SECONDS` more of draining.
- **Protocol errors** (a malformed request line or header, a bad chunk, a lost body)
  are answered in strata's JSON error shape, counted in
  ``strata_malformed_requests_total``, and logged at most a few lines a minute with the
  status and the error's class only: aiohttp's own message quotes the offending bytes,
  which may be a token.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from trace_store.errors import PayloadTooLarge, StrataError
from trace_store.logs import RateLimitedLog

if TYPE_CHECKING:
    from aiohttp.web_request import BaseRequest

    from trace_store.metrics import Metrics

log = logging.getLogger("strata.http")

LINGER_SECONDS = 1.0


class BodyTimeout(StrataError):
    """The client did not send its request body in time."""

    status = 408
    code = "request_timeout"


async def read_body(request: web.BaseRequest, seconds: float) -> bytes:
    """The whole request body, within ``seconds`` and the app's size limit."""
    if not request.body_exists:
        return b""
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except TimeoutError:
        raise BodyTimeout(f"the request body did not arrive within {seconds:g} s") from None
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(
            f"the request body is larger than {request.client_max_size} bytes"
        ) from None


class _Handler(RequestHandler):
    """aiohttp's connection handler, with strata's error responses and logging."""

    __slots__ = ()
    port_name = "-"
    metrics: Metrics | None = None
    quiet_log = RateLimitedLog(log)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A protocol error or an exception that escaped the app, answered as JSON."""
        if request.writer.output_size > 0:  # part of a response went out: only closing is left
            raise ConnectionError("response already started; closing the connection")
        kind = type(exc).__name__ if exc is not None else "error"
        if self.metrics is not None:
            self.metrics.malformed_requests.labels(self.port_name, str(status)).inc()
        if status >= 500 and exc is not None:
            # strata's own bug, not the client's: keep the traceback, at a bounded rate.
            self.quiet_log.error("%s port: unhandled %s", self.port_name, kind, exc_info=exc)
        else:
            self.quiet_log.warning(
                "%s port: %d answered to a malformed request (%s)", self.port_name, status, kind
            )
        code = "bad_request" if status < 500 else "internal_error"
        text = "malformed HTTP request" if status < 500 else "internal error"
        response = web.Response(
            status=status,
            body=orjson.dumps({"error": {"code": code, "message": text}}),
            content_type="application/json",
        )
        response.force_close()
        return response


class _Server(web.Server):
    """A :class:`web.Server` whose connections use the runner's :class:`_Handler` class."""

    handler_class: type[_Handler] = _Handler

    def __call__(self) -> RequestHandler:
        return self.handler_class(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """An :class:`web.AppRunner` with strata's time limits and protocol-error handling."""

    def __init__(
        self, app: web.Application, *, port_name: str, header_timeout: float, metrics: Metrics
    ) -> None:
        super().__init__(
            app,
            access_log=None,
            keepalive_timeout=header_timeout,
            # After an answer given before the body was read (408, 413), drain what
            # is left of the body for at most this long, then close (aiohttp: 10 s).
            lingering_time=LINGER_SECONDS,
        )
        handler = type(
            f"_{port_name.title()}Handler",
            (_Handler,),
            {"port_name": port_name, "metrics": metrics},
        )
        self._server_class = type(
            f"_{port_name.title()}Server", (_Server,), {"handler_class": handler}
        )

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp has no public hook for the connection handler class. The subclass adds
        # no state, only the factory method, so the server is re-classed in place.
        server.__class__ = self._server_class
        return server

"""Run one handler on one request (or message, or cron tick), with or without recording.

The gateway, reruns and replays all come through :func:`execute`, so a handler behaves
the same wherever it runs. Given a :class:`~runtime.sync_pool.SyncPool`, a sync handler
runs in one of its threads (``serve`` always gives one, so a blocking ``def`` handler
never holds the event loop); without one it runs inline, as in replays from a terminal.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from runtime.canvas import CRON, HTTP
from runtime.http import render
from runtime.recorder import Recorder, Replay, current, current_canvas
from trace_store.errors import StrataError
from trace_store.record import Execution

if TYPE_CHECKING:
    from runtime.canvas import Handler
    from runtime.http import Request
    from runtime.sync_pool import SyncPool


def _error_response(exc: BaseException) -> tuple[int, list[tuple[str, str]], bytes]:
    # Input errors raised inside a handler (e.g. request.json() on bad JSON) are the
    # grand-user's fault: answer 4xx with the message. Anything else is the handler's
    # bug: a 500 that does not leak details (the trace has them).
    if isinstance(exc, StrataError) and 400 <= exc.status < 500:
        status, code, message = exc.status, exc.code, str(exc)
    else:
        status, code, message = 500, "handler_error", "the handler raised an error"
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return status, [("Content-Type", "application/json")], body


async def execute(
    handler: Handler,
    request: Request | Any,
    *,
    record: bool,
    max_calls: int = 10_000,
    replay: Replay | None = None,
    sync_pool: SyncPool | None = None,
) -> Execution:
    """Run ``handler`` on its argument: an HTTP handler's :class:`Request`, a worker's
    message value; a cron is called with none (``request`` is ignored). An HTTP
    handler's exceptions become a response; every handler's end up in ``error``."""
    started_ns = time.time_ns()
    t0 = time.perf_counter_ns()
    recorder = Recorder(max_calls, replay) if record else None
    token = current.set(recorder) if recorder is not None else None
    canvas_token = current_canvas.set(handler.canvas)
    args = () if handler.kind == CRON else (request,)
    error: BaseException | None = None
    value: Any = None
    status: int | None = None
    headers: list[tuple[str, str]] = []
    body = b""
    try:
        if handler.is_async:
            value = await handler.function(*args)
        elif sync_pool is not None:
            value = await sync_pool.run(handler.function, *args)
        else:
            value = handler.function(*args)
        if handler.kind == HTTP:
            status, headers, body = render(value)
    except Exception as exc:
        error = exc
        value = None
        if handler.kind == HTTP:
            status, headers, body = _error_response(exc)
    finally:
        current_canvas.reset(canvas_token)
        if token is not None:
            current.reset(token)
    return Execution(
        status,
        headers,
        body,
        error,
        None if recorder is None else recorder.calls,
        recorder is not None and recorder.truncated,
        started_ns,
        t0,
        time.perf_counter_ns() - t0,
        None if handler.kind == HTTP else value,
    )

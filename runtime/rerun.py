"""Run code again on what a trace recorded: the handler on its input, or one function
on given arguments. Builtins run live here; :mod:`runtime.replay` answers them from the
trace instead."""

from __future__ import annotations

import asyncio
import base64
import inspect
import time
from typing import TYPE_CHECKING, Any

from runtime.canvas import CRON, HTTP, WORKER
from runtime.execute import execute
from runtime.http import Request
from runtime.recorder import Recorder, current
from trace_store.document.values import from_json
from trace_store.errors import InvalidInput, RunTimeout
from trace_store.record import FunctionRun

if TYPE_CHECKING:
    from runtime.canvas import Handler, UserFunction
    from runtime.sync_pool import SyncPool
    from trace_store.record import Execution


def request_from_input(doc_input: dict[str, Any]) -> Request:
    """Rebuild the handler's :class:`Request` from a trace's ``input``.

    Redacted header values stay redacted: a rerun sees ``[redacted]``, never a secret.
    """
    body_doc = doc_input.get("body") or {}
    data = body_doc.get("data", "")
    body = base64.b64decode(data) if body_doc.get("encoding") == "base64" else data.encode()
    query = [(k, v) for k, values in (doc_input.get("query") or {}).items() for v in values]
    headers = [(name, value) for name, value in doc_input.get("headers") or []]
    return Request(
        doc_input.get("method", "GET"),
        doc_input.get("path", "/"),
        params=dict(doc_input.get("params") or {}),
        query=query,
        headers=headers,
        body=body,
    )


def argument_of(handler: Handler, doc_input: dict[str, Any]) -> Any:
    """What ``handler`` is called with, rebuilt from a trace's ``input``: the request
    (HTTP), the message's value (a worker), nothing (a cron)."""
    kind = doc_input.get("kind", HTTP)
    if kind != handler.kind:
        raise InvalidInput(
            f"the trace's input is a {kind} input; handler {handler.id!r} is a {handler.kind}"
        )
    if kind == WORKER:
        return from_json(doc_input.get("event"))
    if kind == CRON:
        return None
    return request_from_input(doc_input)


async def rerun_handler(
    handler: Handler,
    doc_input: dict[str, Any],
    *,
    max_calls: int,
    time_limit: float,
    sync_pool: SyncPool | None = None,
) -> Execution:
    """Run ``handler`` again on a trace's ``input``, recorded, builtins live (a
    worker's enqueues too: a rerun is a real run).

    Past ``time_limit`` seconds the run is abandoned with
    :class:`~trace_store.errors.RunTimeout`, as in :func:`run_function`.
    """
    try:
        async with asyncio.timeout(time_limit):
            # execute() keeps the handler's own errors in the Execution: a TimeoutError
            # out of this block is the deadline's.
            return await execute(
                handler,
                argument_of(handler, doc_input),
                record=True,
                max_calls=max_calls,
                sync_pool=sync_pool,
            )
    except TimeoutError:
        raise RunTimeout(
            f"the rerun did not finish within {time_limit:g} s (STRATA_RUN_TIMEOUT)"
        ) from None


def bind_args(function: UserFunction, args: list[Any]) -> None:
    """Raise :class:`InvalidInput` unless ``args`` fit the function's parameters."""
    try:
        function.signature.bind(*args)
    except TypeError as exc:
        raise InvalidInput(
            f"arguments do not fit {function.name}{function.signature}: {exc}"
        ) from None


async def run_function(
    function: UserFunction,
    args: list[Any],
    *,
    max_calls: int,
    time_limit: float,
    sync_pool: SyncPool | None = None,
) -> FunctionRun:
    """Call ``function(*args)`` under a fresh recorder; nested calls are recorded.

    A sync function runs in ``sync_pool`` when given. Past ``time_limit`` seconds the run
    is abandoned with :class:`~trace_store.errors.RunTimeout` (a sync function's
    thread finishes on its own; nothing of it is kept).
    """
    bind_args(function, args)
    recorder = Recorder(max_calls)
    token = current.set(recorder)
    t0 = time.perf_counter_ns()
    result: Any = None
    error: BaseException | None = None
    try:
        async with asyncio.timeout(time_limit):
            try:
                if function.is_async or sync_pool is None:
                    value = function.raw(*args)
                else:
                    value = await sync_pool.run(function.raw, *args)
                if inspect.isawaitable(value):
                    value = await value
                result = value
            except Exception as exc:  # the function's own error (its own TimeoutError too)
                error = exc
    except TimeoutError:  # only the deadline's: the function's errors are caught inside
        raise RunTimeout(
            f"{function.name} did not finish within {time_limit:g} s (STRATA_RUN_TIMEOUT)"
        ) from None
    finally:
        current.reset(token)
    return FunctionRun(
        result, error, recorder.calls, recorder.truncated, t0, time.perf_counter_ns() - t0
    )

"""Per-request recording of the call tree, kept as cheap as possible.

A :class:`Recorder` lives in a context variable for the duration of one traced request
(so concurrent requests never share one). Each call is appended as a flat list; nothing
is serialised or hashed here. The writer turns the lists into the trace document after
the response has gone out. An untraced request has no recorder, and every wrapper
checks that first and calls straight through.
"""

from __future__ import annotations

import functools
import inspect
from contextvars import ContextVar
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, TypeVar

# The call record's slots and kinds belong to the hand-off (trace_store.record).
from trace_store.record import BUILTIN, C_END, C_ERROR, C_ID, C_RESULT, USER

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

R = TypeVar("R")


class Recorder:
    """The calls of one request, plus what a replay needs to answer builtins."""

    __slots__ = ("calls", "max_calls", "origin_ns", "replay", "sync_parent", "truncated")

    def __init__(self, max_calls: int = 10_000, replay: Replay | None = None) -> None:
        self.calls: list[list[Any]] = []
        self.max_calls = max_calls
        self.truncated = False
        self.origin_ns = perf_counter_ns()
        self.replay = replay
        #: The innermost running *sync* user call. A sync call cannot be interleaved
        #: with anything, so a plain attribute is exact for it and much cheaper than
        #: setting and resetting the parent context variable; async calls (which can
        #: interleave under ``gather``) use the context variable.
        self.sync_parent: int | None = None

    def begin(
        self, function: str, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[Any] | None:
        """Start a call record, or return ``None`` once the call limit is reached."""
        calls = self.calls
        if len(calls) >= self.max_calls:
            self.truncated = True
            return None
        parent = self.sync_parent
        record = [
            len(calls),
            _parent.get() if parent is None else parent,
            function,
            kind,
            args,
            kwargs or None,
            None,
            None,
            perf_counter_ns(),
            0,
        ]
        calls.append(record)
        return record


class Replay:
    """Answers builtins from a trace's recorded results (see :mod:`runtime.replay`)."""

    def answer(
        self, function: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[bool, Any]:
        """``(True, value)`` when recorded, else ``(False, None)``; may raise the recorded error."""
        raise NotImplementedError


current: ContextVar[Recorder | None] = ContextVar("strata_recorder", default=None)
#: The canvas whose handler is running (``stdlib.queue.enqueue`` enqueues within it).
current_canvas: ContextVar[str | None] = ContextVar("strata_canvas", default=None)
_parent: ContextVar[int | None] = ContextVar("strata_parent_call", default=None)


def parent_call() -> int | None:
    """The id of the innermost user-function call running now (``None`` outside one):
    what a call starting here would record as its parent."""
    recorder = current.get()
    if recorder is None:
        return None
    inner = recorder.sync_parent
    return _parent.get() if inner is None else inner


def record_function(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Wrap a user function so its calls are recorded when a recorder is active."""
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            recorder = current.get()
            if recorder is None:
                return await function(*args, **kwargs)
            record = recorder.begin(name, USER, args, kwargs)
            if record is None:
                return await function(*args, **kwargs)
            token = _parent.set(record[C_ID])
            try:
                result = await function(*args, **kwargs)
            except BaseException as exc:
                record[C_ERROR] = exc
                raise
            else:
                record[C_RESULT] = result
                return result
            finally:
                record[C_END] = perf_counter_ns()
                _parent.reset(token)

        return async_wrapper

    # The sync wrapper is the hot one (a handler calling small functions in a loop):
    # Recorder.begin is inlined and the parent kept on the recorder, not in a context
    # variable. Same records as the async path.
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        recorder = current.get()
        if recorder is None:
            return function(*args, **kwargs)
        calls = recorder.calls
        cid = len(calls)
        if cid >= recorder.max_calls:
            recorder.truncated = True
            return function(*args, **kwargs)
        outer = recorder.sync_parent
        record: list[Any] = [
            cid,
            _parent.get() if outer is None else outer,
            name,
            USER,
            args,
            kwargs or None,
            None,
            None,
            perf_counter_ns(),
            0,
        ]
        calls.append(record)
        recorder.sync_parent = cid
        try:
            result = function(*args, **kwargs)
        except BaseException as exc:
            record[C_ERROR] = exc
            record[C_END] = perf_counter_ns()
            raise
        finally:
            recorder.sync_parent = outer
        record[C_RESULT] = result
        record[C_END] = perf_counter_ns()
        return result

    return wrapper


def _end(record: list[Any] | None, slot: int, value: Any) -> None:
    """Finish a builtin's record (``None``: past the call limit) with its result or error."""
    if record is not None:
        record[slot] = value
        record[C_END] = perf_counter_ns()


def call_builtin(name: str, live: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Run a synchronous builtin, recording it (or answering it from a replay)."""
    recorder = current.get()
    if recorder is None:
        return live(*args, **kwargs)
    record = recorder.begin(name, BUILTIN, args, kwargs)
    try:
        if recorder.replay is not None:
            found, value = recorder.replay.answer(name, args, kwargs)
            result: R = value if found else live(*args, **kwargs)
        else:
            result = live(*args, **kwargs)
    except BaseException as exc:
        _end(record, C_ERROR, exc)
        raise
    _end(record, C_RESULT, result)
    return result


async def call_builtin_async(
    name: str, live: Callable[..., Awaitable[R]], *args: Any, **kwargs: Any
) -> R:
    """Run an async builtin, recording it (or answering it from a replay)."""
    recorder = current.get()
    if recorder is None:
        return await live(*args, **kwargs)
    record = recorder.begin(name, BUILTIN, args, kwargs)
    try:
        if recorder.replay is not None:
            found, value = recorder.replay.answer(name, args, kwargs)
            result: R = value if found else await live(*args, **kwargs)
        else:
            result = await live(*args, **kwargs)
    except BaseException as exc:
        _end(record, C_ERROR, exc)
        raise
    _end(record, C_RESULT, result)
    return result

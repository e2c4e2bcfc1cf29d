"""Explain a trace (SPEC §14): the handler's current code on the trace's input under a
line tracer, with every builtin answered from the trace as in a replay.

What a developer sees next to the code comes from here: per line of the handler and of
each user-function call, how often it ran and the local variables it assigned or
changed, as they stood after its last run; and the code lines that never ran.

The run happens in a thread of its own with its own event loop: ``sys.settrace`` is
per thread, so the server's loop is never traced and keeps serving. Builtins are
answered from the trace, so it has no side effects and is deterministic. A time limit
and a line-event cap end it (``truncated``); the tracer then stops the handler by
raising :class:`_Stop` (a ``BaseException``, so a handler's ``except Exception`` does
not swallow it).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson

from runtime.recorder import parent_call
from runtime.replay import TraceReplay, handler_of, report, run_replayed
from runtime.source import source_of
from trace_store.document.values import TAG, to_json

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import CodeType, FrameType

    from runtime.canvas import Canvas
    from trace_store.types import JSONObject

#: How far up the stack a nested code object (comprehension, lambda, inner def) looks
#: for the handler or user-function frame it belongs to.
_OWNER_DEPTH: Final = 8
#: Mutable containers whose length is remembered, so an in-place change (``append``)
#: counts as a change of the line that made it.
_SIZED: Final = (list, dict, set, bytearray)


@dataclass(frozen=True, slots=True)
class ExplainLimits:
    """Bounds of one explain (SPEC §14 defaults)."""

    time_limit: float = 10.0
    max_events: int = 200_000
    #: A value's tagged JSON beyond this many bytes is shown as a cut ``repr``.
    value_bytes: int = 2048
    #: Frame reports kept (a user function called in a long loop).
    max_frames: int = 1000


class _Stop(BaseException):
    """Raised by the tracer into the traced code when a limit is reached."""


@dataclass(frozen=True, slots=True)
class _Owner:
    """A traced function: the handler or a user function, and its code lines."""

    function: str
    kind: str  # "handler" | "user"
    first_line: int
    code_lines: frozenset[int]


@dataclass(slots=True)
class _Report:
    """One run of one traced function (a frame of the SPEC's ``frames``)."""

    owner: _Owner
    call_id: int | None
    #: This frame's index in ``frames``; the frame that called it and the line of that
    #: frame's code the call came from (``None`` for the handler's frame).
    index: int = 0
    caller: int | None = None
    called_from: int | None = None
    hits: dict[int, int] = field(default_factory=dict)
    values: dict[int, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> JSONObject:
        lines = {
            str(line): {"hits": self.hits.get(line, 0), "values": self.values.get(line, {})}
            for line in sorted(self.hits.keys() | self.values.keys())
        }
        not_run = sorted(self.owner.code_lines - self.hits.keys())
        return {
            "function": self.owner.function,
            "kind": self.owner.kind,
            "call_id": self.call_id,
            "first_line": self.owner.first_line,
            "lines": lines,
            "not_executed": not_run,
            "caller": self.caller,
            "called_from": self.called_from,
        }


@dataclass(slots=True)
class _FrameState:
    report: _Report
    line: int | None
    seen: dict[str, tuple[int, int]]


def _nested(code: CodeType) -> Iterator[CodeType]:
    """``code`` and every code object defined inside it."""
    yield code
    for const in code.co_consts:
        if inspect.iscode(const):
            yield from _nested(const)


def _code_lines(code: CodeType, body_start: int) -> frozenset[int]:
    """The lines of ``code`` (and its nested code) that hold code a tracer reports,
    from ``body_start`` on (not the decorators and the signature)."""
    found: set[int] = set()
    for each in _nested(code):
        found.update(line for _, _, line in each.co_lines() if line is not None)
    return frozenset(line for line in found if line >= body_start)


def _def_and_body(code: CodeType) -> tuple[int, int]:
    """The ``def`` line of ``code`` and the first line of its body."""
    found = source_of(code)
    if found is None:
        return code.co_firstlineno, code.co_firstlineno + 1
    lines, first = found
    for offset, text in enumerate(lines):
        if text.lstrip().startswith(("def ", "async def ")):
            # A signature may span lines: the body starts after the line ending in ':'.
            for more, rest in enumerate(lines[offset:]):
                if rest.split("#", 1)[0].rstrip().endswith(":"):
                    return first + offset, first + offset + more + 1
    return code.co_firstlineno, code.co_firstlineno + 1


class _Tracer:
    """A ``sys.settrace`` tracer for the handler's and user functions' code only."""

    def __init__(self, owners: dict[CodeType, _Owner], limits: ExplainLimits) -> None:
        self.limits = limits
        self.owners = owners
        # Nested code objects (comprehensions, lambdas) report into their owner's frame.
        self.nested = {
            inner: code for code in owners for inner in _nested(code) if inner is not code
        }
        self.reports: list[_Report] = []
        self.truncated = False
        self.events = 0
        self.deadline = time.monotonic() + limits.time_limit
        self._frames: dict[FrameType, _FrameState] = {}

    def trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        """The global trace function: start tracing frames of traced code only."""
        if event != "call":
            return None
        code = frame.f_code
        state = self._frames.get(frame)
        if state is None:  # a first call (a resumed coroutine keeps its state)
            owner = self.owners.get(code)
            if owner is not None:
                state = self._start(frame, owner)
            elif code in self.nested:
                state = self._nested_state(frame)
            if state is None:
                return None
        return self._local

    def _start(self, frame: FrameType, owner: _Owner) -> _FrameState | None:
        if len(self.reports) >= self.limits.max_frames:
            self.truncated = True
            return None
        call_id = parent_call() if owner.kind == "user" else None
        report = _Report(owner, call_id, index=len(self.reports))
        caller = self._traced_caller(frame)
        if caller is not None:
            report.caller, report.called_from = caller.report.index, caller.line
        self.reports.append(report)
        state = _FrameState(report, None, {})
        self._frames[frame] = state
        # The arguments, shown on the ``def`` line.
        self._changes(frame, state, owner.first_line)
        return state

    def _traced_caller(self, frame: FrameType) -> _FrameState | None:
        """The nearest traced frame up the stack (past the recording wrapper)."""
        outer = frame.f_back
        for _ in range(_OWNER_DEPTH):
            if outer is None:
                return None
            found = self._frames.get(outer)
            if found is not None:
                return found
            outer = outer.f_back
        return None

    def _nested_state(self, frame: FrameType) -> _FrameState | None:
        found = self._traced_caller(frame)
        if found is None:
            return None
        state = _FrameState(found.report, None, {})
        self._frames[frame] = state
        return state

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        state = self._frames.get(frame)
        if state is None:
            return None
        if event == "line":
            self.events += 1
            if self.events > self.limits.max_events or (
                self.events % 256 == 0 and time.monotonic() > self.deadline
            ):
                self.truncated = True
                raise _Stop
            if state.line is not None:
                self._changes(frame, state, state.line)
            line = frame.f_lineno
            state.line = line
            hits = state.report.hits
            hits[line] = hits.get(line, 0) + 1
        elif event in ("return", "exception") and state.line is not None:
            self._changes(frame, state, state.line)
        return self._local

    def _changes(self, frame: FrameType, state: _FrameState, line: int) -> None:
        """Record the locals that ``line`` assigned or changed."""
        seen = state.seen
        values: dict[str, Any] | None = None
        for name, value in frame.f_locals.items():
            if name.startswith("."):  # a comprehension's hidden iterator
                continue
            mark = (id(value), len(value) if isinstance(value, _SIZED) else -1)
            if seen.get(name) == mark:
                continue
            seen[name] = mark
            if values is None:
                values = state.report.values.setdefault(line, {})
            values[name] = self.tag(value)

    def tag(self, value: Any) -> Any:
        """``value`` tagged like a trace value, or a cut ``repr`` when too large."""
        try:
            tagged = to_json(value)
            size = len(orjson.dumps(tagged))
        except Exception:  # a value that cannot even be walked
            return {TAG: "repr", "type": type(value).__qualname__, "v": "<unreadable>"}
        if size <= self.limits.value_bytes:
            return tagged
        try:
            text = repr(value)
        except Exception:
            text = "<unreadable>"
        cut = text[: self.limits.value_bytes]
        return {TAG: "repr", "type": type(value).__qualname__, "v": f"{cut}… <{size} bytes>"}


def _code_of(function: Any) -> CodeType:
    code: CodeType = inspect.unwrap(function).__code__
    return code


@functools.lru_cache(maxsize=4096)
def _owner(code: CodeType, name: str, kind: str) -> _Owner:
    # A code object's lines never change (a reload makes new code objects).
    def_line, body_start = _def_and_body(code)
    return _Owner(name, kind, def_line, _code_lines(code, body_start))


def _owners(canvas: Canvas, handler_id: str) -> dict[CodeType, _Owner]:
    handler = canvas.handlers[handler_id]
    traced = [(handler.function, handler.id, "handler")]
    traced += [(f.raw, name, "user") for name, f in canvas.functions.items()]
    return {
        (code := _code_of(function)): _owner(code, name, kind) for function, name, kind in traced
    }


async def _run(
    canvas: Canvas,
    doc: JSONObject,
    handler_id: str | None,
    limits: ExplainLimits,
    max_calls: int,
) -> JSONObject:
    handler = handler_of(canvas, doc, handler_id)
    tracer = _Tracer(_owners(canvas, handler.id), limits)
    answers = TraceReplay(doc)
    sys.settrace(tracer.trace)
    try:
        run = await asyncio.wait_for(
            run_replayed(handler, doc, answers, max_calls), limits.time_limit
        )
    except (_Stop, TimeoutError):
        run = None
        tracer.truncated = True
    finally:
        sys.settrace(None)
    found = None if run is None else report(doc, handler, run, answers)
    return {
        "trace_id": doc["trace_id"],
        "result": None if found is None else found.result,
        "error": None if found is None else found.error,
        "differs": found is None or not found.same,
        "frames": [r.as_json() for r in tracer.reports],
        "unrecorded": [{"function": f, "args_hash": h} for f, h in answers.unrecorded],
        "truncated": tracer.truncated,
    }


async def explain(
    canvas: Canvas,
    doc: JSONObject,
    *,
    handler_id: str | None = None,
    limits: ExplainLimits | None = None,
    max_calls: int = 10_000,
) -> JSONObject:
    """Explain the trace ``doc`` with ``canvas``'s current code (SPEC §14's response,
    without ``code_sha256``, which the caller adds from the source it shows).
    ``handler_id`` defaults to the document's; an adopted request's document has none
    (its index row says whose trace it is)."""
    bounds = limits or ExplainLimits()
    return await asyncio.to_thread(
        lambda: asyncio.run(_run(canvas, doc, handler_id, bounds, max_calls))
    )

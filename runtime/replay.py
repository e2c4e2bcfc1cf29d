"""Replay: the handler's current code on a trace's input, builtins answered from the
trace, and a report of where the new execution differs from the recorded one.

No side effects: every builtin (clock, randomness, outbound HTTP) is answered from the
recorded result with the same function and args hash. A builtin called with arguments
the trace never saw raises :class:`UnrecordedBuiltin` inside the handler and is
reported; it is never run live.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runtime.execute import execute
from runtime.recorder import Replay
from runtime.rerun import argument_of
from trace_store.document.build import body_doc, calls_doc
from trace_store.document.compact import call_objects
from trace_store.document.values import args_hash, from_json, to_json
from trace_store.errors import NotFound, StrataError

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from runtime.canvas import Canvas, Handler
    from trace_store.record import Execution
    from trace_store.types import JSONObject


class UnrecordedBuiltin(StrataError):
    """A builtin was called with arguments the trace has no recorded result for."""

    code = "unrecorded_builtin"


class RecordedBuiltinError(Exception):
    """Re-raises, during a replay, an error a builtin raised when the trace was made."""


@dataclass
class TraceReplay(Replay):
    """Answers builtins from one trace's recorded calls, in recorded order."""

    doc: JSONObject
    unrecorded: list[tuple[str, str]] = field(default_factory=list)
    _queues: dict[tuple[str, str], deque[JSONObject]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Builtins only, whose hashes are stored: no user call's hash is derived here.
        for call in call_objects(self.doc, hashes=False):
            if call.get("kind") == "builtin":
                key = (call["function"], call["args_hash"])
                self._queues.setdefault(key, deque()).append(call)

    def answer(
        self, function: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[bool, Any]:
        digest = args_hash(args, kwargs)
        queue = self._queues.get((function, digest))
        if not queue:
            self.unrecorded.append((function, digest))
            raise UnrecordedBuiltin(
                f"{function} was called with arguments this trace never recorded"
                f" (args_hash {digest}); a replay does not run builtins live"
            )
        # Successive calls get successive recorded results; the last one repeats.
        call = queue.popleft() if len(queue) > 1 else queue[0]
        if "error" in call:
            error = call["error"]
            raise RecordedBuiltinError(f"{error.get('type')}: {error.get('message')}")
        return True, from_json(call.get("result"))


@dataclass
class Difference:
    """One place where the replay differs from the recording."""

    kind: str  # "result", "error", "call", "unrecorded_builtin"
    message: str
    recorded: Any = None
    now: Any = None


@dataclass
class ReplayReport:
    """What a replay found."""

    trace_id: str
    handler_id: str
    differences: list[Difference]
    result: JSONObject | None
    error: JSONObject | None

    @property
    def same(self) -> bool:
        return not self.differences

    def as_json(self) -> JSONObject:
        return {
            "trace_id": self.trace_id,
            "handler_id": self.handler_id,
            "same": self.same,
            "differences": [vars(d) for d in self.differences],
            "result": self.result,
            "error": self.error,
        }


def _call_summary(call: JSONObject) -> JSONObject:
    out = {"function": call.get("function"), "args_hash": call.get("args_hash")}
    if "error" in call:
        out["error"] = {k: call["error"].get(k) for k in ("type", "message")}
    else:
        out["result"] = call.get("result")
    return out


def _compare_calls(recorded: list[JSONObject], now: list[JSONObject]) -> list[Difference]:
    found: list[Difference] = []
    for i in range(max(len(recorded), len(now))):
        old = _call_summary(recorded[i]) if i < len(recorded) else None
        new = _call_summary(now[i]) if i < len(now) else None
        if old == new:
            continue
        if old is None:
            message = f"call #{i} is new: {new and new['function']}"
        elif new is None:
            message = f"call #{i} ({old['function']}) no longer happens"
        elif old["function"] != new["function"]:
            message = f"call #{i} was {old['function']}, now {new['function']}"
        elif old["args_hash"] != new["args_hash"]:
            message = f"call #{i} ({old['function']}) has different arguments"
        else:
            message = f"call #{i} ({old['function']}) returns a different result"
        found.append(Difference("call", message, old, new))
    return found


def handler_of(canvas: Canvas, doc: JSONObject, handler_id: str | None = None) -> Handler:
    """The handler a trace belongs to: ``handler_id`` when given, else the document's
    (an adopted request's document names none; its index row or manifest does)."""
    wanted = handler_id or (doc.get("handler") or {}).get("id", "")
    handler = canvas.handlers.get(wanted)
    if handler is None:
        raise NotFound(f"canvas {canvas.name!r} has no handler {wanted!r}")
    return handler


def run_replayed(
    handler: Handler, doc: JSONObject, answers: TraceReplay, max_calls: int
) -> Awaitable[Execution]:
    """``handler`` on the trace's input, recorded, its builtins answered by ``answers``."""
    return execute(
        handler,
        argument_of(handler, doc["input"]),
        record=True,
        max_calls=max_calls,
        replay=answers,
    )


async def replay(
    canvas: Canvas, doc: JSONObject, *, handler_id: str | None = None, max_calls: int = 10_000
) -> ReplayReport:
    """Re-execute the trace's handler on its input and compare with the recording."""
    handler = handler_of(canvas, doc, handler_id)
    answers = TraceReplay(doc)
    run = await run_replayed(handler, doc, answers, max_calls)
    return report(doc, handler, run, answers)


def report(doc: JSONObject, handler: Handler, run: Execution, answers: TraceReplay) -> ReplayReport:
    """Compare ``run`` (the handler re-executed with ``answers``) with the trace ``doc``."""
    calls = calls_doc(run.calls or [], run.origin_ns)
    error = (
        None
        if run.error is None
        else {"type": type(run.error).__qualname__, "message": str(run.error)}
    )
    differences: list[Difference] = [
        Difference(
            "unrecorded_builtin",
            f"{function} was called with arguments the trace never saw (args_hash {digest})",
            None,
            {"function": function, "args_hash": digest},
        )
        for function, digest in answers.unrecorded
    ]
    recorded_result = doc.get("result") or {}
    result: JSONObject
    if run.status is None:  # a worker's or a cron's: the value it returned
        result = {"value": to_json(run.value)}
        if run.error is None and recorded_result.get("value") != result["value"]:
            differences.append(
                Difference(
                    "result",
                    "the returned value changed",
                    recorded_result.get("value"),
                    result["value"],
                )
            )
    else:
        limit = (doc.get("limits") or {}).get("max_body_bytes", 1024 * 1024)
        body, _ = body_doc(run.body, limit)
        result = {"status": run.status, "body": body}
        if recorded_result.get("status") != run.status:
            differences.append(
                Difference(
                    "result", "the status changed", recorded_result.get("status"), run.status
                )
            )
        old_body = recorded_result.get("body") or {}
        if not old_body.get("truncated") and old_body.get("data") != body["data"]:
            differences.append(
                Difference(
                    "result", "the response body changed", old_body.get("data"), body["data"]
                )
            )
    old_error = doc.get("error")
    old_error_short = (
        None if old_error is None else {k: old_error.get(k) for k in ("type", "message")}
    )
    if old_error_short != error and not answers.unrecorded:
        differences.append(Difference("error", "the error changed", old_error_short, error))
    differences += _compare_calls(call_objects(doc), calls)
    return ReplayReport(doc["trace_id"], handler.id, differences, result, error)

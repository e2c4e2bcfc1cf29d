"""What ``runtime`` hands to ``trace_store``: the call record, the outcomes of runs
(:class:`Execution`, :class:`FunctionRun`) and the finished trace (:class:`PendingTrace`,
its exceptions as :class:`ErrorInfo`).

The leaf of the hand-off between the two packages (``runtime`` fills these,
``trace_store`` reads them), so neither needs the other's modules for it.

A **call record** is a flat list, for speed (the recorder appends one per call on the
request's path); its slots are named here, and nowhere else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import operator
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Final

from trace_store.document import tracebacks
from trace_store.document.ids import uuid7
from trace_store.keys import TRACES

if TYPE_CHECKING:
    from collections.abc import Iterable

#: A call of a function of the canvas (``@canvas.function``), and of a strata builtin.
USER: Final = "user"
BUILTIN: Final = "builtin"

# Positions in a call record.
C_ID, C_PARENT, C_FUNCTION, C_KIND, C_ARGS, C_KWARGS, C_RESULT, C_ERROR, C_START, C_END = range(10)


@dataclass(slots=True)
class Execution:
    """The outcome of one handler run. ``calls`` is ``None`` when it was not recorded.
    An HTTP handler's has a response (``status``, ``headers``, ``body``); a worker's or a
    cron's has ``status`` ``None`` and the ``value`` it returned."""

    status: int | None
    headers: list[tuple[str, str]]
    body: bytes
    error: BaseException | None
    calls: list[list[Any]] | None
    truncated_calls: bool
    started_ns: int
    origin_ns: int
    duration_ns: int
    value: Any = None


@dataclass(slots=True)
class FunctionRun:
    """The outcome of one user function run with its nested calls."""

    result: Any
    error: BaseException | None
    calls: list[list[Any]]
    truncated_calls: bool
    origin_ns: int
    duration_ns: int


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An exception reduced to what a trace keeps of it, so it can cross processes.

    A live exception holds its traceback's frames, which do not pickle; the writer
    process gets this instead, with the traceback already formatted.
    """

    type: str
    message: str
    traceback: str

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        """The trace's view of ``exc``, computed once per exception.

        One exception is recorded by every call it propagates through (a recursion
        error by ~1,000), so the result is kept on the exception itself.
        """
        known = exc.__dict__.get(_INFO_ATTR)
        if isinstance(known, ErrorInfo):
            return known
        info = cls(type(exc).__qualname__, tracebacks.message(exc), tracebacks.format_bounded(exc))
        with contextlib.suppress(Exception):  # an exception type that refuses attributes
            setattr(exc, _INFO_ATTR, info)
        return info

    def __reduce__(self) -> tuple[Any, tuple[str, str, str]]:
        # The plain constructor, so unpickling names no helper beyond this class.
        return ErrorInfo, (self.type, self.message, self.traceback)


_INFO_ATTR = "__strata_error_info__"


@dataclass(slots=True)
class PendingTrace:
    """A finished request, as the request path hands it to the writer."""

    canvas: str
    kind: str  # keys.TRACES or keys.UNMATCHED
    handler: dict[str, str] | None
    started_ns: int
    duration_ns: int
    method: str
    path: str
    query_string: str
    params: dict[str, str]
    raw_headers: Iterable[tuple[bytes, bytes]]
    body: bytes
    body_truncated: bool = False
    status: int | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes = b""
    error: BaseException | ErrorInfo | None = None
    calls: list[list[Any]] | None = None
    calls_truncated: bool = False
    sampled: bool = True
    origin_ns: int = 0  # perf_counter_ns at the start, the zero of call times
    adopted_from: str | None = None
    trace_id: str = ""
    #: The call values (args, kwargs, results) are already tagged JSON (see
    #: :func:`trace_store.writer.wire.pretag`): a trace that could not cross to the writer
    #: process as it was got them that way.
    values_tagged: bool = False
    #: A worker's or a cron's trace (SPEC §15): its whole ``input`` document, and the
    #: value it returned, both already tagged JSON. ``None``: an HTTP request's, whose
    #: input the writer builds from the raw fields above.
    input: dict[str, Any] | None = None
    value: Any = None

    @classmethod
    def of_run(
        cls,
        canvas: str,
        handler: dict[str, str],
        run: Execution,
        *,
        method: str,
        path: str,
        query_string: str,
        params: dict[str, str],
        raw_headers: Iterable[tuple[bytes, bytes]],
        body: bytes,
        sampled: bool = True,
    ) -> PendingTrace:
        """A handler trace: the request's raw material plus what the run produced."""
        return cls(
            canvas=canvas,
            kind=TRACES,
            handler=handler,
            started_ns=run.started_ns,
            origin_ns=run.origin_ns,
            duration_ns=run.duration_ns,
            method=method,
            path=path,
            query_string=query_string,
            params=params,
            raw_headers=raw_headers,
            body=body,
            status=run.status,
            response_headers=run.headers,
            response_body=run.body,
            error=run.error,
            calls=run.calls,
            calls_truncated=run.truncated_calls,
            sampled=sampled,
        )

    def ensure_id(self) -> str:
        """Assign the UUIDv7 trace id from the start time (once)."""
        if not self.trace_id:
            self.trace_id = uuid7(self.started_ns)
        return self.trace_id

    def __reduce__(self) -> tuple[type[PendingTrace], tuple[Any, ...]]:
        # The fields in order, through the plain constructor: the cheapest pickle of a
        # slotted dataclass, and one that names no helper beyond this class (the writer
        # process unpickles only this module's types and builtins).
        return PendingTrace, _pending_fields(self)


_pending_fields: Final = operator.attrgetter(*(f.name for f in fields(PendingTrace)))


def _scrub(value: Any) -> Any:
    if type(value) is str:
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if type(value) is list:
        return [_scrub(item) for item in value]
    if type(value) is tuple:
        return tuple(_scrub(item) for item in value)
    if type(value) is dict:
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, (BaseException, ErrorInfo)):
        info = value if isinstance(value, ErrorInfo) else ErrorInfo.of(value)
        return ErrorInfo(info.type, _scrub(info.message), _scrub(info.traceback))
    return value


def without_surrogates(p: PendingTrace) -> PendingTrace:
    """A copy of ``p`` whose strings (call values, params, input, value) have every lone
    surrogate replaced by U+FFFD, which JSON can carry. Only for the rare trace that
    failed to encode: the request path never pays for the check."""
    return dataclasses.replace(
        p,
        path=_scrub(p.path),
        params=_scrub(p.params),
        calls=None if p.calls is None else _scrub(p.calls),
        input=_scrub(p.input),
        value=_scrub(p.value),
        error=_scrub(p.error),
    )

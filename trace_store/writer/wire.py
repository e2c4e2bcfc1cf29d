"""How finished traces cross from the gateway to the writer process: pickled frames.

A trace frame is a pickle of ``("batch", [PendingTrace, ...])``: the finished traces as
the request path built them (:func:`prepare` makes them safe to cross), nothing else.
The gateway appends it to the trace log (:mod:`trace_store.writer.log`) and the writer
reads it back. Control
messages between the two processes travel on the child's stdin as a 4-byte big-endian
length and a pickle of a message tuple (:func:`frame`). Pickle is the cheapest way to
move live Python values (the recorded call arguments and results) to another process:
the C pickler costs a few microseconds per trace, where tagging them as JSON on the
request side would cost as much as the writer work we move away.

Two things must not cross as they are:

- **Exceptions** hold their traceback frames, which do not pickle. They become
  :class:`~trace_store.record.ErrorInfo` with the traceback already formatted.
- **Values of arbitrary types.** Unpickling an instance imports its class's module in
  the writer process, which could run canvas code there (or fail and lose the batch).
  Only builtin and standard value types cross; a trace holding anything else has its
  call values tagged here with :func:`~trace_store.document.values.to_json`, exactly as the
  writer would have tagged them, and is marked ``values_tagged``.
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass, replace
from types import BuiltinFunctionType, FunctionType
from typing import TYPE_CHECKING, Any, Final

from trace_store.document.values import MAX_DEPTH, to_json
from trace_store.record import C_ARGS, C_ERROR, C_KWARGS, C_RESULT, ErrorInfo, PendingTrace

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trace_store.document.build import TraceLimits
    from trace_store.writer.queue import WriterConfig

HEADER: Final = struct.Struct(">I")

#: Modules whose types (and reconstructors) unpickle without running canvas code.
_SAFE_MODULES: Final = frozenset(
    {"builtins", "datetime", "decimal", "uuid", "copyreg", "collections", "trace_store.record"}
)


@dataclass(frozen=True, slots=True)
class ChildConfig:
    """The first message: what the writer process needs: where to write, and the writer's bounds."""

    store_url: str
    database_url: str | None
    limits: TraceLimits
    writer: WriterConfig
    drain_timeout: float = 10.0
    gc_tuning: bool = True
    #: The trace log the gateway appends to and this process reads.
    log_dir: str = ""


class _UnsafeValue(Exception):
    pass


class _SafePickler(pickle.Pickler):
    """A pickler that refuses objects whose unpickling would import other modules."""

    def reducer_override(self, obj: Any) -> Any:
        # Not called for None, bools, and exact ints, floats, str, bytes, lists, tuples,
        # dicts and sets (the C pickler's fast paths), so the common trace costs nothing.
        if isinstance(obj, (type, FunctionType, BuiltinFunctionType)):
            module = getattr(obj, "__module__", None)
        else:
            module = type(obj).__module__
        if module in _SAFE_MODULES:
            return NotImplemented
        raise _UnsafeValue(module)


def dumps(message: Any) -> bytes:
    """Pickle ``message`` with only safe types in it; raises on anything else."""
    buffer = io.BytesIO()
    _SafePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(message)
    return buffer.getvalue()


def frame(payload: bytes) -> bytes:
    """``payload`` with its length prefix."""
    return HEADER.pack(len(payload)) + payload


def prepare(p: PendingTrace) -> PendingTrace:
    """``p`` made ready to cross: its exceptions reduced to :class:`ErrorInfo` (calls
    mutated), its trace id fixed (a frame read twice after a crash must store the same
    trace), its headers a tuple."""
    p.ensure_id()
    if isinstance(p.error, BaseException):
        p.error = ErrorInfo.of(p.error)
    if p.calls:
        for call in p.calls:
            error = call[C_ERROR]
            if isinstance(error, BaseException):
                call[C_ERROR] = ErrorInfo.of(error)
    if not isinstance(p.raw_headers, tuple):  # aiohttp gives a tuple; anything else is copied
        p.raw_headers = tuple(p.raw_headers)
    return p


#: How deep :func:`pretag` keeps call values. A trace that does not pickle usually
#: nests deeper than pickle recurses (a recursive walk over deep JSON), and every call
#: of the walk holds a subtree of the same value: tagging each to the full depth limit
#: cost ~64 nodes a call (10 ms for 250 calls, holding the GIL the event loop needs).
PRETAG_DEPTH = 8
_PRETAG_START = MAX_DEPTH - PRETAG_DEPTH  # to_json cuts at MAX_DEPTH: start that close


def pretag(p: PendingTrace) -> PendingTrace:
    """A copy of ``p`` with its call values tagged as JSON (to :data:`PRETAG_DEPTH`
    levels), for a trace that cannot be pickled."""
    calls = p.calls
    if not calls:
        return p
    tagged = []
    for call in calls:
        copy = list(call)
        copy[C_ARGS] = [to_json(value, _PRETAG_START) for value in call[C_ARGS]]
        copy[C_KWARGS] = to_json(call[C_KWARGS], _PRETAG_START) if call[C_KWARGS] else {}
        copy[C_RESULT] = to_json(call[C_RESULT], _PRETAG_START)
        tagged.append(copy)
    return replace(p, calls=tagged, values_tagged=True)


def encode_batch_fast(batch: Sequence[PendingTrace]) -> bytes | None:
    """One ``("batch", traces)`` frame, pickled at once (one memo: the handler
    descriptions repeat), or ``None`` when some trace does not pickle as it is."""
    try:
        return dumps(("batch", list(batch)))
    except Exception:
        return None


def encode_traces_alone(batch: Sequence[PendingTrace]) -> tuple[list[bytes], int]:
    """For a batch :func:`encode_batch_fast` could not pickle: one frame per trace, and
    how many traces had to be left out.

    A trace that does not pickle as it is is tagged (:func:`pretag`); one that still
    fails is left out and counted. Each frame is its own pickle call, so no single call
    holds the interpreter for the whole batch; tagging is Python work that grows with
    the values, so callers on an event loop run this in a thread.
    """
    frames: list[bytes] = []
    for p in batch:
        for candidate in (p, pretag(p)):
            try:
                frames.append(dumps(("batch", [candidate])))
            except Exception:
                continue
            break
    return frames, len(batch) - len(frames)


def loads(payload: bytes) -> Any:
    """Unpickle one frame's payload."""
    return pickle.loads(payload)

"""What ``runtime`` hands to ``trace_store``: the call record and the outcomes of runs.

The leaf of the hand-off between the two packages (``runtime`` fills these,
``trace_store`` reads them), so neither needs the other's modules for it.

A **call record** is a flat list, for speed (the recorder appends one per call on the
request's path); its slots are named here, and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

#: A call of a function of the canvas (``@canvas.function``), and of a strata builtin.
USER: Final = "user"
BUILTIN: Final = "builtin"

# Positions in a call record.
C_ID, C_PARENT, C_FUNCTION, C_KIND, C_ARGS, C_KWARGS, C_RESULT, C_ERROR, C_START, C_END = range(10)


@dataclass(slots=True)
class Execution:
    """The outcome of one handler run. ``calls`` is ``None`` when it was not recorded."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    error: BaseException | None
    calls: list[list[Any]] | None
    truncated_calls: bool
    started_ns: int
    origin_ns: int
    duration_ns: int


@dataclass(slots=True)
class FunctionRun:
    """The outcome of one user function run with its nested calls."""

    result: Any
    error: BaseException | None
    calls: list[list[Any]]
    truncated_calls: bool
    origin_ns: int
    duration_ns: int

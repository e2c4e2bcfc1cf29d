"""A traceback as a trace keeps it: bounded in frames, chain and characters.

A user function that recurses until ``RecursionError`` raises through ~1,000 frames,
and the one exception is recorded by every call it passed through. Formatting the full
traceback once per call record held the event loop for tens of seconds (43 s of CPU
for a 3 ms recursion). So a traceback keeps its outermost and innermost frames only,
at most a few chained exceptions, and is cut to a character bound; walking the frame
list is the only work that grows with the depth, and it is a pointer walk.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

#: Frames kept from the outermost end (where the handler is) and from the innermost
#: end (where it failed); the frames between are counted, not shown.
HEAD_FRAMES = 8
TAIL_FRAMES = 24
#: Chained exceptions (``raise ... from``, or raised while handling another) shown.
MAX_CHAIN = 3
#: Characters of one exception's message line, and of the whole formatted text.
MAX_MESSAGE_CHARS = 2_048
MAX_CHARS = 16_384

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def format_bounded(exc: BaseException) -> str:
    """``exc`` formatted like :func:`traceback.format_exception`, within the bounds."""
    chain: list[tuple[BaseException, str]] = []  # innermost first: (exception, separator)
    seen: set[int] = set()
    current: BaseException | None = exc
    separator = ""
    while current is not None and id(current) not in seen and len(chain) < MAX_CHAIN:
        seen.add(id(current))
        chain.append((current, separator))
        if current.__cause__ is not None:
            current, separator = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, separator = current.__context__, _CONTEXT
        else:
            current = None
    parts: list[str] = []
    if current is not None and id(current) not in seen:
        parts.append(f"[{_chain_length(current, seen)} earlier chained exception(s) omitted]\n")
    for link, sep in reversed(chain):
        parts.append(_format_one(link))
        parts.append(sep)
    text = "".join(parts)
    if len(text) > MAX_CHARS:  # keep the end: the innermost failure is what matters
        text = "[cut]\n" + text[-(MAX_CHARS - 6) :]
    return text


def _format_one(exc: BaseException) -> str:
    entries: list[TracebackType] = []
    tb = exc.__traceback__
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    lines: list[str] = []
    if entries:
        lines.append("Traceback (most recent call last):\n")
        if len(entries) > HEAD_FRAMES + TAIL_FRAMES:
            omitted = len(entries) - HEAD_FRAMES - TAIL_FRAMES
            lines.extend(_format_frames(entries[:HEAD_FRAMES]))
            lines.append(f"  [... {omitted} frames omitted ...]\n")
            lines.extend(_format_frames(entries[-TAIL_FRAMES:]))
        else:
            lines.extend(_format_frames(entries))
    lines.append(_message_line(exc))
    return "".join(lines)


def _format_frames(entries: list[TracebackType]) -> list[str]:
    frames = ((t.tb_frame, t.tb_lineno) for t in entries)
    return traceback.StackSummary.extract(frames, limit=None, lookup_lines=True).format()


def message(exc: BaseException) -> str:
    """``str(exc)``, cut to :data:`MAX_MESSAGE_CHARS` (saying so); a ``__str__`` that
    raises gives ``<unprintable error>``."""
    try:
        text = str(exc)
    except Exception:
        return "<unprintable error>"
    if len(text) > MAX_MESSAGE_CHARS:
        return text[:MAX_MESSAGE_CHARS] + f"... [{len(text)} characters]"
    return text


def _message_line(exc: BaseException) -> str:
    message_ = message(exc)
    name = type(exc).__qualname__
    module = type(exc).__module__
    if module not in ("builtins", "__main__"):
        name = f"{module}.{name}"
    return f"{name}: {message_}\n" if message_ else f"{name}\n"


def _chain_length(exc: BaseException, seen: set[int]) -> int:
    count = 0
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and count < 1_000:
        seen.add(id(current))
        count += 1
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return count

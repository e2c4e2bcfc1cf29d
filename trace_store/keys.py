"""Object keys: derived from validated ids only, never from raw user input.

Layout (relative to the store's own prefix)::

    traces/<canvas>/<handler_id>/<trace_id>.json.zst               one trace
    traces/<canvas>/<handler_id>/<trace_id>.<digest>.seg.zst       a segment
    unmatched/<canvas>/<trace_id>.json.zst

The kind comes first so that one lifecycle rule per kind (``traces/``, ``unmatched/``)
covers every canvas; canvas and handler follow so that a prefix listing finds one
handler's objects. Trace ids are UUIDv7, so a listing is in time order.

A segment holds several traces of one handler, one zstd frame each (SPEC §8). It is
named by its newest trace, so that a listing stays in time order and ``--since`` can
skip a segment by its name alone, and by a digest of its frames, so that a batch
formed differently after a crash writes a new object instead of colliding with a
segment of other bytes.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from dataclasses import dataclass

from trace_store.errors import InvalidInput

CANVAS_RE = re.compile(r"[a-z0-9-]{1,63}")
HANDLER_ID_RE = re.compile(r"[a-z0-9_-]{1,64}")
FUNCTION_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,127}")
# A key segment may not be empty, "." or ".." and uses a conservative alphabet.
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")

TRACES = "traces"
UNMATCHED = "unmatched"
SUFFIX = ".json.zst"
SEGMENT_SUFFIX = ".seg.zst"
_DIGEST_RE = re.compile(r"[0-9a-f]{16}")
#: S3 object tags: every trace object is written expirable; pinning swaps the tag set
#: (the bucket's lifecycle rule matches the expirable tag only, lifecycle_policies).
EXPIRABLE_TAG = "strata-expirable"
PINNED_TAG = "strata-pinned"
TAG_TRUE = "true"


def check_canvas(name: str) -> str:
    """Return ``name`` if it is a valid canvas name, else raise :class:`InvalidInput`."""
    if not CANVAS_RE.fullmatch(name):
        raise InvalidInput(f"invalid canvas name {name[:80]!r}: expected [a-z0-9-]{{1,63}}")
    return name


def check_handler_id(handler_id: str) -> str:
    """Return ``handler_id`` if valid, else raise :class:`InvalidInput`."""
    if not HANDLER_ID_RE.fullmatch(handler_id):
        raise InvalidInput(f"invalid handler id {handler_id[:80]!r}: expected [a-z0-9_-]{{1,64}}")
    return handler_id


def check_trace_id(trace_id: str) -> str:
    """Return the canonical form of a UUID trace id, else raise :class:`InvalidInput`."""
    try:
        parsed = uuid.UUID(trace_id)
    except (ValueError, TypeError, AttributeError):
        raise InvalidInput(f"invalid trace id {str(trace_id)[:80]!r}: expected a UUID") from None
    canonical = str(parsed)
    if canonical != trace_id.lower():
        raise InvalidInput(f"invalid trace id {trace_id[:80]!r}: expected a UUID")
    return canonical


def check_key(key: str) -> str:
    """Validate a store-relative key: slash-separated safe segments, no traversal."""
    if not key or len(key) > 1024:
        raise InvalidInput("invalid object key: empty or longer than 1024 characters")
    for segment in key.split("/"):
        if not _SEGMENT_RE.fullmatch(segment) or segment in (".", ".."):
            raise InvalidInput(f"invalid object key {key[:120]!r}")
    return key


def check_prefix(prefix: str) -> str:
    """Validate a listing prefix: a key, optionally ending in ``/``, or empty."""
    if prefix == "":
        return prefix
    check_key(prefix.rstrip("/"))
    return prefix


def trace_key(canvas: str, handler_id: str, trace_id: str) -> str:
    """Key of a handler's base trace object."""
    return (
        "/".join(
            (TRACES, check_canvas(canvas), check_handler_id(handler_id), check_trace_id(trace_id))
        )
        + SUFFIX
    )


def unmatched_key(canvas: str, trace_id: str) -> str:
    """Key of an unmatched (404) request object."""
    return "/".join((UNMATCHED, check_canvas(canvas), check_trace_id(trace_id))) + SUFFIX


def segment_key(canvas: str, handler_id: str, newest_trace_id: str, digest: str) -> str:
    """Key of a segment of a handler's traces (``digest``: 16 hex digits of its frames)."""
    if not _DIGEST_RE.fullmatch(digest):
        raise InvalidInput("invalid segment digest: expected 16 lowercase hex digits")
    trace_id = check_trace_id(newest_trace_id)
    return (
        "/".join(
            (TRACES, check_canvas(canvas), check_handler_id(handler_id), f"{trace_id}.{digest}")
        )
        + SEGMENT_SUFFIX
    )


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """What a key strata writes names. For a segment, ``trace_id`` is its newest trace."""

    kind: str  # TRACES or UNMATCHED
    canvas: str
    handler_id: str | None
    trace_id: str
    segment: bool = False


def parse_key(key: str) -> ParsedKey:
    """The parts of a key strata writes; :class:`InvalidInput` for any other key."""
    parts = key.split("/")
    if len(parts) == 4 and parts[0] == TRACES:
        _, canvas, handler_id, name = parts
        if name.endswith(SEGMENT_SUFFIX):
            trace_id, _, digest = name.removesuffix(SEGMENT_SUFFIX).partition(".")
            with contextlib.suppress(InvalidInput):
                if segment_key(canvas, handler_id, trace_id, digest) == key:
                    return ParsedKey(TRACES, canvas, handler_id, trace_id, segment=True)
        else:
            trace_id = name.removesuffix(SUFFIX)
            with contextlib.suppress(InvalidInput):
                if trace_key(canvas, handler_id, trace_id) == key:
                    return ParsedKey(TRACES, canvas, handler_id, trace_id)
    if len(parts) == 3 and parts[0] == UNMATCHED:
        _, canvas, name = parts
        trace_id = name.removesuffix(SUFFIX)
        with contextlib.suppress(InvalidInput):
            if unmatched_key(canvas, trace_id) == key:
                return ParsedKey(UNMATCHED, canvas, None, trace_id)
    raise InvalidInput(f"not a key strata writes: {key[:200]!r}")

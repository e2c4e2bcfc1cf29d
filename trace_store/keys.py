"""Object keys: derived from validated ids only, never from raw user input.

Layout (relative to the store's own prefix)::

    traces/<canvas>/<handler_id>/<trace_id>.json.zst
    unmatched/<canvas>/<trace_id>.json.zst

The kind comes first so that one lifecycle rule per kind (``traces/``, ``unmatched/``)
covers every canvas; canvas and handler follow so that a prefix listing finds one
handler's objects. Trace ids are UUIDv7, so a listing is in time order.
"""

from __future__ import annotations

import re
import uuid

from trace_store.errors import InvalidInput

CANVAS_RE = re.compile(r"[a-z0-9-]{1,63}")
HANDLER_ID_RE = re.compile(r"[a-z0-9_-]{1,64}")
FUNCTION_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,127}")
# A key segment may not be empty, "." or ".." and uses a conservative alphabet.
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")

TRACES = "traces"
UNMATCHED = "unmatched"
SUFFIX = ".json.zst"
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

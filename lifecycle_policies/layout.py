"""How strata's objects are laid out and marked: the contract between the object-store
backends (which write, tag and lease objects) and the lifecycle rules (which match them).

Keys, relative to the store prefix (see :mod:`trace_store.keys`)::

    traces/<canvas>/<handler_id>/<trace_id>.json.zst            one trace
    traces/<canvas>/<handler_id>/<trace_id>.<digest>.seg.zst    a segment of traces
    unmatched/<canvas>/<trace_id>.json.zst

Rules match the kind's prefix and the mark, never the name, so a segment expires and
is pinned like a single trace (it is pinned while any of its traces is).

S3 marks state with the object's tag set, replaced as a whole on every change: a new
object carries ``strata-expirable=true``; a pinned one carries ``strata-pinned=true``
instead. GCS marks state with ``customTime``, which can only move forward: a new
object gets ``customTime`` = its creation time; a pin is a lease renewed by moving
``customTime`` to "now".
"""

from __future__ import annotations

from dataclasses import dataclass

from trace_store.errors import InvalidInput
from trace_store.keys import TRACES, UNMATCHED

#: Every lifecycle rule strata owns on S3 has an ID starting with this.
RULE_ID_PREFIX = "strata-"


@dataclass(frozen=True, slots=True)
class KeyPrefixes:
    """Absolute key prefixes (bucket-relative) of one store: ``root`` is ``""`` or
    ends with ``/``; ``traces`` and ``unmatched`` end with ``/``."""

    root: str
    traces: str
    unmatched: str

    @property
    def kinds(self) -> tuple[str, str]:
        """The prefixes strata writes objects under, and so the only ones it governs."""
        return (self.traces, self.unmatched)


def key_prefixes(store_prefix: str = "") -> KeyPrefixes:
    """Bucket-relative prefixes for a store whose URL has ``store_prefix``
    (``s3://bucket/myprefix`` -> ``"myprefix"``; surrounding slashes are ignored)."""
    root = store_prefix.strip("/")
    if root:
        for segment in root.split("/"):
            if segment in ("", ".", ".."):
                raise InvalidInput(f"invalid store prefix {store_prefix[:120]!r}")
        root += "/"
    return KeyPrefixes(root=root, traces=f"{root}{TRACES}/", unmatched=f"{root}{UNMATCHED}/")

"""The calls of a ``strata.trace/2`` document: written as arrays, read as Call objects.

A ``/1`` document writes every call as an object with named keys and an ``args_hash``
computed for every call. Most traces are never opened, so ``/2`` does less per trace:
each call is an array whose fields the document names once (``call_fields``), and
``args_hash`` is written for builtin calls only, whose arguments are not stored. The
fields that are mostly null come last, and a row ends after ``duration_us`` when all of
them are (a user call without keyword arguments that returned). In this order a trace
compresses as well as with ``args_hash`` in every row, smaller raw. A
reader derives a user call's hash from its stored (tagged) arguments with the same
canonical encoding the writer would have used (:func:`values.hash_tagged_args`; the
browser's twin is ``gateway/static/argshash.js``, both pinned by the vectors in
``tests/vectors/args_hash/``).

Readers see both formats alike through :func:`call_objects` and :func:`expanded`: the
``/1`` Call objects (``{id, parent, function, kind, args_hash, args?, kwargs?,
result | error, started_us, duration_us}``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from trace_store.document.values import hash_tagged_args
from trace_store.record import BUILTIN

if TYPE_CHECKING:
    from trace_store.types import JSONObject

FORMAT_1: Final = "strata.trace/1"
FORMAT_2: Final = "strata.trace/2"
#: The order of a ``/2`` call array's fields, written into every document as
#: ``call_fields`` (readers go by those names, so fields may be added later).
CALL_FIELDS: Final = (
    "id",
    "parent",
    "function",
    "kind",
    "args",
    "result",
    "started_us",
    "duration_us",
    "kwargs",
    "error",
    "args_hash",
)
#: Fields whose ``null`` in a call array means "absent" in the Call object.
_ABSENT_WHEN_NULL: Final = frozenset({"args", "kwargs", "error", "args_hash"})


def is_compact(doc: JSONObject) -> bool:
    """Whether ``doc``'s calls are ``/2`` arrays."""
    return doc.get("format") == FORMAT_2


def call_objects(doc: JSONObject, *, hashes: bool = True) -> list[JSONObject]:
    """The Call objects of a ``/1`` or ``/2`` document (a ``/1`` one's own list).

    ``hashes=False`` skips deriving user calls' ``args_hash`` (a sha256 each) for a
    reader that needs only names and times. A malformed ``/2`` call (not an array of
    the named fields, or more) is kept as an empty object, so readers skip it as they
    skip a malformed ``/1`` call; the fields a shorter row leaves out are null.
    """
    calls = doc.get("calls")
    if not isinstance(calls, list):
        return []
    if not is_compact(doc):
        return calls
    names = doc.get("call_fields")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        names = list(CALL_FIELDS)
    return [_call_object(names, row, hashes) for row in calls]


def _call_object(names: list[str], row: Any, hashes: bool) -> JSONObject:
    if not isinstance(row, list) or len(row) > len(names):
        return {}
    call: JSONObject = {}
    for name, value in zip(names, row + [None] * (len(names) - len(row)), strict=True):
        if value is None and name in _ABSENT_WHEN_NULL:
            continue
        call[name] = value
    if "error" in call:
        call.pop("result", None)
    if call.get("kwargs") == {}:
        del call["kwargs"]
    if hashes and "args_hash" not in call and call.get("kind") != BUILTIN:
        args, kwargs = call.get("args"), call.get("kwargs")
        if isinstance(args, list) and isinstance(kwargs, dict | None):
            call["args_hash"] = hash_tagged_args(args, kwargs or {})
    return call


def expanded(doc: JSONObject) -> JSONObject:
    """The ``/1`` document a ``/2`` one stands for (a shallow copy: its calls as Call
    objects, every user call's ``args_hash`` derived); a ``/1`` document itself."""
    if not is_compact(doc):
        return doc
    out = {k: v for k, v in doc.items() if k != "call_fields"}
    out["format"] = FORMAT_1
    out["calls"] = call_objects(doc)
    return out

"""The merge fold of SPEC §9: a base trace plus its patches -> the merged view.

:func:`merge` is pure and deterministic: no I/O, no clock, no randomness, and it never
mutates its arguments (the view holds copies, never references into them). The same
fold ships to the browser as ``gateway/static/merge.js``; both are pinned by the JSON
vectors in ``tests/vectors/merge/`` and must agree on every input, including malformed
ones, so each rule below is stated precisely enough to implement twice.

The merged view (``format: "strata.merged/1"``) has a fixed shape; unknown top-level
fields of the base are not carried over::

    {
      "format": "strata.merged/1",
      "trace_id": str, "canvas": str, "handler": {id, kind, method, route},
      "input": {...},                # the base's, unchanged
      "truncated": bool,             # the base's (it describes the base object)
      "limits": {...} | null,        # the base's, null when absent
      "sampled": bool,               # the base's, true when absent
      "adopted_from": str | null,    # the base's, null when absent
      "base_execution": {result, error, calls, duration_ms, started_at},
      "execution": {result, error, calls, duration_ms, started_at,
                    "source": "base" | <patch_id of the rerun>},
      "function_results": {"<function>:<args_hash>": Entry, ...},
      "applied_patches": [<patch_id>, ...],      # fold order
    }

    Entry = {function, kind: "user" | "builtin", args_hash, args?, kwargs?,
             result | error,                     # exactly one of the two keys
             source: "base" | <patch_id>,
             calls?, duration_ms?}               # only for function_run entries

A missing base field reads as ``null`` (``calls`` as ``[]``, ``truncated`` as ``false``,
``sampled`` as ``true``). A ``strata.trace/2`` base's calls are read as Call objects,
each user call's ``args_hash`` derived from its arguments (:mod:`.compact`); the
browser's fold takes the base as ``loadBase`` returns it, its calls already expanded
(``argshash.js``: the hash is asynchronous there).

Rules where SPEC §9 is silent (both implementations follow them):

* Which patches are folded. A patch is folded only if it is an object with
  ``format == "strata.patch/1"``, a string ``patch_id``, a ``trace_id`` equal to the
  base's, an integral ``seq >= 1`` (``2.0`` counts: JSON does not distinguish it from
  ``2``, and the browser cannot), a known ``kind``, and that kind's fields (see below).
  Anything else is skipped silently and does not appear in ``applied_patches``: the
  editor must still show the trace when one patch is odd.
* Order. Patches are folded by ascending ``(seq, patch_id)``; ``patch_id`` only breaks
  ties the database should never produce, so the view never depends on the order of
  the input list. A ``patch_id`` already folded is skipped: the editor receives the
  same patch from the manifest and from the live event stream.
* ``rerun`` needs ``result``, ``error``, ``calls`` (a list), ``duration_ms`` and
  ``started_at``. It replaces the whole execution (``source`` = its patch id) and
  rebuilds ``function_results`` from its calls alone.
* ``function_run`` needs ``function`` and ``args_hash`` (strings), ``args`` and
  ``calls`` (lists), ``duration_ms``, and a ``result`` or an ``error`` key. It replaces
  the entry of its own key only, with ``kind: "user"``, its ``kwargs`` when it has that
  key, and its nested ``calls`` and ``duration_ms`` kept inside the entry. Nested calls
  do not override other entries: they ran inside a one-off run, and letting them (say,
  a ``time.now`` builtin) replace the execution's entries would make
  ``function_results`` disagree with the execution the editor shows next to it.
* Entries built from calls. Every call of the current execution with a string
  ``function`` and ``args_hash`` gives an entry, user functions and builtins alike
  (``kind`` says which; ``args`` and ``kwargs`` only when the call has those keys, so
  builtins have neither). Calls are in start order and the later call with the same
  key wins ("latest known"). An entry keeps the key's first position in the mapping
  when replaced.
* Result or error. An object holds an error when its ``error`` key is present and not
  ``null``; then the entry gets ``error`` and no ``result``. Otherwise it gets
  ``result`` (``null`` when absent).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from trace_store.document.compact import call_objects

if TYPE_CHECKING:
    from collections.abc import Iterable

    from trace_store.types import JSON, JSONObject

__all__ = ["MERGED_FORMAT", "PATCH_FORMAT", "merge"]

MERGED_FORMAT: Final = "strata.merged/1"
PATCH_FORMAT: Final = "strata.patch/1"

_BASE_SOURCE: Final = "base"
_RERUN_FIELDS: Final = ("result", "error", "calls", "duration_ms", "started_at")


def merge(base: JSONObject, patches: list[JSONObject]) -> JSONObject:
    """Fold ``patches`` over the trace document ``base`` and return the merged view.

    The view's shape and every rule of the fold are in this module's docstring.
    Malformed patches, unknown kinds, patches of another trace and repeated patch ids
    are skipped, never fatal. Neither argument is modified and the result shares no
    mutable object with them.
    """
    trace_id = base.get("trace_id")
    base_execution: JSONObject = {
        "result": _clone(base.get("result")),
        "error": _clone(base.get("error")),
        "calls": _clone(call_objects(base)),
        "duration_ms": _clone(base.get("duration_ms")),
        "started_at": _clone(base.get("started_at")),
    }
    execution: JSONObject = {**_clone(base_execution), "source": _BASE_SOURCE}
    function_results = _results_from_calls(execution["calls"], _BASE_SOURCE)
    applied: list[str] = []
    seen: set[str] = set()

    for patch in _fold_order(patches, trace_id):
        patch_id: str = patch["patch_id"]
        if patch_id in seen:
            continue
        kind = patch.get("kind")
        if kind == "rerun" and _is_rerun(patch):
            execution = {field: _clone(patch[field]) for field in _RERUN_FIELDS}
            execution["source"] = patch_id
            function_results = _results_from_calls(execution["calls"], patch_id)
        elif kind == "function_run" and _is_function_run(patch):
            entry: JSONObject = {
                "function": patch["function"],
                "kind": "user",
                "args_hash": patch["args_hash"],
                **_arguments(patch),
                **_outcome(patch),
                "source": patch_id,
                "calls": _clone(patch["calls"]),
                "duration_ms": _clone(patch["duration_ms"]),
            }
            function_results[_key(patch["function"], patch["args_hash"])] = entry
        else:
            continue
        seen.add(patch_id)
        applied.append(patch_id)

    return {
        "format": MERGED_FORMAT,
        "trace_id": _clone(trace_id),
        "canvas": _clone(base.get("canvas")),
        "handler": _clone(base.get("handler")),
        "input": _clone(base.get("input")),
        "truncated": _clone(base.get("truncated", False)),
        "limits": _clone(base.get("limits")),
        "sampled": _clone(base.get("sampled", True)),
        "adopted_from": _clone(base.get("adopted_from")),
        "base_execution": base_execution,
        "execution": execution,
        "function_results": function_results,
        "applied_patches": applied,
    }


def _fold_order(patches: Iterable[JSON], trace_id: JSON) -> list[JSONObject]:
    eligible = [
        patch
        for patch in patches
        if isinstance(patch, dict)
        and patch.get("format") == PATCH_FORMAT
        and isinstance(patch.get("patch_id"), str)
        and isinstance(trace_id, str)
        and patch.get("trace_id") == trace_id
        and _is_seq(patch.get("seq"))
    ]
    # Stable sort: exact (seq, patch_id) twins keep their input order, and the second
    # one is then skipped as a repeated patch id.
    return sorted(eligible, key=lambda patch: (patch["seq"], patch["patch_id"]))


def _is_seq(value: JSON) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 1
    return isinstance(value, float) and value.is_integer() and value >= 1


def _is_rerun(patch: JSONObject) -> bool:
    return all(field in patch for field in _RERUN_FIELDS) and isinstance(patch["calls"], list)


def _is_function_run(patch: JSONObject) -> bool:
    return (
        isinstance(patch.get("function"), str)
        and isinstance(patch.get("args_hash"), str)
        and isinstance(patch.get("args"), list)
        and isinstance(patch.get("calls"), list)
        and "duration_ms" in patch
        and ("result" in patch or "error" in patch)
    )


def _results_from_calls(calls: list[JSON], source: str) -> JSONObject:
    results: JSONObject = {}
    for call in calls:
        if not isinstance(call, dict):
            continue
        function, args_hash = call.get("function"), call.get("args_hash")
        if not isinstance(function, str) or not isinstance(args_hash, str):
            continue
        entry: JSONObject = {
            "function": function,
            "kind": _clone(call.get("kind")),
            "args_hash": args_hash,
        }
        entry.update(_arguments(call))
        entry.update(_outcome(call))
        entry["source"] = source
        results[_key(function, args_hash)] = entry
    return results


def _arguments(record: JSONObject) -> JSONObject:
    return {name: _clone(record[name]) for name in ("args", "kwargs") if name in record}


def _outcome(record: JSONObject) -> JSONObject:
    error = record.get("error")
    if error is not None:
        return {"error": _clone(error)}
    return {"result": _clone(record.get("result"))}


def _key(function: str, args_hash: str) -> str:
    return f"{function}:{args_hash}"


def _clone(value: JSON) -> JSON:
    # Faster than copy.deepcopy on decoded JSON, which only holds dicts, lists and
    # immutable scalars.
    if isinstance(value, dict):
        return {key: _clone(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clone(item) for item in value]
    return value

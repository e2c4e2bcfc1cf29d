"""Build the ``strata.trace/2`` document from what the request path captured.

The request path hands over raw material only (header bytes, the query string, call
records with live Python values). Everything costly (decoding, tagging, hashing,
redaction, limits) happens here, in the writer, after the response has gone out.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

from trace_store.document import redaction
from trace_store.document.compact import CALL_FIELDS, FORMAT_2
from trace_store.document.redaction import REDACTED
from trace_store.document.values import (
    SAFE_INT,
    exact_args,
    exact_json,
    hash_tagged_args,
    tag_call,
    to_json,
)
from trace_store.record import BUILTIN, ErrorInfo
from trace_store.timestamps import rfc3339

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from trace_store.record import PendingTrace
    from trace_store.types import JSONObject

FORMAT: Final = FORMAT_2
_CALL_FIELDS: Final = list(CALL_FIELDS)
DEFAULT_REDACT_HEADERS: Final = redaction.DEFAULT_HEADERS
DEFAULT_REDACT_FIELDS: Final = redaction.DEFAULT_FIELDS


@dataclass(frozen=True, slots=True)
class TraceLimits:
    """What a trace keeps: body bytes, call count, and which secrets it redacts (header
    values by header name; query and body values by field name; lower-case names)."""

    max_body_bytes: int = 1024 * 1024
    max_calls: int = 10_000
    redact_headers: frozenset[str] = DEFAULT_REDACT_HEADERS
    redact_fields: frozenset[str] = DEFAULT_REDACT_FIELDS


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def body_doc(data: bytes, limit: int, already_truncated: bool = False) -> tuple[JSONObject, bool]:
    """A Body object; returns it and whether the limit cut it."""
    cut = len(data) > limit
    kept = data[:limit] if cut else data
    try:
        text = kept.decode("utf-8")
        encoding, payload = "utf-8", text
    except UnicodeDecodeError:
        encoding, payload = "base64", base64.b64encode(kept).decode("ascii")
    truncated = cut or already_truncated
    return {"encoding": encoding, "data": payload, "bytes": len(data), "truncated": truncated}, cut


def headers_doc(pairs: Iterable[tuple[str, str]], redact: frozenset[str]) -> list[list[str]]:
    """``[[name, value], ...]`` with secret values redacted (names are kept)."""
    return [[name, REDACTED if name.lower() in redact else value] for name, value in pairs]


def content_type(pairs: Iterable[Sequence[str]]) -> str | None:
    """The ``Content-Type`` value among header ``pairs``, if any."""
    for name, value in pairs:
        if name.lower() == "content-type":
            return value
    return None


def redacted_body(data: bytes, headers: Iterable[Sequence[str]], limits: TraceLimits) -> bytes:
    """``data`` with secret fields redacted, as its headers' ``Content-Type`` reads it."""
    if not data or not limits.redact_fields:
        return data
    kind = redaction.body_kind(content_type(headers))
    return redaction.redact_body(data, kind, limits.redact_fields)


def query_doc(query_string: str) -> dict[str, list[str]]:
    """``{name: [value, ...]}`` of a query string, as ``parse_qsl`` reads it."""
    query: dict[str, list[str]] = {}
    if "%" in query_string or "+" in query_string:
        pairs = parse_qsl(query_string, keep_blank_values=True)
    else:  # nothing to unquote: the split parse_qsl would do, at a third of its cost
        pairs = [part.partition("=")[::2] for part in query_string.split("&") if part]
    for key, value in pairs:
        query.setdefault(key, []).append(value)
    return query


def error_doc(exc: BaseException | ErrorInfo) -> JSONObject:
    """``{type, message, traceback}`` of an exception (or of its :class:`ErrorInfo`)."""
    info = exc if isinstance(exc, ErrorInfo) else ErrorInfo.of(exc)
    return {"type": info.type, "message": info.message, "traceback": info.traceback}


def compact_calls(
    calls: list[list[Any]], origin_ns: int, values_tagged: bool = False
) -> list[list[Any]]:
    """The ``/2`` call arrays (fields in :data:`CALL_FIELDS` order, ending after the last
    one that is not null, ``duration_us`` at least) of a recorded call list, times relative
    to ``origin_ns``: one pass, no per-call object.

    A user call's ``args_hash`` is left for readers to derive; a builtin's is written,
    because its arguments are not stored. Values JSON already says exactly pass as they
    are (``args`` may stay a tuple: orjson writes it as the array it stands for); the
    rest are tagged. With ``values_tagged`` they are tagged JSON already.
    """
    out: list[list[Any]] = []
    append = out.append
    safe = SAFE_INT
    for cid, parent, function, kind, args, kwargs, result, error, start, end in calls:
        args_hash = None
        if kind == BUILTIN:
            if values_tagged:
                args_hash = hash_tagged_args(args, kwargs)
            else:
                args_hash = tag_call(args, kwargs)[2]
            args = kwargs = None
        elif values_tagged:
            kwargs = kwargs or None
        elif kwargs:
            args, kwargs = exact_args(args), exact_json(kwargs)
        else:
            kwargs = None
            # The common arguments (strings, small ints) checked inline: a call per
            # value would cost more than the rest of the call's encoding.
            for arg in args:
                kind_of = type(arg)
                if kind_of is str or (kind_of is int and -safe <= arg <= safe):
                    continue
                args = exact_args(args)
                break
        if error is not None:
            error = error_doc(error)
            result = None
        elif not values_tagged:
            kind_of = type(result)
            if not (kind_of is str or (kind_of is int and -safe <= result <= safe)):
                result = exact_json(result)
        started = (start - origin_ns) // 1000
        if started < 0:
            started = 0
        duration = ((end or start) - start) // 1000
        if kwargs is None and error is None and args_hash is None:  # the common call
            append([cid, parent, function, kind, args, result, started, duration])
        else:
            row = [cid, parent, function, kind, args, result, started, duration, kwargs, error]
            if args_hash is not None:
                row.append(args_hash)
            append(row)
    return out


def calls_doc(
    calls: list[list[Any]], origin_ns: int, values_tagged: bool = False
) -> list[JSONObject]:
    """The ``/1`` Call objects of a recorded call list, times relative to ``origin_ns``:
    what patches carry and what a replay compares with a trace's calls.

    With ``values_tagged`` the args, kwargs and results are already tagged JSON.
    """
    out: list[JSONObject] = []
    append = out.append
    for cid, parent, function, kind, args, kwargs, result, error, start, end in calls:
        if values_tagged:
            tagged_args, tagged_kwargs = args, kwargs
            args_hash = hash_tagged_args(args, kwargs)
        else:
            tagged_args, tagged_kwargs, args_hash = tag_call(args, kwargs)
        call: JSONObject = {
            "id": cid,
            "parent": parent,
            "function": function,
            "kind": kind,
            "args_hash": args_hash,
        }
        if kind != BUILTIN:
            call["args"] = tagged_args
            if tagged_kwargs:
                call["kwargs"] = tagged_kwargs
        if error is not None:
            call["error"] = error_doc(error)
        else:
            call["result"] = result if values_tagged else to_json(result)
        if not end:
            end = start
        started = (start - origin_ns) // 1000
        call["started_us"] = started if started > 0 else 0
        call["duration_us"] = (end - start) // 1000
        append(call)
    return out


def build_trace(p: PendingTrace, limits: TraceLimits) -> JSONObject:
    """The trace document for ``p``."""
    hit: list[str] = []
    if p.input is not None:  # a worker's or a cron's: input and value came tagged
        doc_input = p.input
        result = None if p.error is not None else {"value": p.value}
    else:
        doc_input, result = _http_parts(p, limits, hit)
    calls = compact_calls(p.calls, p.origin_ns, p.values_tagged) if p.calls else []
    if p.calls_truncated:
        hit.append("calls")
    doc: JSONObject = {
        "format": FORMAT,
        "call_fields": _CALL_FIELDS,
        "trace_id": p.ensure_id(),
        "canvas": p.canvas,
        "handler": p.handler,
        "started_at": rfc3339(p.started_ns),
        "duration_ms": round(p.duration_ns / 1e6, 3),
        "input": doc_input,
        "result": result,
        "error": None if p.error is None else error_doc(p.error),
        "calls": calls,
        "truncated": bool(hit),
        "limits": {
            "max_body_bytes": limits.max_body_bytes,
            "max_calls": limits.max_calls,
            "hit": hit,
        },
        "sampled": p.sampled,
    }
    if p.adopted_from is not None:
        doc["adopted_from"] = p.adopted_from
    return doc


def _http_parts(
    p: PendingTrace, limits: TraceLimits, hit: list[str]
) -> tuple[JSONObject, JSONObject | None]:
    """An HTTP trace's ``input`` and ``result`` from the request's raw material."""
    redact = limits.redact_headers
    headers = [[_text(k), _text(v)] for k, v in p.raw_headers]
    body = redacted_body(p.body, headers, limits)  # by the Content-Type as sent
    for pair in headers:  # then redacted in place: the pairs are the document's
        if pair[0].lower() in redact:
            pair[1] = REDACTED
    req_body, cut = body_doc(body, limits.max_body_bytes, p.body_truncated)
    if cut or p.body_truncated:
        hit.append("request_body")
    query = query_doc(p.query_string)
    if query and limits.redact_fields:
        redaction.redact_query(query, limits.redact_fields)
    result: JSONObject | None = None
    if p.status is not None:
        response_body = redacted_body(p.response_body, p.response_headers, limits)
        resp_body, cut = body_doc(response_body, limits.max_body_bytes)
        if cut:
            hit.append("response_body")
        result = {
            "status": p.status,
            "headers": headers_doc(p.response_headers, redact),
            "body": resp_body,
        }
    doc_input: JSONObject = {
        "kind": "http",
        "method": p.method,
        "path": p.path,
        "query": query,
        "params": p.params,
        "headers": headers,
        "body": req_body,
    }
    return doc_input, result

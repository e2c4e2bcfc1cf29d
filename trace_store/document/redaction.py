"""Secrets out of traces: header values, and fields by name in query strings and bodies.

A trace is read by developers, kept for days and downloaded from a bucket, so what a
grand-user sends as a credential must not be stored. Three places carry them:

- **headers** by name (``authorization``, ``cookie``, ``x-api-key``, ...);
- **query parameters** by name (``?api_key=...``);
- **fields of a JSON or form body** by name at any depth (``{"user": {"password": ...}}``),
  request and response alike (a login answer carries an ``access_token``).

The value is replaced by ``[redacted]``; names and structure stay, so a developer sees
that the field was there. A body is only re-encoded when something was redacted, so an
innocent body keeps its exact bytes. A JSON body that does not parse but names a secret
field (or nests deeper than orjson writes) has the string, number and literal values
after such names replaced textually. A re-encoded body keeps integers beyond 64 bits
as floats (orjson reads them so). Redaction
runs in the writer on the whole body, before the size limit cuts it. The match is on
the lower-cased name, exactly.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

import orjson

REDACTED: Final = "[redacted]"
DEFAULT_HEADERS: Final = frozenset(
    {
        "authorization",
        "cookie",
        "set-cookie",
        "proxy-authorization",
        "x-api-key",
        "x-auth-token",
    }
)
DEFAULT_FIELDS: Final = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "access_token",
        "refresh_token",
        "client_secret",
    }
)

_JSON = "json"
_FORM = "form"


def body_kind(content_type: str | None) -> str | None:
    """``"json"``, ``"form"`` or ``None`` for a ``Content-Type`` value."""
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        return _FORM
    if media == "application/json" or media.endswith("+json"):
        return _JSON
    return None


def redact_query(query: dict[str, list[str]], fields: frozenset[str]) -> None:
    """Replace, in place, the values of query parameters named in ``fields``."""
    for key, values in query.items():
        if key.lower() in fields:
            query[key] = [REDACTED] * len(values)


def redact_body(data: bytes, kind: str | None, fields: frozenset[str]) -> bytes:
    """``data`` with the values of fields named in ``fields`` redacted (JSON or form)."""
    if kind is None or not data or not fields or not _mentions(data, fields):
        return data
    if kind == _FORM:
        return _redact_form(data, fields)
    try:
        value = orjson.loads(data)
        return orjson.dumps(value) if _redact_value(value, fields) else data
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        # Not JSON after all, or nested deeper than orjson writes (254 levels).
        return _redact_json_text(data, fields)


def _mentions(data: bytes, fields: frozenset[str]) -> bool:
    # A cheap filter: most bodies name no secret field, and are left untouched.
    return _any_name(fields).search(data.lower()) is not None


@functools.cache
def _any_name(fields: frozenset[str]) -> re.Pattern[bytes]:
    # One search for all names (the writer runs it on every body): a few settings only.
    return re.compile(b"|".join(re.escape(name.encode()) for name in sorted(fields)))


def _redact_form(data: bytes, fields: frozenset[str]) -> bytes:
    try:
        pairs = parse_qsl(data.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return _redact_form_bytes(data, fields)
    if not any(key.lower() in fields for key, _ in pairs):
        return data
    return urlencode([(k, REDACTED if k.lower() in fields else v) for k, v in pairs]).encode()


def _redact_form_bytes(data: bytes, fields: frozenset[str]) -> bytes:
    parts = []
    for part in data.split(b"&"):
        key, sep, _ = part.partition(b"=")
        if key.decode("latin-1").lower() in fields:
            part = key + sep + b"%5Bredacted%5D"
        parts.append(part)
    return b"&".join(parts)


def _redact_value(root: Any, fields: frozenset[str]) -> bool:
    """Redact in place, iteratively (no recursion limit for deep documents)."""
    changed = False
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key.lower() in fields:
                    node[key] = REDACTED
                    changed = True
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(item for item in node if isinstance(item, dict | list))
    return changed


_STRING_OR_NUMBER = rb'(?:"(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|true|false|null)'


def _redact_json_text(data: bytes, fields: frozenset[str]) -> bytes:
    names = b"|".join(re.escape(name.encode()) for name in sorted(fields))
    pattern = re.compile(rb'("(?:' + names + rb')"\s*:\s*)' + _STRING_OR_NUMBER, re.IGNORECASE)
    return pattern.sub(rb'\1"[redacted]"', data)

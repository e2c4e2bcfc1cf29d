"""Shared type aliases."""

from __future__ import annotations

from typing import Any, TypeAlias

#: A value that orjson can encode as-is (after tagging, see :mod:`trace_store.document.values`).
JSON: TypeAlias = Any
#: A JSON object, as decoded from a trace or patch document.
JSONObject: TypeAlias = dict[str, Any]

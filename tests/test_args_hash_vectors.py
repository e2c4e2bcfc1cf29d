"""The shared args-hash vectors (tests/vectors/args_hash/) against the Python reference.

A ``strata.trace/2`` reader derives a user call's ``args_hash`` from its stored tagged
arguments with :func:`hash_tagged_args`; the browser's twin, gateway/static/argshash.js,
is held to the same vectors by tests/js/argshash.test.mjs. Each vector is read with
``orjson.loads``, as a reader reads a stored document. Regenerate the files with
tests/vectors/args_hash/make_vectors.py.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest

from trace_store.document.values import hash_tagged_args

VECTOR_DIR = Path(__file__).resolve().parent / "vectors" / "args_hash"
VECTORS: list[dict[str, Any]] = orjson.loads((VECTOR_DIR / "vectors.json").read_bytes())
FLOATS: list[list[str]] = orjson.loads((VECTOR_DIR / "floats.json").read_bytes())


def test_the_vector_sets_are_present() -> None:
    assert len(VECTORS) >= 250
    names = [v["name"] for v in VECTORS]
    assert len(set(names)) == len(names), "vector names repeat"
    assert all(set(v) == {"name", "args", "kwargs", "args_hash"} for v in VECTORS)
    assert 8000 <= len(FLOATS) <= 25000


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_hash_from_the_stored_json(vector: dict[str, Any]) -> None:
    assert isinstance(vector["args"], list)
    assert isinstance(vector["kwargs"], dict)
    assert hash_tagged_args(vector["args"], vector["kwargs"]) == vector["args_hash"]


def test_orjson_float_text() -> None:
    wrong = []
    for hex_bits, text in FLOATS:
        (value,) = struct.unpack(">d", bytes.fromhex(hex_bits))
        assert math.isfinite(value), hex_bits
        if orjson.dumps(value).decode() != text:
            wrong.append((hex_bits, text, orjson.dumps(value).decode()))
    assert wrong[:20] == [], f"{len(wrong)} floats differ"


def test_float_text_round_trips() -> None:
    # The text alone pins the double: reading it back gives the same 8 bytes.
    for hex_bits, text in FLOATS:
        assert struct.pack(">d", float(text)).hex() == hex_bits, text

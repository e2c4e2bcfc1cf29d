"""Write the shared args-hash vectors, ``vectors.json`` and ``floats.json``.

Run by hand from the repository root after a change to the hash or the tagging (and
bump ``ARGS_HASH_VERSION`` if old hashes change)::

    .venv/bin/python tests/vectors/args_hash/make_vectors.py

The output is deterministic (seeded), so an unchanged encoding rewrites identical files.

``vectors.json`` is real writer output: live Python values tagged by
``trace_store.document.values.tag_call``, written with orjson as a trace stores them,
and the hash the writer computed. Before writing, each vector is checked to hash the
same when read back from its JSON (what a ``strata.trace/2`` reader does) and to be
stored the same by the ``/2`` writer's ``exact_args`` and ``exact_json``.

``floats.json`` carries doubles as the big-endian hex of their 8 bytes with orjson's
text for each: the format ``gateway/static/argshash.js`` must reproduce.

Checked by ``tests/test_args_hash_vectors.py`` (Python) and
``tests/js/argshash.test.mjs`` (browser twin).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import math
import random
import string
import struct
import uuid
from pathlib import Path
from typing import Any

import orjson

from trace_store.document.values import (
    args_hash,
    exact_args,
    exact_json,
    hash_tagged_args,
    tag_call,
)

HERE = Path(__file__).resolve().parent
SEED = 20240701
RANDOM_CASES = 200
RANDOM_FLOATS = 2500  # of each random kind: bit patterns and decimal magnitudes


class Opaque:
    """An object with no JSON form: recorded as its repr."""

    def __repr__(self) -> str:
        return "Opaque(id=7)"


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Colour(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Name(str):
    pass


class Count(int):
    pass


class Ratio(float):
    pass


class Items(list[Any]):
    pass


class Mapping(dict[str, Any]):
    pass


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


CONTROLS = "".join(chr(i) for i in range(0x20))
TZ = dt.timezone(dt.timedelta(hours=5, minutes=30))
FLOATS = {
    "0.1": 0.1,
    "1e16": 1e16,
    "1e15": 1e15,
    "1.5e-7": 1.5e-7,
    "1e-5": 1e-5,
    "1e-6": 1e-6,
    "1e-7": 1e-7,
    "5e-324": 5e-324,
    "max": 1.7976931348623157e308,
    "2.0-integral": 2.0,
    "minus-zero": -0.0,
    "2**53": 2.0**53,
    "minus-2**53": -(2.0**53),
    "2**53-1-integral": 2.0**53 - 1,
    "subnormal-2.5e-320": 2.5e-320,
    "min-normal": 2.2250738585072014e-308,
    "below-1e-5": math.nextafter(1e-5, 0),
    "below-1e16": math.nextafter(1e16, 0),
    "1e21": 1e21,
    "1e22": 1e22,
    "1.2345678901234568e20": 1.2345678901234568e20,
    "0.00012345": 0.00012345,
    "negative": -123.456,
    "half": 0.5,
    "1e300": 1e300,
}

CASES: list[tuple[str, tuple[Any, ...], dict[str, Any] | None]] = [
    ("empty", (), None),
    ("empty-kwargs-dict", (), {}),
    ("plain-scalars", (1, -7, 0, "x", "", None, True, False), None),
    ("safe-int-bounds", (2**53 - 1, -(2**53 - 1)), None),
    ("big-ints-tagged", (2**53, -(2**53), 2**60, -(2**70), 10**30), None),
    ("kwargs-only", (), {"a": 1, "b": "two"}),
    ("kwargs-sorted", (), {"zeta": 1, "alpha": 2, "mid": 3, "Alpha": 4, "_": 5}),
    ("args-and-kwargs", ("path", 3), {"timeout": 2.5, "retries": 3, "verbose": True}),
    ("nested-lists-dicts", ([1, [2, [3, {"a": [4, {"b": None}]}]]], {}), {"k": {"j": {"i": []}}}),
    (
        "unicode-keys-code-point-order",
        (
            {
                "\uffff": 1,
                "\U0001f600": 2,
                "a": 3,
                "é": 4,
                "": 5,
                "\ud7ff": 6,
                "\ue000": 7,
                "Z": 8,
                "\U00010000": 9,
                "\U0010ffff": 10,
                "aa": 11,
                "a\U0001f600": 12,
                "a\uffff": 13,
            },
        ),
        {"\U0001f600": "astral", "\uffff": "bmp", "\uff61": "halfwidth"},
    ),
    ("string-controls", (CONTROLS,), {"controls": CONTROLS}),
    ("string-quotes-backslashes", ('"', "\\", '\\"', "a/b", "'", '{"x": 1}'), None),
    (
        "string-specials",
        ("\u007f", "\u2028", "\u2029", "\ufeff", "\U0001f600", "é", "\u00a0", "\U0010ffff"),
        None,
    ),
    ("string-mixed", ('tab\there\nnew\r\x00nul\x1f\u2028😀"q\\', "ünïcødé 日本語"), None),
    ("string-keys-with-escapes", ({"\n": 1, '"': 2, "\\": 3, "\x00": 4, "\x7f": 5},), None),
    *[(f"float-{name}", (value,), None) for name, value in FLOATS.items()],
    ("floats-together", tuple(FLOATS.values()), None),
    ("floats-in-kwargs", (), {name: value for name, value in FLOATS.items()}),
    (
        "integral-floats-nested",
        ([2.0, {"a": 3.0, "b": [4.0, -0.0]}, (5.0,), {6.0}, {7.0: 8.0}],),
        {"n": 1.0},
    ),
    ("integral-float-like-int", (2.0, 2, [3.0, 3]), None),
    ("non-finite-floats", (math.nan, math.inf, -math.inf), {"x": [math.nan, -math.inf]}),
    ("bytes", (b"", b"\x00\xff\x10", bytearray(b"abc"), memoryview(b"mv")), None),
    (
        "datetimes",
        (
            dt.datetime(2024, 7, 1, 12, 0, 0, 123456, tzinfo=TZ),
            dt.datetime(2024, 7, 1, 12, 0, tzinfo=dt.UTC),
            dt.datetime(1999, 12, 31, 23, 59, 59),
        ),
        None,
    ),
    ("date", (dt.date(2024, 2, 29),), None),
    ("times", (dt.time(23, 59, 59, 999999), dt.time(1, 2, tzinfo=TZ)), None),
    (
        "timedeltas",
        (dt.timedelta(0), dt.timedelta(days=-1, seconds=5), dt.timedelta(days=999999999)),
        None,
    ),
    (
        "decimals",
        (
            decimal.Decimal("1.10"),
            decimal.Decimal("-0"),
            decimal.Decimal("NaN"),
            decimal.Decimal("1E+3"),
            decimal.Decimal("3.14159265358979323846264338327950288"),
        ),
        None,
    ),
    ("uuid", (uuid.UUID("0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b"),), None),
    ("tuples", ((), (1,), (1, (2, (3,))), ("a", None, 2.5)), None),
    ("sets", ({3, 1, 2}, set(), frozenset({"b", "a"}), frozenset()), None),
    ("set-mixed", ({1, "a", (1, 2), 2.5, None, b"x", 10, 9},), None),
    ("set-with-minus-zero", ({-0.0, -1},), None),
    ("set-of-integral-floats", ({1.0, 10, 2.0, 100},), None),
    (
        "dict-non-str-keys",
        ({1: "a", (1, 2): "b", None: "c", 2.5: "d", False: "e", b"k": "f"},),
        None,
    ),
    ("dict-integral-float-key", ({2.0: 3.0, "s": 1},), None),
    ("dict-with-strata-key", ({"$strata": "float", "v": "11.0"}, {"$strata": 1}), None),
    ("kwargs-with-strata-key", (), {"$strata": "int", "v": "1"}),
    (
        "dict-proto-keys",
        ({"__proto__": {"a": 1}, "constructor": 2, "toString": 3, "hasOwnProperty": 4},),
        {"__proto__": [1]},
    ),
    ("dict-integer-like-keys", ({"10": 1, "2": 2, "1": 3, "01": 4, "-1": 5},), None),
    ("object-repr", (Opaque(),), None),
    ("broken-repr", (BrokenRepr(),), None),
    ("enum-and-dataclass", (Colour.RED, Level.HIGH, Point(1.0, 2.5)), None),
    ("builtin-subclasses", (Name("n"), Count(5), Ratio(2.0), Items([1.0]), Mapping(a=1)), None),
    ("deep-nesting", (nested(20),), {"deep": nested(30)}),
    ("nesting-cut-at-64", (nested(70),), None),
    ("long-string", ("x" * 5000,), None),
]


def random_value(rng: random.Random, depth: int) -> Any:
    kinds = ["int", "str", "float", "none", "bool", "special"]
    if depth < 4:
        kinds += ["list", "dict", "tuple", "set"] * 2
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.choice(
            [rng.randint(-1000, 1000), rng.randint(-(2**63), 2**63), 2**53 - rng.randint(-2, 2)]
        )
    if kind == "str":
        return random_text(rng)
    if kind == "float":
        return random_float(rng)
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "special":
        return rng.choice(
            [
                math.nan,
                math.inf,
                -math.inf,
                bytes(rng.randbytes(rng.randint(0, 6))),
                dt.datetime(2000, 1, 1, tzinfo=TZ) + dt.timedelta(seconds=rng.randint(0, 10**9)),
                dt.date(2000, 1, 1) + dt.timedelta(days=rng.randint(0, 20000)),
                dt.time(rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)),
                dt.timedelta(microseconds=rng.randint(-(10**12), 10**12)),
                decimal.Decimal(rng.randint(-(10**9), 10**9)).scaleb(rng.randint(-8, 8)),
                uuid.UUID(int=rng.getrandbits(128)),
                Opaque(),
                Colour.RED,
            ]
        )
    size = rng.randint(0, 4)
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(size)]
    if kind == "tuple":
        return tuple(random_value(rng, depth + 1) for _ in range(size))
    if kind == "set":
        return {
            rng.choice([random_text(rng), random_float(rng), rng.randint(-9, 9)])
            for _ in range(size)
        }
    if rng.random() < 0.2:  # a dict that must be tagged
        keys = [rng.randint(-5, 5), random_float(rng), None, (1, "t"), "$strata", random_text(rng)]
        return {rng.choice(keys): random_value(rng, depth + 1) for _ in range(size)}
    return {random_text(rng): random_value(rng, depth + 1) for _ in range(size)}


ALPHABET = (
    string.ascii_letters
    + string.digits
    + CONTROLS
    + '"\\/ \x7f\u2028\u2029éß日\uffff\ue000\ud7ff'
    + "\U0001f600\U00010000\U0010ffff"
)


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 8)))


def random_float(rng: random.Random) -> float:
    choice = rng.random()
    if choice < 0.3:
        return float(rng.randint(-(2**60), 2**60))  # integral, often beyond 2**53
    if choice < 0.5:
        return rng.choice(list(FLOATS.values()))
    if choice < 0.8:
        return decimal_magnitude(rng)
    return bit_pattern(rng)


def decimal_magnitude(rng: random.Random) -> float:
    """A float of 1 to 17 random digits times a random power of ten (subnormals too)."""
    while True:
        digits = rng.randint(1, 17)
        mantissa = rng.randint(10 ** (digits - 1), 10**digits - 1)
        value = float(f"{rng.choice('-+')}{mantissa}e{rng.randint(-340, 310)}")
        if math.isfinite(value) and value != 0:
            return value


def bit_pattern(rng: random.Random) -> float:
    while True:
        value: float = struct.unpack(">d", rng.randbytes(8))[0]
        if math.isfinite(value):
            return value


def vector(name: str, args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> dict[str, Any]:
    tagged_args, tagged_kwargs, expected = tag_call(args, kwargs)
    assert args_hash(args, kwargs) == expected, name
    stored = orjson.loads(orjson.dumps([tagged_args, tagged_kwargs]))
    # What a /2 reader does: derive the hash from the stored JSON.
    assert hash_tagged_args(stored[0], stored[1]) == expected, f"{name}: not reproducible"
    # The /2 writer stores exact_args(args) and exact_json(kwargs): the same JSON.
    assert orjson.dumps(exact_args(args)) == orjson.dumps(tagged_args), name
    if kwargs:
        assert orjson.dumps(exact_json(kwargs)) == orjson.dumps(tagged_kwargs), name
    return {"name": name, "args": stored[0], "kwargs": stored[1], "args_hash": expected}


def make_vectors() -> list[dict[str, Any]]:
    out = [vector(name, args, kwargs) for name, args, kwargs in CASES]
    rng = random.Random(SEED)
    for i in range(RANDOM_CASES):
        args = tuple(random_value(rng, 1) for _ in range(rng.randint(0, 4)))
        kwargs = None
        if rng.random() < 0.6:
            kwargs = {
                random_text(rng) or "k": random_value(rng, 1) for _ in range(rng.randint(0, 3))
            }
        out.append(vector(f"random-{i:03d}", args, kwargs))
    names = [v["name"] for v in out]
    assert len(set(names)) == len(names), "vector names repeat"
    return out


def make_floats() -> list[list[str]]:
    """[hex of the double's 8 bytes (big-endian), orjson's text] for about 20,000 doubles."""
    values: list[float] = [0.0, -0.0, 5e-324, -5e-324, 1.7976931348623157e308]
    for exponent in range(-324, 309):  # powers of ten and their neighbours
        power = float(f"1e{exponent}")
        values += [power, math.nextafter(power, 0), math.nextafter(power, math.inf)]
    for exponent in range(-1074, 1024):  # powers of two: Ryu's asymmetric boundaries
        values.append(math.ldexp(1.0, exponent))
    for n in range(2**53 - 3, 2**53 + 4):  # around the safe-integer bound
        values += [float(n), -float(n)]
    rng = random.Random(SEED)
    for _ in range(RANDOM_FLOATS):
        values += [bit_pattern(rng), decimal_magnitude(rng)]
    seen: set[bytes] = set()
    out = []
    for value in values:
        packed = struct.pack(">d", value)
        if math.isfinite(value) and packed not in seen:
            seen.add(packed)
            out.append([packed.hex(), orjson.dumps(value).decode()])
    return out


def main() -> None:
    vectors = make_vectors()
    (HERE / "vectors.json").write_bytes(orjson.dumps(vectors, option=orjson.OPT_INDENT_2) + b"\n")
    floats = make_floats()
    # One case a line: small enough to diff, far smaller than indented JSON.
    lines = ",\n".join(orjson.dumps(case).decode() for case in floats)
    (HERE / "floats.json").write_text(f"[\n{lines}\n]\n", encoding="utf-8")
    print(f"{len(vectors)} vectors, {len(floats)} floats written to {HERE}")


if __name__ == "__main__":
    main()

"""Python values as JSON, losslessly, and the canonical arguments hash.

JSON cannot say bytes, tuples, datetimes, non-finite floats, integers beyond 2**53
(unsafe in browsers), sets or
dicts with non-string keys. Such values are *tagged*: ``{"$strata": TAG, "v": ...}``.
A plain dict that happens to contain a ``"$strata"`` key is tagged too (as ``dict``),
so decoding is unambiguous. Values with no faithful JSON form (arbitrary objects) are
tagged ``repr``: readable, but they decode to a :class:`Unrepresentable` marker.

The args hash is ``"1:" + sha256(canonical JSON of the tagged [args, kwargs])``, where
canonical means sorted keys and orjson's shortest round-trip floats. Bump the version
prefix whenever the encoding changes, so old and new hashes never collide.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import math
import uuid
from typing import Any, Final

import orjson

TAG: Final = "$strata"
ARGS_HASH_VERSION: Final = "1"
MAX_DEPTH: Final = 64
_CONTAINERS: Final = frozenset({list, tuple, dict, set, frozenset})
# Beyond 2**53 a browser's JSON.parse loses precision, so larger ints are tagged.
SAFE_INT: Final = 2**53 - 1
_SCALARS: Final = (str, bool, type(None))


@dataclasses.dataclass(frozen=True, slots=True)
class Unrepresentable:
    """Stands for a value that was recorded only as its ``repr``."""

    type: str
    repr: str


def to_json(value: Any, _depth: int = 0) -> Any:
    """Tag ``value`` into something orjson encodes without loss."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is int:
        return value if -SAFE_INT <= value <= SAFE_INT else {TAG: "int", "v": str(value)}
    if kind is float:
        if math.isfinite(value):
            return value
        return {TAG: "float", "v": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if _depth >= MAX_DEPTH:
        # A container this deep would cost its whole size to repr; say what was cut.
        if kind in _CONTAINERS:
            return {TAG: "repr", "type": kind.__qualname__, "v": f"<cut: deeper than {MAX_DEPTH}>"}
        return _repr(value)
    depth = _depth + 1
    if kind is list:
        return [to_json(item, depth) for item in value]
    if kind is dict:
        if TAG not in value and all(type(k) is str for k in value):
            return {k: to_json(v, depth) for k, v in value.items()}
        return {
            TAG: "dict",
            "v": [[to_json(k, depth), to_json(v, depth)] for k, v in value.items()],
        }
    if kind is tuple:
        return {TAG: "tuple", "v": [to_json(item, depth) for item in value]}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {TAG: "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dt.datetime):
        return {TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, dt.date):
        return {TAG: "date", "v": value.isoformat()}
    if isinstance(value, dt.time):
        return {TAG: "time", "v": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, decimal.Decimal):
        return {TAG: "decimal", "v": str(value)}
    if isinstance(value, uuid.UUID):
        return {TAG: "uuid", "v": str(value)}
    if isinstance(value, (set, frozenset)):
        # In the order of the items' hashed form: equal sets ({0, -1}, {-0.0, -1}) then
        # store, and hash, alike.
        items = sorted((to_json(item, depth) for item in value), key=_hashed_bytes)
        return {TAG: "frozenset" if isinstance(value, frozenset) else "set", "v": items}
    if isinstance(value, enum.Enum):
        return _repr(value)
    # Subclasses of builtin types (enums were handled above) are kept as the base type.
    base: type[Any]
    for base in (str, int, float, list, tuple, dict):
        if isinstance(value, base):
            return to_json(base(value), _depth)
    return _repr(value)


def _exact(value: Any, depth: int) -> bool:
    """Whether orjson writes ``value`` as it is and reading it back gives it again."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-SAFE_INT <= value <= SAFE_INT)
    if kind is float:
        return math.isfinite(value)
    if depth >= MAX_DEPTH:
        return False
    if kind is list:
        return all(_exact(item, depth + 1) for item in value)
    if kind is dict:
        return TAG not in value and all(
            type(k) is str and _exact(v, depth + 1) for k, v in value.items()
        )
    return False


def exact_json(value: Any) -> Any:
    """``value`` itself when JSON says it exactly, else :func:`to_json` of it.

    Checking costs less than copying: most recorded values are strings, small ints
    and plain containers of them, and pass to orjson untouched.
    """
    return value if _exact(value, 0) else to_json(value)


def exact_args(args: tuple[Any, ...]) -> tuple[Any, ...] | list[Any]:
    """A call's positional arguments as :func:`to_json_list` tags them; the tuple
    itself when every one is exact (orjson writes it as the list it stands for)."""
    for item in args:
        if not _exact(item, 0):
            return to_json_list(args)
    return args


def to_json_list(values: tuple[Any, ...] | list[Any]) -> list[Any]:
    """:func:`to_json` of each item; plain strings and safe ints pass through untouched."""
    out = []
    for value in values:
        kind = type(value)
        if kind is str or (kind is int and -SAFE_INT <= value <= SAFE_INT):
            out.append(value)
        else:
            out.append(to_json(value))
    return out


def _repr(value: Any) -> dict[str, Any]:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break tracing
        text = f"<unrepresentable: {type(exc).__name__}>"
    return {TAG: "repr", "type": type(value).__qualname__, "v": text[:4096]}


#: Tags whose ``v`` is a string, and how each is read back.
_FROM_TEXT: Final[dict[str, Any]] = {
    "int": int,
    "float": float,
    "bytes": base64.b64decode,
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "decimal": decimal.Decimal,
    "uuid": uuid.UUID,
}
#: Tags whose ``v`` is a list of items.
_COLLECTIONS: Final = frozenset({"tuple", "set", "frozenset", "dict"})


class MalformedValue(ValueError):
    """A tagged value that :func:`to_json` cannot have written."""


def from_json(value: Any) -> Any:
    """Invert :func:`to_json`.

    Raises :class:`MalformedValue` (a ``ValueError``) for anything :func:`to_json`
    cannot have produced: an unknown tag, a ``v`` of the wrong type or form, or nesting
    deeper than :data:`MAX_DEPTH` (which :func:`to_json` cuts to a ``repr``), so that
    an argument sent by the editor can never recurse without bound.
    """
    try:
        return _decode(value, 0)
    except MalformedValue:
        raise
    # What the readers raise on a ``v`` of the right type but a wrong form: int("x"),
    # Decimal("x"), timedelta(days=10**10), a set or dict key that is not hashable.
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise MalformedValue(f"{type(exc).__name__}: {str(exc)[:200]}") from None


def _decode(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind is not list and kind is not dict:
        return value
    if depth > MAX_DEPTH:
        raise MalformedValue(f"value nested deeper than {MAX_DEPTH} levels")
    depth += 1
    if kind is list:
        return [_decode(item, depth) for item in value]
    tag = value.get(TAG)
    if tag is None:
        return {k: _decode(v, depth) for k, v in value.items()}
    inner = value.get("v")
    if type(tag) is not str:
        raise MalformedValue(f"a value tag is a string, not {type(tag).__name__}")
    if tag in _FROM_TEXT:
        if type(inner) is not str:
            raise MalformedValue(f"a {tag!r} value is a string, not {type(inner).__name__}")
        return _FROM_TEXT[tag](inner)
    if tag == "timedelta":
        if type(inner) is not list or len(inner) != 3 or any(type(x) is not int for x in inner):
            raise MalformedValue("a 'timedelta' value is [days, seconds, microseconds]")
        return dt.timedelta(days=inner[0], seconds=inner[1], microseconds=inner[2])
    if tag in _COLLECTIONS:
        if type(inner) is not list:
            raise MalformedValue(f"a {tag!r} value is a list, not {type(inner).__name__}")
        if tag == "dict":
            if any(type(item) is not list or len(item) != 2 for item in inner):
                raise MalformedValue("a 'dict' value is a list of [key, value] pairs")
            return {_hashable(_decode(k, depth)): _decode(v, depth) for k, v in inner}
        items = [_decode(item, depth) for item in inner]
        if tag == "tuple":
            return tuple(items)
        hashable = (_hashable(item) for item in items)
        return set(hashable) if tag == "set" else frozenset(hashable)
    if tag == "repr":
        return Unrepresentable(str(value.get("type")), str(inner))
    raise MalformedValue(f"unknown value tag {tag[:80]!r}")


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def canonical_bytes(tagged: Any) -> bytes:
    """The canonical encoding of an already-tagged value."""
    return orjson.dumps(tagged, option=orjson.OPT_SORT_KEYS)


def _hashed_bytes(tagged: Any) -> bytes:
    return canonical_bytes(_integral_floats_as_ints(tagged))


def args_hash(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any] | None = None) -> str:
    """The versioned hash of a call's arguments."""
    return tag_call(args, kwargs)[2]


def _integral_floats_as_ints(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        return int(value) if value.is_integer() and -SAFE_INT <= value <= SAFE_INT else value
    if kind is list:
        return [_integral_floats_as_ints(v) for v in value]
    if kind is dict:
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    return value


def hash_tagged_args(tagged_args: list[Any], tagged_kwargs: Any) -> str:
    """:func:`args_hash` for arguments that are already tagged.

    Integral floats hash like ints (``2.0`` like ``2``), as they do in Python: a
    browser cannot tell them apart after ``JSON.parse``, and the editor must be able to
    send a traced call's arguments back and land on the same hash.
    """
    if tagged_kwargs or any(type(a) not in _PLAIN for a in tagged_args):
        tagged_args = _integral_floats_as_ints(tagged_args)
        tagged_kwargs = _integral_floats_as_ints(tagged_kwargs)
    canonical = orjson.dumps([tagged_args, tagged_kwargs], option=orjson.OPT_SORT_KEYS)
    return _HASH_PREFIX + hashlib.sha256(canonical).hexdigest()


def tag_call(
    args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any] | None
) -> tuple[list[Any], Any, str]:
    """A call's positional and keyword arguments as tagged JSON, and their hash."""
    if not kwargs and _all_plain(args):
        # The common call: strings, safe ints, bools and None are their own tagged form,
        # and the hash's normalisation cannot change them. Same bytes as below.
        canonical = orjson.dumps((args, _NO_KWARGS))
        return list(args), {}, _HASH_PREFIX + hashlib.sha256(canonical).hexdigest()
    tagged_args = to_json_list(args)
    tagged_kwargs = to_json(kwargs) if kwargs else {}
    return tagged_args, tagged_kwargs, hash_tagged_args(tagged_args, tagged_kwargs)


def _all_plain(values: tuple[Any, ...] | list[Any]) -> bool:
    for value in values:
        kind = type(value)
        if kind is int:
            if not -SAFE_INT <= value <= SAFE_INT:
                return False
        elif kind is not str and kind is not bool and value is not None:
            return False
    return True


_HASH_PREFIX: Final = ARGS_HASH_VERSION + ":"
_NO_KWARGS: Final[dict[str, Any]] = {}
#: Argument types the float normalisation cannot change (the common case, kept fast).
_PLAIN: Final = frozenset({str, int, bool, type(None)})

"""Tagged values round-trip, and the args hash is canonical and unambiguous."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from trace_store.values import (
    TAG,
    Unrepresentable,
    _integral_floats_as_ints,
    all_plain,
    args_hash,
    from_json,
    hash_plain_args,
    is_plain,
    to_json,
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.datetimes(timezones=st.just(dt.UTC))
    | st.dates()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.uuids()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        | st.dictionaries(st.integers(), inner, max_size=3)
        | st.frozensets(st.integers() | st.text(max_size=5), max_size=4)
    ),
    max_leaves=20,
)


def _roundtrip(value: Any) -> Any:
    return from_json(orjson.loads(orjson.dumps(to_json(value))))


@given(values)
def test_values_round_trip_through_json(value: Any) -> None:
    assert _roundtrip(value) == value


def test_non_finite_floats_and_reserved_keys_round_trip() -> None:
    assert math.isnan(_roundtrip(float("nan")))
    assert _roundtrip(float("-inf")) == float("-inf")
    tricky = {TAG: "bytes", "v": "not really"}
    assert _roundtrip(tricky) == tricky


def test_unrepresentable_values_become_readable_markers() -> None:
    class Thing:
        def __repr__(self) -> str:
            return "<Thing 1>"

    marker = _roundtrip(Thing())
    assert marker == Unrepresentable(
        "test_unrepresentable_values_become_readable_markers.<locals>.Thing", "<Thing 1>"
    )


def test_cycles_do_not_hang() -> None:
    loop: list[Any] = []
    loop.append(loop)
    encoded = orjson.dumps(to_json(loop))
    assert b"repr" in encoded


@given(values, values)
def test_args_hash_distinguishes_different_arguments(a: Any, b: Any) -> None:
    if _canonical_equal(a, b):
        assert args_hash((a,)) == args_hash((b,))
    else:
        assert args_hash((a,)) != args_hash((b,))


def _canonical_equal(a: Any, b: Any) -> bool:
    def canonical(value: Any) -> bytes:
        return orjson.dumps(_integral_floats_as_ints(to_json(value)), option=orjson.OPT_SORT_KEYS)

    return canonical(a) == canonical(b)


@given(st.lists(values, max_size=4))
def test_the_plain_fast_path_agrees_with_the_general_one(args: list[Any]) -> None:
    # Plain means "its own tagged form": the fast path may skip tagging and hashing
    # normalisation only for such values, and must then produce the very same hash.
    assert all_plain(args) == all(is_plain(a) for a in args)
    if all_plain(args):
        assert [to_json(a) for a in args] == args
        assert hash_plain_args(tuple(args)) == hash_plain_args(args) == args_hash(args)


def test_plain_stops_at_the_safe_integer_range() -> None:
    assert all_plain((2**53 - 1, -(2**53 - 1), "", None, False))
    assert not all_plain((1, -(2**53)))
    assert not any(map(is_plain, (2**53, 1.0, (1,), [], b"")))
    assert hash_plain_args((2**53 - 1, "a", None, True)) == args_hash((2**53 - 1, "a", None, True))


def test_args_hash_is_versioned_and_separates_lookalikes() -> None:
    h = args_hash((1, 2))
    assert h.startswith("1:")
    assert len(h) == 2 + 64
    assert args_hash((1, 2)) == args_hash([1, 2])  # positional args: list or tuple alike
    assert args_hash((1,)) == args_hash((1.0,))  # as in Python, and as a browser sees it
    assert args_hash(([2.0, {"a": 3.0}],)) == args_hash(([2, {"a": 3}],))
    distinct = {
        args_hash((1,)),
        args_hash((1.5,)),
        args_hash((True,)),
        args_hash(("1",)),
        args_hash(((1,),)),
        args_hash(([1],)),
        args_hash((b"1",)),
        args_hash((), {"a": 1}),
        args_hash((1,), {}),
        args_hash(({"a": 1},)),
    }
    assert len(distinct) == 9  # args_hash((1,), {}) == args_hash((1,))
    assert args_hash((), {"b": 2, "a": 1}) == args_hash((), {"a": 1, "b": 2})
    assert args_hash((uuid.UUID(int=1),)) != args_hash((str(uuid.UUID(int=1)),))
    assert args_hash((decimal.Decimal("1.0"),)) != args_hash((decimal.Decimal("1"),))

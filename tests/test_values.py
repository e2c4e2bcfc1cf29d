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

from trace_store.document.values import (
    TAG,
    Unrepresentable,
    _integral_floats_as_ints,
    args_hash,
    from_json,
    hash_tagged_args,
    tag_call,
    to_json,
    to_json_list,
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


@given(st.lists(values, max_size=4), st.dictionaries(st.text(max_size=5), values, max_size=2))
def test_tag_call_tags_and_hashes_like_the_general_path(args: list[Any], kwargs: Any) -> None:
    # tag_call skips tagging and normalisation for plain positional arguments; whatever
    # path it takes, the result must be the general one.
    for call_kwargs in ({}, kwargs):
        tagged_args, tagged_kwargs, digest = tag_call(tuple(args), call_kwargs)
        assert tagged_args == to_json_list(args)
        assert tagged_kwargs == (to_json(call_kwargs) if call_kwargs else {})
        assert digest == hash_tagged_args(to_json_list(args), tagged_kwargs)


def test_plain_arguments_stop_at_the_safe_integer_range() -> None:
    for plain in [(2**53 - 1, -(2**53 - 1), "", None, False), ("a",), ()]:
        assert tag_call(plain, None)[0] == list(plain)
    assert tag_call((2**53,), None)[0] == [{TAG: "int", "v": str(2**53)}]
    assert tag_call((2**53,), None)[2] != tag_call((2**53 - 1,), None)[2]


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


@given(st.frozensets(st.one_of(st.integers(-3, 3), st.sampled_from([-0.0, 0.0, 1.0, -1.0, 2.5]))))
def test_equal_sets_hash_alike(items: frozenset[Any]) -> None:
    # -0.0 == 0 and 1.0 == 1: a set holding one is equal to the set holding the other,
    # so its arguments hash alike (the items are ordered by their hashed form).
    as_ints = {int(x) if isinstance(x, float) and x.is_integer() else x for x in items}
    assert args_hash((set(items),)) == args_hash((as_ints,))

"""strata.trace/2: the compact calls read back as exactly the /1 Call objects the old
writer made, for any recorded values; the writer's shortcuts agree with the long way."""

from __future__ import annotations

import datetime as dt
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.pin_support import pending
from trace_store.document import codec, compact, schema
from trace_store.document.build import TraceLimits, build_trace, calls_doc, compact_calls, query_doc
from trace_store.document.values import exact_json, to_json
from trace_store.record import BUILTIN, USER, ErrorInfo

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.datetimes(timezones=st.just(dt.UTC)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
        st.dictionaries(st.integers(-3, 3), inner, max_size=2),
        st.frozensets(st.integers(-5, 5), max_size=3),
        st.dictionaries(st.just("$strata"), inner, max_size=1),
    ),
    max_leaves=12,
)


@st.composite
def recorded_calls(draw: st.DrawFn) -> list[list[Any]]:
    calls: list[list[Any]] = []
    for cid in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from([USER, USER, BUILTIN]))
        args = tuple(draw(st.lists(values, max_size=3)))
        kwargs = draw(st.dictionaries(st.text(min_size=1, max_size=3), values, max_size=2))
        failed = draw(st.booleans())
        error = ErrorInfo("ValueError", "no", "Traceback ...") if failed else None
        result = None if failed else draw(values)
        start = draw(st.integers(1_000, 2_000))
        end = draw(st.sampled_from([0, start + draw(st.integers(0, 5_000))]))
        parent = draw(st.none() | st.integers(0, max(0, cid - 1))) if cid else None
        calls.append([cid, parent, f"f{cid}", kind, args, kwargs, result, error, start, end])
    return calls


def _same(a: Any, b: Any) -> bool:
    # NaN is not equal to itself; JSON bytes compare it as the tag it is stored as.
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        b, option=orjson.OPT_SORT_KEYS
    )


@settings(max_examples=300, deadline=None)
@given(calls=recorded_calls())
def test_compact_calls_read_back_as_the_call_objects_of_format_1(calls: list[list[Any]]) -> None:
    # What a reader gets from the stored /2 bytes equals what the /1 writer stored.
    doc = {"format": compact.FORMAT_2, "call_fields": list(compact.CALL_FIELDS)}
    doc["calls"] = compact_calls(calls, 500)
    stored = codec.decode(codec.encode(doc))
    old = orjson.loads(orjson.dumps(calls_doc(calls, 500)))
    assert _same(compact.call_objects(stored), old)
    # No user call's hash is written: readers derive it.
    assert all(len(row) < 11 or row[10] is None for row in stored["calls"] if row[3] == USER)


@settings(max_examples=300, deadline=None)
@given(value=values)
def test_a_value_passes_untouched_only_when_json_says_it_exactly(value: Any) -> None:
    out = exact_json(value)
    assert _same(out, to_json(value))
    if out is value:  # passed untouched: reading it back gives the value itself
        assert orjson.loads(orjson.dumps(value)) == value


@settings(max_examples=300, deadline=None)
@given(query=st.text(alphabet="ab=&%+;2 é", max_size=16))
def test_query_doc_reads_a_query_string_as_parse_qsl(query: str) -> None:
    expected: dict[str, list[str]] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        expected.setdefault(key, []).append(value)
    assert query_doc(query) == expected


def test_a_written_document_is_format_2_and_validates() -> None:
    calls = [
        [0, None, "f", USER, (1, b"\x00"), {}, {"k": (1,)}, None, 10, 20],
        [1, 0, "time.now", BUILTIN, (), {}, 1.5, None, 12, 13],
    ]
    trace = pending("c", "h", datetime.now(UTC))
    trace.calls = calls  # origin_ns 0: times relative to 0
    stored = codec.decode(codec.encode(build_trace(trace, TraceLimits())))
    schema.validate("trace", stored)
    assert stored["format"] == "strata.trace/2"
    user, builtin = stored["calls"]
    # A user call without kwargs that returned ends after its result.
    assert user == [0, None, "f", "user", [1, {"$strata": "bytes", "v": "AA=="}],
                    {"k": {"$strata": "tuple", "v": [1]}}, 0, 0]  # fmt: skip
    assert builtin[4] is None
    assert builtin[10].startswith("1:")
    # The /1 document it stands for is what the /1 writer wrote, and validates too.
    old = compact.expanded(stored)
    schema.validate("trace", old)
    assert old["calls"] == orjson.loads(orjson.dumps(calls_doc(calls, 0)))


def test_malformed_compact_calls_are_read_as_empty_objects() -> None:
    doc = {"format": compact.FORMAT_2, "call_fields": list(compact.CALL_FIELDS)}
    doc["calls"] = [[0] * 12, "x", [0, None, "f", "user", "not a list", 1, 0, 0], [0, None]]
    calls = compact.call_objects(doc)
    assert calls[:2] == [{}, {}]
    assert "args_hash" not in calls[2]  # nothing to derive it from
    # A row that ends early: the fields it leaves out read as null (absent when optional).
    assert (calls[3]["id"], calls[3]["kind"], calls[3]["result"]) == (0, None, None)
    assert "args" not in calls[3]

"""UTC timestamps: exact, and the same strings the datetime formatter gives."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from trace_store.timestamps import rfc3339, rfc3339_of, unix_ns, utc_datetime

# 1970 .. 2200, to the nanosecond.
instants = st.integers(min_value=0, max_value=7_258_118_400 * 10**9)


@given(instants)
def test_rfc3339_matches_datetime_formatting_truncated_to_the_microsecond(ns: int) -> None:
    moment = utc_datetime(ns)
    assert rfc3339(ns) == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert moment.microsecond == ns // 1000 % 1_000_000


@given(instants)
def test_datetimes_round_trip_exactly(ns: int) -> None:
    micro = ns // 1000 * 1000
    assert unix_ns(utc_datetime(ns)) == micro
    assert rfc3339_of(utc_datetime(ns)) == rfc3339(micro)


def test_the_cached_second_is_not_reused_for_another_second() -> None:
    assert rfc3339(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456Z"
    assert rfc3339(1_700_000_001_000_000_000) == "2023-11-14T22:13:21.000000Z"
    assert rfc3339(1_700_000_000_999_999_999) == "2023-11-14T22:13:20.999999Z"
    # int(moment.timestamp() * 1e9) truncates this one to ...478193: float seconds
    # cannot hold every microsecond; the integer arithmetic can.
    moment = datetime(2015, 10, 21, 0, 49, 10, 478194, tzinfo=UTC)
    assert int(moment.timestamp() * 1e9) // 1000 % 1_000_000 == 478193
    assert rfc3339_of(moment) == "2015-10-21T00:49:10.478194Z"

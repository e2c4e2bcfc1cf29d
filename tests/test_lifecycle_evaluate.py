"""The provider lifecycle evaluators, on strata's rendered rules and on edge cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from lifecycle_policies.evaluate import (
    GcsObject,
    S3Object,
    UnsupportedRule,
    expired_gcs,
    expired_s3,
    gcs_eligible_from,
    next_midnight_utc,
    s3_eligible_from,
    s3_expiration_time,
)
from lifecycle_policies.policy import Policy
from lifecycle_policies.render import render_gcs, render_s3
from tests.pin_model import s3_tags

DAY = timedelta(days=1)
T0 = datetime(2024, 3, 1, 10, 30, tzinfo=UTC)
POLICY = Policy.default()
S3_RULES = render_s3(POLICY)
GCS_RULES = render_gcs(POLICY)


def trace_key(n: int) -> str:
    return f"traces/shop/get_user/00000000-0000-0000-0000-{n:012d}.json.zst"


def unmatched_key(n: int) -> str:
    return f"unmatched/shop/00000000-0000-0000-0000-{n:012d}.json.zst"


# --- time arithmetic ------------------------------------------------------------------


def test_s3_rounds_up_to_the_next_midnight_utc() -> None:
    # The S3 User Guide's example: created 2014-01-15 10:30 UTC, 3 days -> 2014-01-19 00:00.
    created = datetime(2014, 1, 15, 10, 30, tzinfo=UTC)
    assert s3_expiration_time(created, 3) == datetime(2014, 1, 19, tzinfo=UTC)


def test_next_midnight_keeps_an_exact_midnight_and_converts_to_utc() -> None:
    midnight = datetime(2024, 3, 2, tzinfo=UTC)
    assert next_midnight_utc(midnight) == midnight
    # 23:30 at UTC-2 is 01:30 UTC the next day.
    late = datetime(2024, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    assert next_midnight_utc(late) == datetime(2024, 3, 3, tzinfo=UTC)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        s3_eligible_from(S3_RULES, S3Object(trace_key(1), datetime(2024, 3, 1)))
    with pytest.raises(ValueError, match="naive"):
        expired_gcs(GCS_RULES, [], datetime(2024, 3, 1))


def test_gcs_age_is_met_after_whole_days_without_rounding() -> None:
    # GCS's example: created 2019-01-10 10:00 UTC, age 10 -> met from 2019-01-20 10:00 UTC.
    rules = {"lifecycle": {"rule": [{"action": {"type": "Delete"}, "condition": {"age": 10}}]}}
    obj = GcsObject("a", datetime(2019, 1, 10, 10, tzinfo=UTC))
    met = datetime(2019, 1, 20, 10, tzinfo=UTC)
    assert gcs_eligible_from(rules, obj) == met
    assert expired_gcs(rules, [obj], met - timedelta(seconds=1)) == frozenset()
    assert expired_gcs(rules, [obj], met) == {"a"}


# --- SPEC §10 scenario: 15 traces, the 10 newest pinned ---------------------------------


def fifteen_traces_s3() -> list[S3Object]:
    # One trace an hour; the 10 newest carry the pinned tag set, the 5 oldest expirable.
    return [
        S3Object(trace_key(n), T0 + n * timedelta(hours=1), s3_tags(pinned=n >= 5))
        for n in range(15)
    ]


def fifteen_traces_gcs(renewed_at: datetime) -> list[GcsObject]:
    # Pinned objects' customTime was last renewed at ``renewed_at``; the others kept
    # their creation time.
    return [
        GcsObject(
            trace_key(n),
            T0 + n * timedelta(hours=1),
            renewed_at if n >= 5 else T0 + n * timedelta(hours=1),
        )
        for n in range(15)
    ]


def test_s3_eight_days_later_exactly_the_ten_newest_survive() -> None:
    objects = fifteen_traces_s3()
    expired = expired_s3(S3_RULES, objects, T0 + 8 * DAY)
    assert expired == {trace_key(n) for n in range(5)}
    survivors = {obj.key for obj in objects} - expired
    assert survivors == {trace_key(n) for n in range(5, 15)}


def test_s3_nothing_expires_after_one_day() -> None:
    assert expired_s3(S3_RULES, fifteen_traces_s3(), T0 + DAY) == frozenset()


def test_s3_unpinned_traces_expire_at_the_midnight_after_retention() -> None:
    objects = fifteen_traces_s3()
    # created 10:30..14:30 on 03-01; + 7 days -> 03-08 daytime -> eligible 03-09 00:00.
    assert expired_s3(S3_RULES, objects, datetime(2024, 3, 8, 23, 59, tzinfo=UTC)) == set()
    assert len(expired_s3(S3_RULES, objects, datetime(2024, 3, 9, tzinfo=UTC))) == 5


def test_gcs_eight_days_later_exactly_the_ten_newest_survive() -> None:
    at = T0 + 8 * DAY
    objects = fifteen_traces_gcs(renewed_at=at - timedelta(hours=12))
    expired = expired_gcs(GCS_RULES, objects, at)
    assert expired == {trace_key(n) for n in range(5)}


def test_gcs_nothing_expires_after_one_day() -> None:
    objects = fifteen_traces_gcs(renewed_at=T0 + timedelta(hours=20))
    assert expired_gcs(GCS_RULES, objects, T0 + DAY) == frozenset()


def test_gcs_lapsed_lease_expires_retain_days_after_last_renewal() -> None:
    renewed = T0 + 3 * DAY
    lapsed = GcsObject(trace_key(1), T0, custom_time=renewed)
    assert gcs_eligible_from(GCS_RULES, lapsed) == renewed + 7 * DAY


def test_unmatched_expire_after_their_own_retention_on_s3() -> None:
    objects = [S3Object(unmatched_key(n), T0 + n * timedelta(hours=1)) for n in range(3)]
    assert expired_s3(S3_RULES, objects, T0 + DAY) == set()
    # 3 days + rounding: created 03-01 daytime -> eligible 03-05 00:00, not 03-04 10:30.
    assert expired_s3(S3_RULES, objects, T0 + 3 * DAY) == set()
    all_keys = {obj.key for obj in objects}
    assert expired_s3(S3_RULES, objects, datetime(2024, 3, 5, tzinfo=UTC)) == all_keys
    # ...well before the traces' 7 days, and whatever tags they carry.
    tagged = [S3Object(o.key, o.created, s3_tags(pinned=True)) for o in objects]
    assert expired_s3(S3_RULES, tagged, datetime(2024, 3, 5, tzinfo=UTC)) == all_keys


def test_unmatched_expire_after_their_own_retention_on_gcs() -> None:
    objects = [GcsObject(unmatched_key(n), T0 + n * timedelta(hours=1)) for n in range(3)]
    assert expired_gcs(GCS_RULES, objects, T0 + DAY) == set()
    assert expired_gcs(GCS_RULES, objects, T0 + 3 * DAY) == {unmatched_key(0)}
    assert expired_gcs(GCS_RULES, objects, T0 + 3 * DAY + timedelta(hours=2)) == {
        obj.key for obj in objects
    }


def test_objects_outside_strata_prefixes_never_expire_by_strata_rules() -> None:
    at = T0 + 400 * DAY
    prefixed_s3 = render_s3(POLICY, "myprefix")
    prefixed_gcs = render_gcs(POLICY, "myprefix")
    foreign = ["logs/app.log", trace_key(1), "myprefix/other/x"]
    assert (
        expired_s3(prefixed_s3, [S3Object(k, T0, s3_tags(pinned=False)) for k in foreign], at)
        == set()
    )
    assert expired_gcs(prefixed_gcs, [GcsObject(k, T0, T0) for k in foreign], at) == set()


def test_gcs_trace_without_custom_time_never_matches_days_since_custom_time() -> None:
    assert gcs_eligible_from(GCS_RULES, GcsObject(trace_key(1), T0)) is None


def test_s3_trace_without_the_expirable_tag_never_expires() -> None:
    assert s3_eligible_from(S3_RULES, S3Object(trace_key(1), T0, {})) is None


# --- rule forms beyond strata's own -------------------------------------------------------


def test_s3_filter_forms() -> None:
    config = {
        "Rules": [
            {"ID": "legacy", "Status": "Enabled", "Prefix": "old/", "Expiration": {"Days": 1}},
            {
                "ID": "tag",
                "Status": "Enabled",
                "Filter": {"Tag": {"Key": "tmp", "Value": "1"}},
                "Expiration": {"Days": 2},
            },
            {
                "ID": "dated",
                "Status": "Enabled",
                "Filter": {"Prefix": "dated/"},
                "Expiration": {"Date": "2024-06-01T00:00:00Z"},
            },
            {"ID": "off", "Status": "Disabled", "Filter": {}, "Expiration": {"Days": 1}},
            {
                "ID": "mpu",
                "Status": "Enabled",
                "Filter": {},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            },
        ]
    }
    assert s3_eligible_from(config, S3Object("old/a", T0)) == datetime(2024, 3, 3, tzinfo=UTC)
    assert s3_eligible_from(config, S3Object("x", T0, {"tmp": "1"})) == datetime(
        2024, 3, 4, tzinfo=UTC
    )
    assert s3_eligible_from(config, S3Object("x", T0, {"tmp": "2"})) is None
    assert s3_eligible_from(config, S3Object("dated/a", T0)) == datetime(2024, 6, 1, tzinfo=UTC)
    assert s3_eligible_from(config, S3Object("other", T0)) is None


def test_gcs_condition_forms() -> None:
    config = {
        "lifecycle": {
            "rule": [
                {"action": {"type": "Delete"}, "condition": {"age": 1, "matchesSuffix": [".tmp"]}},
                {"action": {"type": "Delete"}, "condition": {"createdBefore": "2024-01-01"}},
                {
                    "action": {"type": "SetStorageClass", "storageClass": "COLDLINE"},
                    "condition": {"age": 1},
                },
                {"action": {"type": "AbortIncompleteMultipartUpload"}, "condition": {"age": 1}},
            ]
        }
    }
    assert gcs_eligible_from(config, GcsObject("a.tmp", T0)) == T0 + DAY
    assert gcs_eligible_from(config, GcsObject("a.json", T0)) is None
    old = datetime(2023, 12, 31, 23, tzinfo=UTC)
    assert gcs_eligible_from(config, GcsObject("a.json", old)) == old


def test_unsupported_conditions_are_refused_not_guessed() -> None:
    s3 = {
        "Rules": [
            {
                "ID": "big",
                "Status": "Enabled",
                "Filter": {"ObjectSizeGreaterThan": 1024},
                "Expiration": {"Days": 1},
            }
        ]
    }
    with pytest.raises(UnsupportedRule):
        s3_eligible_from(s3, S3Object("a", T0))
    gcs = {"lifecycle": {"rule": [{"action": {"type": "Delete"}, "condition": {"isLive": False}}]}}
    with pytest.raises(UnsupportedRule):
        gcs_eligible_from(gcs, GcsObject("a", T0))

"""A pure model of what the providers' lifecycle engines delete, for tests and
``strata lifecycle simulate``.

Both evaluators answer for an object in a fixed state (tags, ``customTime``): from
which instant may the provider delete it? That is the moment it becomes *eligible*;
the real engines act some hours later (S3 runs about daily, GCS within a day of the
condition being met), never earlier. Every datetime must be timezone-aware.

S3 (``Expiration.Days``): "Amazon S3 calculates the time by adding the number of days
specified in the rule to the object creation time and rounding the resulting time to
the next day midnight UTC" (S3 User Guide, lifecycle configuration elements). Read
here as a ceiling: an object created 2024-01-01T10:30Z with ``Days: 3`` is eligible
from 2024-01-05T00:00Z; a sum that already is a midnight stays as it is. Only the
filter's prefix and tags matter (size conditions are not modelled and are refused).
``Expiration.Date`` makes matching objects eligible from that date.

GCS: ``age`` and ``daysSinceCustomTime`` are met once the full number of days has
elapsed since creation / ``customTime`` ("satisfied when the current date and time is
at least the specified number of days after"): elapsed time >= N * 24 h, i.e. the age
in whole days, rounded down, is >= N. No rounding to midnight. An object without
``customTime`` never meets ``daysSinceCustomTime``. ``matchesPrefix`` and
``matchesSuffix`` match any listed entry; ``createdBefore`` / ``customTimeBefore``
compare with midnight UTC of the given date.

Rules that cannot be evaluated faithfully raise :class:`UnsupportedRule` rather than
give a wrong answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from trace_store.errors import StrataError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

DAY = timedelta(days=1)


class UnsupportedRule(StrataError, ValueError):
    """A lifecycle rule uses a condition this model does not evaluate."""

    code = "unsupported_rule"
    status = 400


@dataclass(frozen=True, slots=True)
class S3Object:
    """An S3 object as lifecycle sees it: key, creation time and its tag set."""

    key: str
    created: datetime
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GcsObject:
    """A GCS object as lifecycle sees it: name, creation time and ``customTime``."""

    key: str
    created: datetime
    custom_time: datetime | None = None


def next_midnight_utc(moment: datetime) -> datetime:
    """``moment`` rounded up to 00:00 UTC (unchanged if it is exactly midnight)."""
    _require_aware(moment)
    utc = moment.astimezone(UTC)
    midnight = datetime(utc.year, utc.month, utc.day, tzinfo=UTC)
    return midnight if midnight == utc else midnight + DAY


def s3_expiration_time(created: datetime, days: int) -> datetime:
    """When S3 may expire an object created at ``created`` under ``Days: days``."""
    return next_midnight_utc(created + days * DAY)


def gcs_condition_time(reference: datetime, days: int) -> datetime:
    """When ``age``/``daysSinceCustomTime`` = ``days`` is met for ``reference``
    (creation time or ``customTime``)."""
    _require_aware(reference)
    return reference + days * DAY


def s3_eligible_from(config: Mapping[str, Any], obj: S3Object) -> datetime | None:
    """Earliest instant any enabled S3 expiration rule in ``config`` (``{"Rules":
    [...]}``) applies to ``obj`` in its current state; ``None`` if none ever does."""
    _require_aware(obj.created)
    times = [
        moment
        for rule in config.get("Rules") or []
        if (moment := _s3_rule_time(rule, obj)) is not None
    ]
    return min(times, default=None)


def gcs_eligible_from(config: Mapping[str, Any], obj: GcsObject) -> datetime | None:
    """Earliest instant any ``Delete`` rule in ``config`` (``{"lifecycle": {"rule":
    [...]}}``) applies to ``obj`` in its current state; ``None`` if none ever does."""
    _require_aware(obj.created)
    if obj.custom_time is not None:
        _require_aware(obj.custom_time)
    rules = (config.get("lifecycle") or {}).get("rule") or []
    times = [moment for rule in rules if (moment := _gcs_rule_time(rule, obj)) is not None]
    return min(times, default=None)


def expired_s3(
    config: Mapping[str, Any], objects: Iterable[S3Object], at: datetime
) -> frozenset[str]:
    """Keys S3 may have deleted by ``at`` (objects keep their given state throughout)."""
    _require_aware(at)
    return frozenset(obj.key for obj in objects if _by(s3_eligible_from(config, obj), at))


def expired_gcs(
    config: Mapping[str, Any], objects: Iterable[GcsObject], at: datetime
) -> frozenset[str]:
    """Keys GCS may have deleted by ``at`` (objects keep their given state throughout)."""
    _require_aware(at)
    return frozenset(obj.key for obj in objects if _by(gcs_eligible_from(config, obj), at))


def _by(eligible_from: datetime | None, at: datetime) -> bool:
    return eligible_from is not None and eligible_from <= at


_S3_DELETING = ("Expiration",)
_S3_NON_DELETING = (
    "ID",
    "Status",
    "Filter",
    "Prefix",
    "Transitions",
    "Transition",
    "NoncurrentVersionTransitions",
    "NoncurrentVersionExpiration",
    "AbortIncompleteMultipartUpload",
)


def _s3_rule_time(rule: Mapping[str, Any], obj: S3Object) -> datetime | None:
    unknown = set(rule) - {*_S3_DELETING, *_S3_NON_DELETING}
    if unknown:
        raise UnsupportedRule(f"S3 rule {rule.get('ID')!r}: unknown fields {sorted(unknown)}")
    expiration = rule.get("Expiration") or {}
    if rule.get("Status") != "Enabled" or not _s3_matches(rule, obj):
        return None
    if "Days" in expiration:
        return s3_expiration_time(obj.created, int(expiration["Days"]))
    if "Date" in expiration:
        return max(obj.created, _as_datetime(expiration["Date"]))
    return None  # ExpiredObjectDeleteMarker only, or no expiration at all


def _s3_matches(rule: Mapping[str, Any], obj: S3Object) -> bool:
    if "Filter" not in rule:
        return obj.key.startswith(rule.get("Prefix", ""))  # legacy top-level Prefix
    filt = rule["Filter"] or {}
    if set(filt) - {"Prefix", "Tag", "And"}:
        raise UnsupportedRule(f"S3 rule {rule.get('ID')!r}: unsupported filter {filt!r}")
    if "And" in filt:
        conditions = filt["And"]
        if set(conditions) - {"Prefix", "Tags"}:
            raise UnsupportedRule(f"S3 rule {rule.get('ID')!r}: unsupported filter {filt!r}")
        tags = list(conditions.get("Tags") or [])
        prefix = conditions.get("Prefix", "")
    else:
        tags = [filt["Tag"]] if "Tag" in filt else []
        prefix = filt.get("Prefix", "")
    return obj.key.startswith(prefix) and all(
        obj.tags.get(tag["Key"]) == tag["Value"] for tag in tags
    )


_GCS_CONDITIONS = {
    "age",
    "daysSinceCustomTime",
    "matchesPrefix",
    "matchesSuffix",
    "createdBefore",
    "customTimeBefore",
}


def _gcs_rule_time(rule: Mapping[str, Any], obj: GcsObject) -> datetime | None:
    if (rule.get("action") or {}).get("type") != "Delete":
        return None  # SetStorageClass, AbortIncompleteMultipartUpload: objects survive
    condition = rule.get("condition") or {}
    unknown = set(condition) - _GCS_CONDITIONS
    if unknown:
        raise UnsupportedRule(f"GCS rule {rule!r}: unsupported conditions {sorted(unknown)}")
    if "matchesPrefix" in condition and not any(
        obj.key.startswith(prefix) for prefix in condition["matchesPrefix"]
    ):
        return None
    if "matchesSuffix" in condition and not any(
        obj.key.endswith(suffix) for suffix in condition["matchesSuffix"]
    ):
        return None
    if "createdBefore" in condition and obj.created >= _as_datetime(condition["createdBefore"]):
        return None
    if "customTimeBefore" in condition and (
        obj.custom_time is None or obj.custom_time >= _as_datetime(condition["customTimeBefore"])
    ):
        return None
    # From here on the rule matches; the time conditions say from when.
    moment = obj.created
    if "age" in condition:
        moment = max(moment, gcs_condition_time(obj.created, int(condition["age"])))
    if "daysSinceCustomTime" in condition:
        if obj.custom_time is None:
            return None
        moment = max(
            moment, gcs_condition_time(obj.custom_time, int(condition["daysSinceCustomTime"]))
        )
    return moment


def _as_datetime(value: Any) -> datetime:
    """A provider date (``"2024-01-15"``, an RFC 3339 string, a date or datetime) as
    an aware UTC datetime; bare dates mean midnight UTC."""
    if isinstance(value, datetime):
        _require_aware(value)
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    text = str(value)
    if len(text) == 10:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    _require_aware(parsed)
    return parsed


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: lifecycle times must be aware")

"""UTC timestamps: nanoseconds since the epoch to datetimes and RFC 3339 strings.

Exact integer arithmetic (no float seconds, which can be off by a microsecond), and
fast: the writer formats one per trace and one per event, and ``strftime`` costs a few
microseconds where reusing the formatted second costs a fraction of one.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Final

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
#: The last second formatted: (seconds since the epoch, "YYYY-MM-DDTHH:MM:SS").
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def rfc3339(unix_ns: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` for ``unix_ns`` (truncated to the microsecond)."""
    global _last_second
    seconds, ns = divmod(unix_ns, 1_000_000_000)
    cached, prefix = _last_second  # one read: another thread may replace it meanwhile
    if seconds != cached:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, prefix)
    return f"{prefix}.{ns // 1000:06d}Z"


def utc_datetime(unix_ns: int) -> datetime:
    """The aware UTC datetime of ``unix_ns`` (truncated to the microsecond, as Postgres)."""
    return EPOCH + timedelta(microseconds=unix_ns // 1000)


def unix_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime, exactly."""
    return (moment - EPOCH) // _MICROSECOND * 1000


def rfc3339_of(moment: datetime) -> str:
    """:func:`rfc3339` of an aware datetime."""
    return rfc3339(unix_ns(moment))

"""The retention policy: what ops write in TOML, validated strictly.

Layout (every key optional; the values shown are the defaults)::

    [traces]
    retain_days = 7        # a trace object may expire this many days after creation...
    keep_latest = 10       # ...unless it is among the latest N of its handler (pinned)

    [unmatched]
    retain_days = 3        # unmatched (404) request objects; never pinned

    [multipart]
    abort_incomplete_days = 1   # incomplete multipart uploads are aborted after this

Anything else (an unknown table or key, a wrong type, a value out of range) is a
:class:`PolicyError` whose message and ``field`` name the offending TOML path, for
example ``traces.retain_days``. The store's key prefix is not part of the policy: it
belongs to the store URL and is passed to the renderers.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from trace_store.errors import StrataError

#: Both S3 (``Expiration.Days``) and GCS (``age``, ``daysSinceCustomTime``) count whole
#: days, so a retention must be a whole number of days, at least one.
LIFECYCLE_GRANULARITY_DAYS = 1
#: Upper bound on any day count. Far above any sane retention; it catches typos (an
#: extra zero is 70 years, not 700) and keeps date arithmetic clear of overflow.
MAX_DAYS = 36_500


class PolicyError(StrataError, ValueError):
    """A retention policy that cannot be applied. ``field`` is the TOML path at fault."""

    code = "policy_error"
    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated retention policy. Build it with :meth:`from_toml`, :meth:`from_file`
    or :meth:`default`; the constructor itself validates too."""

    traces_retain_days: int = 7
    keep_latest: int = 10
    unmatched_retain_days: int = 3
    abort_incomplete_multipart_days: int = 1

    # TOML path -> attribute. The single source for parsing, validation and messages.
    FIELDS: ClassVar[dict[str, str]] = {
        "traces.retain_days": "traces_retain_days",
        "traces.keep_latest": "keep_latest",
        "unmatched.retain_days": "unmatched_retain_days",
        "multipart.abort_incomplete_days": "abort_incomplete_multipart_days",
    }

    def __post_init__(self) -> None:
        for path, attribute in self.FIELDS.items():
            value = getattr(self, attribute)
            if attribute == "keep_latest":
                _check_keep_latest(path, value)
            else:
                _check_days(path, value)

    @classmethod
    def default(cls) -> Policy:
        """The policy of SPEC §10: traces 7 days, latest 10 kept, unmatched 3 days,
        incomplete multipart uploads aborted after 1 day."""
        return cls()

    @classmethod
    def from_toml(cls, text: str) -> Policy:
        """Parse and validate a policy document; missing keys take their defaults."""
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"policy is not valid TOML: {exc}") from None
        return cls._from_document(document)

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        """Read a policy file. An unreadable file is a :class:`PolicyError` naming it."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise PolicyError(f"cannot read policy file {str(path)!r}: {reason}") from None
        try:
            return cls.from_toml(text)
        except PolicyError as exc:
            raise PolicyError(f"{path}: {exc}", exc.field) from None

    @classmethod
    def _from_document(cls, document: dict[str, Any]) -> Policy:
        tables: dict[str, set[str]] = {}
        for path in cls.FIELDS:
            table, key = path.split(".")
            tables.setdefault(table, set()).add(key)
        values: dict[str, Any] = {}
        for table, content in document.items():
            if table not in tables:
                raise PolicyError(
                    f"unknown key {table!r} in policy (expected one of: "
                    f"{', '.join(sorted(tables))})",
                    table,
                )
            if not isinstance(content, dict):
                raise PolicyError(f"{table} must be a table ([{table}])", table)
            for key, value in content.items():
                path = f"{table}.{key}"
                if key not in tables[table]:
                    raise PolicyError(
                        f"unknown key {path!r} in policy (expected one of: "
                        f"{', '.join(f'{table}.{k}' for k in sorted(tables[table]))})",
                        path,
                    )
                values[cls.FIELDS[path]] = value
        return cls(**values)


def _check_int(path: str, value: object) -> int:
    # bool is a subclass of int; `retain_days = true` is a mistake, not 1 day.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float):
            raise PolicyError(
                f"{path} must be an integer number of days: lifecycle rules count whole "
                f"days (granularity {LIFECYCLE_GRANULARITY_DAYS} day), got {value!r}",
                path,
            )
        raise PolicyError(f"{path} must be an integer, got {type(value).__name__} {value!r}", path)
    return value


def _check_days(path: str, value: object) -> None:
    days = _check_int(path, value)
    if days < 0:
        raise PolicyError(f"{path} must be a positive number of days, got {days}", path)
    if days < LIFECYCLE_GRANULARITY_DAYS:
        raise PolicyError(
            f"{path} = {days} is shorter than the lifecycle granularity of "
            f"{LIFECYCLE_GRANULARITY_DAYS} day (S3 and GCS count whole days)",
            path,
        )
    if days > MAX_DAYS:
        raise PolicyError(f"{path} must be at most {MAX_DAYS} days, got {days}", path)


def _check_keep_latest(path: str, value: object) -> None:
    count = _check_int(path, value)
    if count < 1:
        raise PolicyError(
            f"{path} must be at least 1 (the newest trace of a handler is always kept), "
            f"got {count}",
            path,
        )

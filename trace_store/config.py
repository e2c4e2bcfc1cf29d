"""The one reader of strata's settings: environment variables, parsed strictly.

Every setting is read through a :class:`Config`, which wraps one mapping (the process
environment unless a test or a caller gives another), so a bad value fails with the
variable's name, whatever reads it (``strata serve``, a CLI subcommand, the writer
process), and nothing else in strata touches ``os.environ``. Nothing is read at import
time; nothing is written to the environment.

An empty value counts as unset: ``STRATA_X=`` in a shell or a compose file means "use
the default".
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TypeVar

from trace_store.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

T = TypeVar("T", int, float)


class Config:
    """Typed, validated reads of settings by name (after starlette's ``Config``)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ: Mapping[str, str] = os.environ if environ is None else environ

    def is_set(self, name: str) -> bool:
        """Whether ``name`` is present at all (even empty): for settings that were
        removed, where silently ignoring one would be worse than an error."""
        return name in self._environ

    def get(self, name: str, default: str | None = None) -> str | None:
        """The raw value of ``name``, or ``default`` when unset or empty."""
        return self._environ.get(name) or default

    def get_int(self, name: str, default: int, *, low: int = 0, high: int = 2**31) -> int:
        """An integer in ``[low, high]``; a malformed or out-of-range value names ``name``."""
        return self._bounded(name, default, low, high, int)

    def get_float(self, name: str, default: float, *, low: float, high: float) -> float:
        """A number in ``[low, high]``; a malformed or out-of-range value names ``name``."""
        return self._bounded(name, default, low, high, float)

    def get_choice(self, name: str, default: str, choices: Iterable[str]) -> str:
        """One of ``choices``; anything else names ``name`` and the choices."""
        value = self.get(name) or default
        allowed = tuple(choices)
        if value not in allowed:
            raise ConfigError(f"{name}: expected one of {allowed}, got {value!r}")
        return value

    def get_bool(self, name: str, default: bool) -> bool:
        """``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off`` (any case)."""
        raw = self.get(name)
        if raw is None:
            return default
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected 1/true/yes/on or 0/false/no/off, got {raw!r}")

    def get_names(self, name: str, default: frozenset[str]) -> frozenset[str]:
        """A comma-separated list of names, lower-cased (unset: ``default``; set but
        empty: none, so ``STRATA_REDACT_HEADERS=`` turns a default list off)."""
        raw = self._environ.get(name)
        if raw is None:
            return default
        return frozenset(part.strip().lower() for part in raw.split(",") if part.strip())

    def subset(self, names: Iterable[str]) -> dict[str, str]:
        """The given settings that are set, as a plain mapping."""
        return {name: self._environ[name] for name in names if self._environ.get(name)}

    def _bounded(self, name: str, default: T, low: T, high: T, kind: Callable[[str], T]) -> T:
        raw = self._environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = kind(raw)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise ConfigError(f"{name}: expected {what}, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"{name}: {value} is out of range [{low}, {high}]")
        return value

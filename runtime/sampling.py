"""Which requests are traced: ``all``, ``none`` or ``1/N`` (errors are always traced)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from trace_store.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Sampling:
    """A parsed sampling rule. ``every`` is N in ``1/N``; 1 means all, 0 means none."""

    every: int

    @classmethod
    def parse(cls, text: str, *, setting: str = "STRATA_TRACE_SAMPLE") -> Sampling:
        """Parse ``all`` | ``none`` | ``1/N``; a bad value names ``setting``."""
        value = text.strip().lower()
        if value == "all":
            return cls(1)
        if value == "none":
            return cls(0)
        num, slash, den = value.partition("/")
        if slash and num == "1" and den.isdigit() and int(den) >= 1:
            return cls(int(den))
        raise ConfigError(f"{setting}: expected 'all', 'none' or '1/N', got {text!r}")

    def decide(self) -> bool:
        """Whether to trace the next request."""
        every = self.every
        if every == 1:
            return True
        if every == 0:
            return False
        return random.random() * every < 1.0

    def __str__(self) -> str:
        return {0: "none", 1: "all"}.get(self.every, f"1/{self.every}")

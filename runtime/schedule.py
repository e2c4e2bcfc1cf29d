"""When a cron runs (SPEC §15): a five-field cron expression in UTC (parsed by
cronsim, which is DST-correct and refuses dates that never come, like ``0 0 31 2 *``),
or a fixed interval of whole seconds aligned to the Unix epoch, so that every process
computes the same ticks. Pure: times in, times out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cronsim import CronSim, CronSimError

#: The longest interval ``every=`` takes (a week); longer is what expressions are for.
MAX_EVERY = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Schedule:
    """A cron's ticks. ``text`` is how traces and the editor show it."""

    text: str
    expression: str | None = None
    every: int | None = None

    @classmethod
    def parse(cls, expression: str | None, every: int | None) -> Schedule:
        """One of a five-field expression or ``every`` seconds; :class:`ValueError`
        naming what is wrong otherwise."""
        if (expression is None) == (every is None):
            raise ValueError(
                "a cron takes one of a five-field expression and every=<seconds>"
                f" ({'neither' if expression is None else 'both'} given)"
            )
        if every is not None:
            if isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= MAX_EVERY:
                raise ValueError(f"every= must be whole seconds from 1 to {MAX_EVERY}")
            return cls(f"every {every}s", every=every)
        if not isinstance(expression, str) or len(expression.split()) != 5:
            raise ValueError(f"invalid cron expression {str(expression)[:80]!r}: expected 5 fields")
        try:
            CronSim(expression, datetime.now(UTC))
        except CronSimError as exc:
            raise ValueError(f"invalid cron expression {expression!r}: {exc}") from None
        return cls(expression, expression=expression)

    def latest(self, at: datetime) -> datetime:
        """The latest tick at or before ``at`` (UTC)."""
        if self.every is not None:
            seconds = int(at.timestamp()) // self.every * self.every
            return datetime.fromtimestamp(seconds, UTC)
        assert self.expression is not None
        # cronsim walks strictly before its start: a second later includes ``at``.
        return next(CronSim(self.expression, at + timedelta(seconds=1), reverse=True))

    def after(self, at: datetime) -> datetime:
        """The first tick strictly after ``at`` (UTC)."""
        if self.every is not None:
            return self.latest(at) + timedelta(seconds=self.every)
        assert self.expression is not None
        return next(CronSim(self.expression, at))

"""A pure, event-driven model of strata's pin protocol over time, on S3 and GCS.

What is modelled (each step is what the I/O code must do):

1. A trace's object is written first, *expirable*: on S3 with the tag set
   ``strata-expirable=true``, on GCS with ``customTime`` = creation time. An object
   whose index row never commits (``Arrival.indexed=False``) stays so and expires on
   its own.
2. The writer commits the index row; in the same transaction the pins of the handler
   change (the new trace joins the latest ``keep_latest``, the oldest of them leaves)
   and one outbox entry per affected object key is queued.
3. An outbox worker takes entries in order. Applying an entry *reconciles* the object
   with the pin state the database holds **at apply time**: S3 replaces the tag set
   (pinned or expirable); GCS moves ``customTime`` to now if pinned and does nothing if
   not (the lease simply lapses). Because an entry carries no direction, a retry, a
   duplicate or a stale entry cannot pin an object the database no longer pins.
   Faults are injected per attempt: a crash after the commit and before the retag
   (nothing applied), or after the retag and before the ack (applied, then retried:
   re-applying is idempotent). After the given faults, attempts succeed.
4. On GCS a renewal task runs every ``renew_interval`` and moves the ``customTime`` of
   every object the database pins to now. It needs ``renew_interval < retain_days``
   (minus any delay of the task itself, not modelled) or pinned objects can lapse.

Bounds (``R`` = ``traces.retain_days`` days, ``U`` = DB commit of the unpin, ``L`` =
the outbox's worst lag, here ``faults x retry_delay``):

* Never eligible while among the latest ``keep_latest`` — given ``L < R`` on S3 (the
  pin retag lands before ``created + R``) and ``renew_interval < R`` on GCS.
* Never eligible before the SPEC's moment :func:`earliest_eligible` =
  ``max(created + R, U)``.
* S3: eligible by :func:`s3_deadline` = ``max(ceil_midnight(created + R), U + L)``:
  S3 counts age from creation, so an old object is eligible as soon as its tag is back.
* GCS: eligible by :func:`gcs_deadline` = ``U + R``: the last lease write happens while
  the database still pins the object, so no later than ``U``, and the object goes
  ``R`` days after it. The extra delay over the SPEC's moment is therefore at most
  ``R`` (an old trace displaced right after a renewal), and at least
  ``R - renew_interval`` for a trace pinned across a renewal.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Literal, TypeVar

from lifecycle_policies.evaluate import (
    DAY,
    GcsObject,
    S3Object,
    gcs_eligible_from,
    s3_eligible_from,
    s3_expiration_time,
)
from lifecycle_policies.layout import key_prefixes
from lifecycle_policies.render import render_gcs, render_s3
from trace_store.keys import EXPIRABLE_TAG, PINNED_TAG, TAG_TRUE, trace_key

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from lifecycle_policies.policy import Policy

S = TypeVar("S")
Provider = Literal["s3", "gcs"]


def s3_tags(*, pinned: bool) -> dict[str, str]:
    """The complete tag set of a strata object on S3 in the given pin state."""
    return {PINNED_TAG: TAG_TRUE} if pinned else {EXPIRABLE_TAG: TAG_TRUE}


@dataclass(frozen=True, slots=True)
class Arrival:
    """A trace reaching the writer: its handler, its time, and whether its index row
    commits (``False`` models a crash between the object put and the index commit)."""

    handler: str
    at: datetime
    indexed: bool = True


class Fault(Enum):
    """The outcome of one outbox attempt."""

    NONE = "none"
    CRASH_BEFORE_APPLY = "crash after commit, before retag"
    CRASH_BEFORE_ACK = "crash after retag, before ack"


@dataclass(frozen=True, slots=True)
class Outbox:
    """The outbox worker: a failed attempt is retried ``retry_delay`` later; attempt
    number *i* has outcome ``faults[i]``, and every attempt after them succeeds."""

    retry_delay: timedelta = timedelta(minutes=1)
    faults: tuple[Fault, ...] = ()

    @property
    def max_lag(self) -> timedelta:
        """Worst delay between queuing an entry and its successful application."""
        return sum(fault is not Fault.NONE for fault in self.faults) * self.retry_delay


@dataclass(frozen=True, slots=True)
class TraceFate:
    """What happened to one trace object in a simulation (times ``None`` = not within
    the simulated window). ``unpinned_at`` is the DB commit that took it out of the
    latest N (its creation time if it never was in them)."""

    trace_id: str
    handler: str
    key: str
    created: datetime
    indexed: bool
    unpinned_at: datetime | None
    s3_eligible_at: datetime | None
    gcs_eligible_at: datetime | None
    gcs_last_lease: datetime


@dataclass(frozen=True, slots=True)
class Simulation:
    """The outcome of :func:`simulate`."""

    policy: Policy
    outbox: Outbox
    renew_interval: timedelta
    until: datetime
    traces: tuple[TraceFate, ...]

    def pinned_at(self, at: datetime) -> frozenset[str]:
        """Trace ids the database pins at ``at``."""
        return frozenset(
            fate.trace_id
            for fate in self.traces
            if fate.indexed
            and fate.created <= at
            and (fate.unpinned_at is None or at < fate.unpinned_at)
        )

    def eligible_while_pinned(self, provider: Provider) -> list[TraceFate]:
        """Traces the provider could delete while the database still pinned them.
        Empty whenever the protocol's preconditions hold."""
        return [
            fate
            for fate in self.traces
            if (when := _eligible_at(fate, provider)) is not None
            and (fate.unpinned_at is None or when < fate.unpinned_at)
        ]


def latest_per_handler(
    arrivals: Sequence[Arrival], keep_latest: int, at: datetime
) -> frozenset[int]:
    """Indices (into ``arrivals``) of the traces pinned at ``at``: per handler, the
    ``keep_latest`` newest indexed arrivals up to ``at`` (ties in time by position)."""
    newest: dict[str, list[int]] = defaultdict(list)
    for index in _commit_order(arrivals):
        arrival = arrivals[index]
        if arrival.indexed and arrival.at <= at:
            newest[arrival.handler].append(index)
    return frozenset(i for indices in newest.values() for i in indices[-keep_latest:])


def earliest_eligible(created: datetime, unpinned_at: datetime, policy: Policy) -> datetime:
    """SPEC §10: eligible once older than ``retain_days`` and no longer pinned."""
    return max(created + policy.traces_retain_days * DAY, unpinned_at)


def s3_deadline(
    created: datetime, unpinned_at: datetime, policy: Policy, outbox_lag: timedelta
) -> datetime:
    """Latest moment a trace unpinned at ``unpinned_at`` is eligible on S3, when the
    outbox applies entries within ``outbox_lag``."""
    return max(s3_expiration_time(created, policy.traces_retain_days), unpinned_at + outbox_lag)


def gcs_deadline(created: datetime, unpinned_at: datetime, policy: Policy) -> datetime:
    """Latest moment a trace unpinned at ``unpinned_at`` is eligible on GCS: at most
    ``retain_days`` after its last lease renewal, which is no later than the unpin."""
    return max(created, unpinned_at) + policy.traces_retain_days * DAY


def trace_id_for(index: int) -> str:
    """The deterministic trace id the simulation gives arrival number ``index``."""
    return str(uuid.UUID(int=index + 1))


def simulate(
    arrivals: Sequence[Arrival],
    policy: Policy,
    *,
    outbox: Outbox | None = None,
    renew_interval: timedelta = timedelta(hours=12),
    until: datetime | None = None,
    canvas: str = "demo",
    prefix: str = "",
) -> Simulation:
    """Run the pin protocol over ``arrivals`` until ``until`` (by default long enough
    for every unpinned trace to reach its deadline) and report each trace's fate."""
    outbox = outbox or Outbox()
    if renew_interval <= timedelta(0):
        raise ValueError("renew_interval must be positive")
    if not arrivals:
        return Simulation(
            policy, outbox, renew_interval, until or datetime.min.replace(tzinfo=UTC), ()
        )
    order = _commit_order(arrivals)
    start = arrivals[order[0]].at
    last = arrivals[order[-1]].at
    if until is None:
        until = last + (policy.traces_retain_days + 2) * DAY + outbox.max_lag + renew_interval

    state = _World(policy, outbox, arrivals, canvas, prefix)
    events: list[tuple[datetime, int, int, Callable[[datetime], None]]] = []
    tiebreak = itertools.count()

    def schedule(at: datetime, priority: int, action: Callable[[datetime], None]) -> None:
        # Same instant: commits, then outbox attempts, then renewals. A renewal at the
        # instant of an unpin therefore already sees the unpin.
        if at <= until:
            heapq.heappush(events, (at, priority, next(tiebreak), action))

    def commit(index: int) -> Callable[[datetime], None]:
        def run(now: datetime) -> None:
            if state.commit(index, now) and not state.worker_busy:
                state.worker_busy = True
                schedule(now, 1, attempt)

        return run

    def attempt(now: datetime) -> None:
        if not state.attempt(now):
            schedule(now + outbox.retry_delay, 1, attempt)
        elif state.queue:
            schedule(now, 1, attempt)
        else:
            state.worker_busy = False

    def renew(now: datetime) -> None:
        state.renew(now)
        schedule(now + renew_interval, 2, renew)

    for index in order:
        schedule(arrivals[index].at, 0, commit(index))
    schedule(start, 2, renew)
    while events:
        now, _, _, action = heapq.heappop(events)
        action(now)
    fates = tuple(state.fate(index, until) for index in range(len(arrivals)))
    return Simulation(policy, outbox, renew_interval, until, fates)


def _commit_order(arrivals: Sequence[Arrival]) -> list[int]:
    return sorted(range(len(arrivals)), key=lambda i: (arrivals[i].at, i))


def _eligible_at(fate: TraceFate, provider: Provider) -> datetime | None:
    if provider == "s3":
        return fate.s3_eligible_at
    if provider == "gcs":
        return fate.gcs_eligible_at
    raise ValueError(f"unknown provider {provider!r}")


@dataclass
class _World:
    """Mutable state of one run: the database, the outbox and both buckets."""

    policy: Policy
    outbox: Outbox
    arrivals: Sequence[Arrival]
    canvas: str
    prefix: str
    queue: deque[int] = field(default_factory=deque)
    worker_busy: bool = False
    attempts: int = 0
    pinned: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    pinned_set: set[int] = field(default_factory=set)
    unpinned_at: dict[int, datetime] = field(default_factory=dict)
    # Per object: the times its state changed, and the state from then on.
    s3_history: dict[int, list[tuple[datetime, bool]]] = field(default_factory=dict)
    gcs_history: dict[int, list[tuple[datetime, datetime]]] = field(default_factory=dict)

    def commit(self, index: int, now: datetime) -> bool:
        """Write the object, then (if indexed) commit the row, pins and outbox."""
        self.s3_history[index] = [(now, False)]
        self.gcs_history[index] = [(now, now)]
        if not self.arrivals[index].indexed:
            self.unpinned_at[index] = now
            return False
        latest = self.pinned[self.arrivals[index].handler]
        latest.append(index)
        self.pinned_set.add(index)
        self.queue.append(index)
        if len(latest) > self.policy.keep_latest:
            displaced = latest.popleft()
            self.pinned_set.discard(displaced)
            self.unpinned_at[displaced] = now
            self.queue.append(displaced)
        return True

    def attempt(self, now: datetime) -> bool:
        """One outbox attempt on the head entry; ``True`` if it was acknowledged."""
        fault = (
            self.outbox.faults[self.attempts]
            if self.attempts < len(self.outbox.faults)
            else Fault.NONE
        )
        self.attempts += 1
        if fault is Fault.CRASH_BEFORE_APPLY:
            return False
        self.reconcile(self.queue[0], now)
        if fault is Fault.CRASH_BEFORE_ACK:
            return False
        self.queue.popleft()
        return True

    def reconcile(self, index: int, now: datetime) -> None:
        pinned = index in self.pinned_set
        if self.s3_history[index][-1][1] != pinned:
            self.s3_history[index].append((now, pinned))
        if pinned:
            self._lease(index, now)

    def renew(self, now: datetime) -> None:
        for index in self.pinned_set:
            self._lease(index, now)

    def _lease(self, index: int, now: datetime) -> None:
        # customTime only moves forward.
        if now > self.gcs_history[index][-1][1]:
            self.gcs_history[index].append((now, now))

    def fate(self, index: int, until: datetime) -> TraceFate:
        arrival = self.arrivals[index]
        trace_id = trace_id_for(index)
        key = key_prefixes(self.prefix).root + trace_key(self.canvas, arrival.handler, trace_id)
        created = self.s3_history[index][0][0]
        s3_config = render_s3(self.policy, self.prefix)
        gcs_config = render_gcs(self.policy, self.prefix)
        s3_at = _first_eligible(
            self.s3_history[index],
            until,
            lambda pinned: s3_eligible_from(
                s3_config, S3Object(key, created, s3_tags(pinned=pinned))
            ),
        )
        gcs_at = _first_eligible(
            self.gcs_history[index],
            until,
            lambda custom_time: gcs_eligible_from(gcs_config, GcsObject(key, created, custom_time)),
        )
        return TraceFate(
            trace_id=trace_id,
            handler=arrival.handler,
            key=key,
            created=created,
            indexed=arrival.indexed,
            unpinned_at=self.unpinned_at.get(index),
            s3_eligible_at=s3_at,
            gcs_eligible_at=gcs_at,
            gcs_last_lease=self.gcs_history[index][-1][1],
        )


def _first_eligible(
    history: list[tuple[datetime, S]],
    until: datetime,
    eligible_from: Callable[[S], datetime | None],
) -> datetime | None:
    """First instant at which the object, in the state it had then, was eligible."""
    for position, (since, state) in enumerate(history):
        end = history[position + 1][0] if position + 1 < len(history) else None
        start = eligible_from(state)
        if start is None:
            continue
        moment = max(start, since)
        if (end is None and moment <= until) or (end is not None and moment < end):
            return moment
    return None

"""The pin protocol over time (SPEC §10), on both providers' lifecycle semantics.

Random arrivals across handlers and days, with crashes injected between the steps of a
pin change (after the DB commit and before the retag; after the retag and before the
outbox ack), show: the latest N per handler are never eligible for expiry, and every
other trace becomes eligible within the documented bound, never before the SPEC's
moment. Two counter-examples show the checks have teeth: the bounds rest on the
outbox lag and the GCS renewal interval staying below ``retain_days``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from lifecycle_policies.policy import Policy
from tests.pin_model import (
    Arrival,
    Fault,
    Outbox,
    earliest_eligible,
    gcs_deadline,
    latest_per_handler,
    s3_deadline,
    simulate,
    trace_id_for,
)

T0 = datetime(2024, 3, 1, 10, 30, tzinfo=UTC)
HANDLERS = ("get_user", "create-order", "files")


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Policy, list[Arrival], Outbox, timedelta]:
    retain_days = draw(st.integers(1, 4))
    policy = Policy(traces_retain_days=retain_days, keep_latest=draw(st.integers(1, 4)))
    minutes = st.one_of(st.integers(0, 90), st.integers(0, 10 * 24 * 60))  # bursts and days
    arrivals = draw(
        st.lists(
            st.builds(
                Arrival,
                handler=st.sampled_from(HANDLERS),
                at=minutes.map(lambda m: T0 + timedelta(minutes=m)),
                # Now and then the index commit never happens: an orphan object.
                indexed=st.integers(0, 9).map(lambda n: n > 0),
            ),
            max_size=40,
        )
    )
    # At most 12 failed attempts, each retried within 90 minutes: the outbox lag stays
    # under a day, below any retain_days.
    outbox = Outbox(
        retry_delay=timedelta(minutes=draw(st.integers(1, 90))),
        faults=tuple(draw(st.lists(st.sampled_from(Fault), max_size=12))),
    )
    renew_interval = timedelta(hours=draw(st.integers(1, 24 * retain_days - 1)))
    return policy, arrivals, outbox, renew_interval


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_latest_n_never_eligible_and_the_rest_within_the_bound(
    scenario: tuple[Policy, list[Arrival], Outbox, timedelta],
) -> None:
    policy, arrivals, outbox, renew_interval = scenario
    sim = simulate(arrivals, policy, outbox=outbox, renew_interval=renew_interval)

    # Never eligible while the database pins it, on either provider.
    assert sim.eligible_while_pinned("s3") == []
    assert sim.eligible_while_pinned("gcs") == []

    # The database's pins are exactly the latest N per handler, at every arrival.
    for moment in sorted({a.at for a in arrivals} | {sim.until}):
        expected = {
            trace_id_for(i) for i in latest_per_handler(arrivals, policy.keep_latest, moment)
        }
        assert sim.pinned_at(moment) == expected

    for fate in sim.traces:
        if fate.unpinned_at is None:  # still among the latest N at the end
            assert fate.s3_eligible_at is None
            assert fate.gcs_eligible_at is None
            continue
        earliest = earliest_eligible(fate.created, fate.unpinned_at, policy)
        assert fate.s3_eligible_at is not None
        assert earliest <= fate.s3_eligible_at
        assert fate.s3_eligible_at <= s3_deadline(
            fate.created, fate.unpinned_at, policy, outbox.max_lag
        )
        assert fate.gcs_eligible_at is not None
        assert earliest <= fate.gcs_eligible_at
        assert fate.gcs_eligible_at <= gcs_deadline(fate.created, fate.unpinned_at, policy)
        # The lease is never renewed after the unpin commits.
        assert fate.gcs_last_lease <= fate.unpinned_at


def test_fifteen_traces_with_crashes_keep_exactly_the_ten_newest() -> None:
    policy = Policy.default()
    arrivals = [Arrival("get_user", T0 + n * timedelta(hours=1)) for n in range(15)]
    outbox = Outbox(
        retry_delay=timedelta(minutes=5),
        faults=(Fault.CRASH_BEFORE_APPLY, Fault.NONE, Fault.CRASH_BEFORE_ACK) * 4,
    )
    sim = simulate(arrivals, policy, outbox=outbox)
    newest = {trace_id_for(n) for n in range(5, 15)}
    oldest = {trace_id_for(n) for n in range(5)}

    def eligible(provider: str, at: datetime) -> set[str]:
        return {
            fate.trace_id
            for fate in sim.traces
            if (when := getattr(fate, f"{provider}_eligible_at")) is not None and when <= at
        }

    last = arrivals[-1].at
    for provider in ("s3", "gcs"):
        assert eligible(provider, last + timedelta(days=1)) == set()
        assert eligible(provider, last + timedelta(days=8)) == oldest
        assert eligible(provider, sim.until) == oldest
    assert sim.pinned_at(sim.until) == newest


def test_latest_per_handler_counts_each_handler_and_skips_orphans() -> None:
    arrivals = [
        Arrival("a", T0),
        Arrival("b", T0),
        Arrival("a", T0 + timedelta(hours=1)),
        Arrival("a", T0 + timedelta(hours=2), indexed=False),
        Arrival("a", T0 + timedelta(hours=3)),
    ]
    assert latest_per_handler(arrivals, 2, T0 + timedelta(hours=5)) == {1, 2, 4}
    assert latest_per_handler(arrivals, 2, T0 + timedelta(minutes=30)) == {0, 1}


def test_counterexample_an_outbox_stalled_past_retention_loses_a_pin_on_s3() -> None:
    # 40 failed attempts an hour apart: the pin retag lands after the expirable object
    # reached its S3 expiration (created + 1 day, rounded up to midnight).
    policy = Policy(traces_retain_days=1, keep_latest=1)
    stalled = Outbox(retry_delay=timedelta(hours=1), faults=(Fault.CRASH_BEFORE_APPLY,) * 40)
    sim = simulate([Arrival("a", T0)], policy, outbox=stalled)
    assert [fate.trace_id for fate in sim.eligible_while_pinned("s3")] == [trace_id_for(0)]
    assert sim.eligible_while_pinned("gcs") == []  # GCS pins by lease renewal instead


def test_counterexample_gcs_renewal_slower_than_retention_loses_a_pin() -> None:
    policy = Policy(traces_retain_days=1, keep_latest=1)
    sim = simulate([Arrival("a", T0)], policy, renew_interval=timedelta(hours=36))
    lost = sim.eligible_while_pinned("gcs")
    assert [fate.trace_id for fate in lost] == [trace_id_for(0)]
    assert lost[0].gcs_eligible_at == T0 + timedelta(days=1)
    assert sim.eligible_while_pinned("s3") == []

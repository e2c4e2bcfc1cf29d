"""Acceptance 3, small: a scanner on loopback (wrk, distinct paths) against a real
``strata serve`` process. ``python -m bench.unmatched`` runs the 100 000-path version."""

from __future__ import annotations

from bench.unmatched import run
from trace_store.db.unmatched import PATHS_PER_CANVAS

PATHS = 5000


def test_a_scan_of_distinct_paths_gets_404s_batched_writes_and_a_bounded_summary(
    database_url: str,
) -> None:
    figures = run(database_url, PATHS, idle_seconds=1.0)
    assert (figures.sent, figures.got_404, figures.other) == (PATHS, PATHS, 0)
    # Every 404 was stored or, with the writer queue half full, shed and counted.
    assert figures.stored + figures.shed == PATHS
    assert figures.stored >= PATHS_PER_CANVAS
    assert figures.dropped == 0
    # Batched: a writer batch (one transaction) carries many requests.
    assert 0 < figures.batches <= figures.stored / 10
    assert figures.transactions - figures.idle_transactions < figures.stored / 10
    assert figures.tuples_inserted < figures.stored * 1.5
    # Bounded: the latest paths only, each seen once.
    assert figures.summary_rows == PATHS_PER_CANVAS
    assert figures.summary_count == PATHS_PER_CANVAS

"""Garbage-collector settings for long-running strata processes.

Traces waiting to be written keep many young container objects alive (call records,
argument tuples, headers). With CPython's default thresholds (700, 10, 10) each of
them is scanned over and over and soon promoted, and the full collections that follow
walk every module and object loaded at start-up. Measured with 5,000 traces queued:
recording a 20-call request cost 61-72 µs with the defaults and 20-31 µs with this
tuning (``STRATA_GC=default`` turns it off).

The middle threshold is small on purpose: a middle-generation collection walks every
young object still alive or not yet found dead, and with 20 young collections between
them that was up to a million (cyclic garbage of recursive errors, traces of 10,000
calls), one pause of 100-180 ms. Collecting it every second young collection keeps
each pause near 20 ms and at most ~55 ms in ``bench.stall``, at no cost in throughput.
"""

from __future__ import annotations

import gc

#: Young-generation threshold: cyclic garbage is still collected, just in larger steps;
#: the middle generation every second time (see above).
THRESHOLDS = (50_000, 2, 100)


def tune() -> None:
    """Freeze everything loaded so far out of the collector's view; raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)

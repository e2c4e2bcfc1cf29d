"""Prometheus metrics of one strata process, in a registry of its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


def _registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


@dataclass
class Metrics:
    """Every metric strata exports. One instance per process (tests make several)."""

    registry: CollectorRegistry = field(default_factory=_registry)

    def count_request(self, canvas: str, outcome: str) -> None:
        """Count one grand-user request; the labelled child is looked up once, not per call
        (``labels()`` costs ~1.4 µs on the request path). Canvas names are the loaded
        canvases' (and ``-``), so the cache stays small."""
        child = self._request_children.get((canvas, outcome))
        if child is None:
            child = self._request_children[(canvas, outcome)] = self.requests.labels(
                canvas, outcome
            )
        child.inc()

    def __post_init__(self) -> None:
        self._request_children: dict[tuple[str, str], Any] = {}
        r = self.registry
        self.requests = Counter(
            "strata_requests", "Grand-user requests answered", ["canvas", "outcome"], registry=r
        )
        self.malformed_requests = Counter(
            "strata_malformed_requests",
            "Requests answered by the HTTP layer itself: unparsable, or an error that"
            " escaped the app",
            ["port", "status"],
            registry=r,
        )
        self.traces_enqueued = Counter(
            "strata_traces_enqueued", "Traces handed to the writer", registry=r
        )
        self.traces_dropped = Counter(
            "strata_traces_dropped",
            "Traces dropped instead of slowing requests",
            ["reason"],
            registry=r,
        )
        self.traces_written = Counter(
            "strata_traces_written", "Base objects written to the store", ["kind"], registry=r
        )
        self.traces_indexed = Counter(
            "strata_traces_indexed", "Index rows committed to Postgres", registry=r
        )
        self.writer_retries = Counter(
            "strata_writer_retries", "Writer retries after a failure", ["stage"], registry=r
        )
        self.writer_restarts = Counter(
            "strata_writer_restarts",
            "Writer processes started again after one died",
            registry=r,
        )
        self.queue_depth = Gauge(
            "strata_writer_queue_depth",
            "Traces held and not yet stored and indexed: in memory and in the trace log",
            registry=r,
        )
        self.log_bytes = Gauge(
            "strata_log_bytes",
            "Bytes in the trace log not yet committed by the writer (STRATA_LOG_BYTES bounds it)",
            registry=r,
        )
        self.log_traces = Gauge(
            "strata_log_traces",
            "Traces in the trace log not yet committed by the writer",
            registry=r,
        )
        self.queue_bytes = Gauge(
            "strata_writer_queue_bytes", "Body bytes held by queued traces", registry=r
        )
        self.batch_seconds = Histogram(
            "strata_writer_batch_seconds",
            "Time to encode, store and index one batch",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.worker_attempts = Counter(
            "strata_worker_attempts",
            "Worker attempts by queue and outcome (ok, error: retried, dead: out of attempts)",
            ["queue", "outcome"],
            registry=r,
        )
        self.queue_messages = Gauge(
            "strata_queue_messages",
            "Messages held in the queues of the loaded canvases, by state (ready, running,"
            " dead), as the workers last counted them",
            ["canvas", "queue", "state"],
            registry=r,
        )
        self.worker_lag = Histogram(
            "strata_worker_lag_seconds",
            "Seconds from a message's enqueue (or its retry time) to a worker taking it",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.cron_runs = Counter(
            "strata_cron_runs", "Cron ticks this process ran, by handler", ["handler"], registry=r
        )
        self.cron_missed = Counter(
            "strata_cron_missed",
            "Cron ticks that came while no process ran, run late at start-up (only the latest)",
            ["handler"],
            registry=r,
        )
        self.batch_size = Histogram(
            "strata_writer_batch_size",
            "Traces per writer batch",
            registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        )

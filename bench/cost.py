"""Object-store requests and dollars per trace, before and after segments and settled
pins, counted by the servers themselves: S3 on moto, GCS on gcp-storage-emulator.

``python -m bench.cost [--quiet-traces 120] [--busy-seconds 6] [--busy-rate 500]
[--mix-seconds 6] [--mix-rate 1000] [--gcs-scale 0.2] [--stores s3,gcs]``

Every run goes through the real writer, its commit (index rows, pins, outbox) and a
real :class:`~trace_store.db.outbox.PinOutbox`, on a fresh database and a bucket of
its own, in two setups:

* before: ``WriterConfig(batch_size=256, batch_wait=0.02, segment_bytes=0)`` (one
  object per trace) and an outbox that applies entries at once (``settle=0``);
* after: ``WriterConfig()`` (a handler's traces of a batch in one segment, batches
  every 0.4 s) and ``settle=Timings().pin_settle`` (5 s), as ``serve`` runs it.

Three loads:

* quiet: one handler, 1 request a minute, in simulated time. Each trace is its own
  batch: a fresh writer is stopped right after the trace is submitted, which takes the
  batch at once (the 0.4 s ``batch_wait`` of a lone trace changes when, not what, it
  writes). Then the minute passes for the outbox: every queued entry's ``queued_at``
  is moved back a minute (past any ``settle``, as it would be by the next trace) and
  the outbox drains. So each trace's pin changes are applied in a pass of their own,
  as ``serve``'s worker (1 s polls, 5 s settle) applies them for traces a minute apart.
* busy: one handler at ``--busy-rate`` traces a second for ``--busy-seconds``;
* mix: 50 handlers at ``--mix-rate`` a second in total (an equal share each,
  round-robin) for ``--mix-seconds``.

  Both in real time (the due traces submitted every 20 ms), with the outbox worker
  polling every second as in ``serve``. At the end the writer is flushed and the
  worker keeps running for ``settle`` and then until no entry is left, so every pin
  is applied and counted. Where the store cannot keep up (one PUT a trace tops out
  near 360/s on moto on two cores), the writer's bounded queue sheds traces: the
  table counts the traces indexed, and a note says how many were offered.

Then the editor's view: the latest 10 traces of each handler are opened the way the
editor fetches them (one GET of the frame, ranged within a segment), reported per
opened trace, apart from the writes.

Requests are counted **from each server's own access log** (werkzeug's for moto,
the emulator's request log; both on stderr, sent to a file), per bucket and kind:
object PUT (GCS: insert), tagging PUT (GCS: metadata PATCH, a lease renewal), and
other (HEAD, metadata GETs, lists); GETs of objects apart. The stores' clients count
what they send as a cross-check (botocore ``before-send``; a ``requests`` response
hook on the GCS client), and the output prints both totals. On the development runs
they agreed exactly (S3: 15,422 = 15,422; GCS: 3,712 = 3,712), except once when the
overloaded emulator made the writer time out: the server logged 47 requests whose
answers the client had given up on (GCS 11,117 against 11,070).

On GCS pins are leases (``customTime``): a fresh object needs no pin request and an
unpin writes nothing, so GCS pays for the PUTs only (and one bucket-metadata GET a
client, google-cloud-storage's bucket cache: "other"). The emulator rewrites its
whole metadata file on every insert (O(objects) per PUT, across buckets), so it is
restarted for every run, and its paced runs last ``--gcs-scale`` of the S3 ones at the
same rates: at full length the "before" mix takes minutes and times the writer out.
GCS dollars are computed from the GCS counts of those shorter runs.

Prices: published list prices, US regions, Standard storage (see the constants).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import fresh_database, postgres
from lifecycle_policies.policy import Policy
from tests.fixtures_cloud import (
    MOTO_KEY,
    S3Server,
    _stop,
    _venv_tool,
    _wait_for_port,
    free_port,
    gcs_raw_client,
)
from tests.fixtures_postgres import count_traces
from tests.pin_support import pending
from trace_store import db
from trace_store.backends.base import ObjectStore
from trace_store.backends.gcs import GCSStore
from trace_store.backends.gcs_client import GCSSettings
from trace_store.backends.s3 import S3Store
from trace_store.backends.s3_client import S3Settings
from trace_store.db.index import list_traces
from trace_store.db.outbox import PinOutbox
from trace_store.metrics import Metrics
from trace_store.retention import Timings, renew_interval
from trace_store.writer.batch_writer import TraceWriter
from trace_store.writer.queue import WriterConfig

# Published list prices, US regions, Standard storage, in dollars per 1,000 requests,
# as of 2026-12-01: GCS from cloud.google.com/storage/pricing-examples ("Class A
# operations * $0.0050 per 1,000", "Class B operations * $0.0004 per 1,000"); S3
# Standard (US East) $0.005 per 1,000 PUT/COPY/POST/LIST and $0.0004 per 1,000 GET,
# the figures of aws.amazon.com/s3/pricing as quoted by third parties (not read there).
#: S3 PUT, COPY, POST, LIST; PutObjectTagging is billed as a PUT.
S3_PUT_PER_1000 = 0.005
#: S3 GET, HEAD (and every other request not listed above).
S3_GET_PER_1000 = 0.0004
#: GCS Class A: object insert, patch (a lease renewal), rewrite, list.
GCS_CLASS_A_PER_1000 = 0.005
#: GCS Class B: object get, metadata get.
GCS_CLASS_B_PER_1000 = 0.0004

CANVAS = "bench"
TIMINGS = Timings()
#: As ``serve``: a lease younger than this needs no renewal request.
LEASE_FRESH_FOR = renew_interval(Policy.default())
#: The quiet handler's gap between two traces (simulated).
QUIET_GAP = timedelta(minutes=1)
#: Traces of each handler opened after writing (the editor's first page).
OPENED = 10
#: How long the outbox may take to apply everything after the settle wait.
DRAIN_TIMEOUT = 60.0
#: Request kinds of the access logs; "put", "tag" and "other" are Class A (S3: the PUT
#: tier), "get" and "meta" Class B (S3: the GET tier).
CLASS_A = ("put", "tag", "other")
CLASS_B = ("get", "meta")


# -- what runs --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setup:
    """A writer and outbox configuration."""

    name: str
    writer: WriterConfig
    settle: timedelta


BEFORE = Setup(
    "before", WriterConfig(batch_size=256, batch_wait=0.02, segment_bytes=0), timedelta(0)
)
AFTER = Setup("after", WriterConfig(), TIMINGS.pin_settle)
SETUPS = (BEFORE, AFTER)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A load: ``quiet_traces`` a minute apart in simulated time, or ``rate`` traces a
    second over ``handlers`` for ``seconds`` of real time."""

    key: str
    label: str
    handlers: tuple[str, ...]
    rate: float = 0.0
    seconds: float = 0.0
    quiet_traces: int = 0


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    """The quiet, busy and mix loads the flags describe."""
    mix = tuple(f"h{i:02d}" for i in range(50))
    return [
        Scenario("quiet", "quiet (1/min)", ("quiet",), quiet_traces=args.quiet_traces),
        Scenario(
            "busy", f"busy ({args.busy_rate:g}/s)", ("busy",), args.busy_rate, args.busy_seconds
        ),
        Scenario(
            "mix", f"mix (50 × {args.mix_rate / 50:g}/s)", mix, args.mix_rate, args.mix_seconds
        ),
    ]


@dataclass(frozen=True, slots=True)
class Run:
    """What one scenario cost in one setup, as the server logged it."""

    offered: int
    traces: int
    writes: Counter[str]
    opened: int
    reads: Counter[str]
    client_requests: int
    left: int
    #: Traces were offered for this long; the run (writes, flush, settle) took ``seconds``.
    offered_for: float
    seconds: float


# -- counting requests from the servers' logs --------------------------------------------

_REQUEST_LINE = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" \d{3}')
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_GCS_PATH = re.compile(r"/(upload/|download/)?storage/v1/b/([^/?]+)(?:/o(/[^?]+)?)?")

Parse = Callable[[str, str], tuple[str, str] | None]


def s3_request(method: str, target: str) -> tuple[str, str] | None:
    """(bucket, kind) of an S3 path-style request; ``None`` for creating a bucket."""
    path, _, query = target.partition("?")
    bucket, _, key = path.lstrip("/").partition("/")
    if not key:
        return None if method == "PUT" else (bucket, "other")
    if method == "PUT":
        return bucket, "tag" if "tagging" in query.split("&") else "put"
    if method == "GET" and "tagging" not in query:
        return bucket, "get"
    return bucket, "meta" if method == "HEAD" else "other"


def gcs_request(method: str, target: str) -> tuple[str, str] | None:
    """(bucket, kind) of a GCS JSON API request; ``None`` for project-level calls."""
    path, _, query = target.partition("?")
    match = _GCS_PATH.fullmatch(path)
    if match is None:
        return None
    endpoint, bucket, name = match.groups()
    if endpoint == "upload/":
        return bucket, "put"
    if name and method == "GET":
        return bucket, "get" if endpoint == "download/" or "alt=media" in query else "meta"
    if name and method == "PATCH":
        return bucket, "tag"
    if not name and not endpoint and method == "GET":
        return bucket, "meta"  # bucket metadata (the client library's cache fetches it)
    return bucket, "other"


@dataclass(frozen=True, slots=True)
class ServerLog:
    """A server's access log on disk, read back per bucket."""

    path: Path
    parse: Parse

    def counts(self, bucket: str) -> Counter[str]:
        """Requests to ``bucket`` so far, by kind."""
        counts: Counter[str] = Counter()
        for line in self.path.read_text(errors="replace").splitlines():
            match = _REQUEST_LINE.search(_ANSI.sub("", line))
            hit = self.parse(match[1], match[2]) if match else None
            if hit is not None and hit[0] == bucket:
                counts[hit[1]] += 1
        return counts


class Tally:
    """Requests a client sent (a thread-safe counter for its hooks)."""

    def __init__(self) -> None:
        self.requests = 0
        self._lock = threading.Lock()

    def hook(self, *_args: Any, **_kwargs: Any) -> None:
        with self._lock:
            self.requests += 1


# -- the stores -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prices:
    """Dollars per request."""

    class_a: float
    class_b: float

    def dollars(self, counts: Counter[str]) -> float:
        return (
            sum(counts[k] for k in CLASS_A) * self.class_a
            + sum(counts[k] for k in CLASS_B) * self.class_b
        )


@dataclass(frozen=True, slots=True)
class Backend:
    """A running store server: its access log, and stores on fresh buckets of it."""

    log: ServerLog
    new_store: Callable[[str], tuple[ObjectStore, Tally]]


@dataclass(frozen=True, slots=True)
class StoreKind:
    """A kind of store, its prices, and how its server is started."""

    title: str
    prices: Prices
    launch: Callable[[Path], contextlib.AbstractContextManager[Backend]]
    #: A fresh server for every run (the GCS emulator slows down as it fills up).
    per_run: bool = False
    #: Paced scenarios last this fraction of their ``seconds`` here.
    scale: float = 1.0


def _server(
    command: list[str], port: int, workdir: Path, name: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``command`` with its stderr (the access log) to a new file in ``workdir``."""
    fd, log = tempfile.mkstemp(dir=workdir, prefix=f"{name}-", suffix=".log")
    with os.fdopen(fd, "wb") as sink:
        proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=sink, cwd=workdir,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    _wait_for_port(proc, port, name)
    return proc, Path(log)


@contextlib.contextmanager
def moto(workdir: Path) -> Iterator[Backend]:
    """moto_server on a free port, logging each request (werkzeug) to ``workdir``."""
    port = free_port()
    command = [_venv_tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    proc, log = _server(command, port, workdir, "moto_server")
    server = S3Server(f"http://127.0.0.1:{port}", *MOTO_KEY)
    os.environ.update(server.env())

    def new_store(bucket: str) -> tuple[ObjectStore, Tally]:
        server.client().create_bucket(Bucket=bucket)
        store = S3Store(S3Settings(bucket, "", server.endpoint, "us-east-1"))
        tally = Tally()
        store.client.meta.events.register("before-send.s3", tally.hook)
        return store, tally

    try:
        yield Backend(ServerLog(log, s3_request), new_store)
    finally:
        _stop(proc)


@contextlib.contextmanager
def gcs_emulator(workdir: Path) -> Iterator[Backend]:
    """gcp-storage-emulator (in memory) on a free port, logging each request to
    ``workdir``."""
    port = free_port()
    command = [_venv_tool("gcp-storage-emulator"), "start", "--host", "127.0.0.1",
               "--port", str(port), "--in-memory"]  # fmt: skip
    proc, log = _server(command, port, workdir, "gcp-storage-emulator")
    endpoint = f"http://127.0.0.1:{port}"
    raw = gcs_raw_client(endpoint)

    def new_store(bucket: str) -> tuple[ObjectStore, Tally]:
        raw.create_bucket(bucket)
        store = GCSStore(GCSSettings(bucket, emulator_host=endpoint))
        tally = Tally()
        store.client._http.hooks["response"].append(tally.hook)
        return store, tally

    try:
        yield Backend(ServerLog(log, gcs_request), new_store)
    finally:
        _stop(proc)


def store_kinds(gcs_scale: float) -> dict[str, StoreKind]:
    """S3 on moto and GCS on the emulator, by name."""
    return {
        "s3": StoreKind("S3 on moto", Prices(S3_PUT_PER_1000 / 1000, S3_GET_PER_1000 / 1000), moto),
        "gcs": StoreKind(
            "GCS on gcp-storage-emulator",
            Prices(GCS_CLASS_A_PER_1000 / 1000, GCS_CLASS_B_PER_1000 / 1000),
            gcs_emulator,
            per_run=True,
            scale=gcs_scale,
        ),
    }


# -- one run ----------------------------------------------------------------------------


def _outbox(pool: db.Pool, store: ObjectStore, setup: Setup) -> PinOutbox:
    return PinOutbox(pool, store, lease_fresh_for=LEASE_FRESH_FOR, settle=setup.settle)


async def _quiet(store: ObjectStore, pool: db.Pool, setup: Setup, scenario: Scenario) -> int:
    outbox = _outbox(pool, store, setup)
    start = datetime.now(UTC) - QUIET_GAP * scenario.quiet_traces
    for i in range(scenario.quiet_traces):
        writer = TraceWriter(store, pool, Metrics(), config=setup.writer)
        writer.start()
        writer.submit(pending(CANVAS, scenario.handlers[0], start + QUIET_GAP * i))
        await writer.stop()  # takes the lone trace's batch at once, writes and commits it
        await pool.execute(
            "UPDATE pin_outbox SET queued_at = queued_at - $1::interval", QUIET_GAP
        )  # the minute until the next trace passes: every entry has settled
        await outbox.drain()
    return scenario.quiet_traces


async def _submit(writer: TraceWriter, scenario: Scenario, seconds: float) -> int:
    """Offer ``scenario.rate`` traces a second, round-robin over its handlers, for
    ``seconds``; returns how many were offered (the writer sheds what does not fit)."""
    handlers = scenario.handlers
    start = datetime.now(UTC)
    offered = 0
    began = time.perf_counter()
    while (elapsed := time.perf_counter() - began) < seconds:
        while offered < int(elapsed * scenario.rate):
            moment = start + timedelta(seconds=offered / scenario.rate)
            writer.submit(pending(CANVAS, handlers[offered % len(handlers)], moment))
            offered += 1
        await asyncio.sleep(0.02)
    return offered


async def _until_applied(outbox: PinOutbox, worker: asyncio.Task[None], settle: timedelta) -> None:
    """Let the worker apply everything: wait ``settle``, then until nothing is queued."""
    await asyncio.sleep(settle.total_seconds())
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while await outbox.pending() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker


async def _paced(
    store: ObjectStore, pool: db.Pool, setup: Setup, scenario: Scenario, seconds: float
) -> int:
    outbox = _outbox(pool, store, setup)
    worker = asyncio.create_task(outbox.run(poll_interval=TIMINGS.outbox_poll))
    writer = TraceWriter(store, pool, Metrics(), config=setup.writer)
    writer.start()
    offered = await _submit(writer, scenario, seconds)
    await writer.flush()
    await writer.stop()
    await _until_applied(outbox, worker, setup.settle)
    return offered


async def _open_latest(store: ObjectStore, pool: db.Pool, handlers: tuple[str, ...]) -> int:
    """Fetch each handler's latest traces as the editor does; returns how many."""
    opened = 0
    for handler in handlers:
        for row in await list_traces(pool, CANVAS, handler, limit=OPENED):
            await store.get(row.object_key, byte_range=row.byte_range)
            opened += 1
    return opened


async def _measure(
    backend: Backend, dsn: str, scenario: Scenario, setup: Setup, scale: float
) -> Run:
    pool = await db.connect_pool(dsn, max_size=8)
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn)
        bucket = f"cost-{scenario.key}-{setup.name}-{os.getpid()}"
        store, tally = backend.new_store(bucket)
        began = time.perf_counter()
        offered_for = scenario.seconds * scale
        if scenario.quiet_traces:
            offered = await _quiet(store, pool, setup, scenario)
        else:
            offered = await _paced(store, pool, setup, scenario, offered_for)
        seconds = time.perf_counter() - began
        writes = backend.log.counts(bucket)
        opened = await _open_latest(store, pool, scenario.handlers)
        reads = backend.log.counts(bucket) - writes
        left = int(await pool.fetchval("SELECT count(*) FROM pin_outbox"))
        traces = await count_traces(pool, CANVAS)
        await store.close()
        return Run(
            offered, traces, writes, opened, reads, tally.requests, left, offered_for, seconds
        )
    finally:
        await pool.close()


# -- the tables -------------------------------------------------------------------------


def _per_trace(run: Run) -> float:
    return sum(run.writes.values()) / max(run.traces, 1)


def _cells(run: Run, prices: Prices) -> dict[str, str]:
    return {
        "traces": f"{run.traces:,}",
        "PUTs": f"{run.writes['put']:,}",
        "tagging/metadata": f"{run.writes['tag']:,}",
        "other": f"{run.writes['meta'] + run.writes['other']:,}",
        "requests/trace": f"{_per_trace(run):.4f}",
        "$/M traces": f"{prices.dollars(run.writes) / max(run.traces, 1) * 1e6:.2f}",
        "GETs/opened": f"{sum(run.reads.values()) / max(run.opened, 1):.2f}",
    }


def table(kind: StoreKind, rows: list[tuple[Scenario, dict[str, Run]]]) -> str:
    """One markdown table: a row per scenario, before and after side by side."""
    columns = list(_cells(next(iter(rows[0][1].values())), kind.prices))
    header = ["scenario"]
    for column in columns:
        header += [f"{column} before", f"{column} after"]
        if column == "requests/trace":
            header.append("after/before")
    lines = [f"**{kind.title}**", "", "| " + " | ".join(header) + " |"]
    lines.append("|---" + "|---:" * (len(header) - 1) + "|")
    for scenario, runs in rows:
        before, after = (_cells(runs[s.name], kind.prices) for s in SETUPS)
        cells = [scenario.label]
        for column in columns:
            cells += [before[column], after[column]]
            if column == "requests/trace":
                ratio = _per_trace(runs[AFTER.name]) / max(_per_trace(runs[BEFORE.name]), 1e-9)
                cells.append(f"{ratio:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", *_notes(rows)])


def _notes(rows: list[tuple[Scenario, dict[str, Run]]]) -> list[str]:
    server = sum(
        sum(r.writes.values()) + sum(r.reads.values()) for _, rs in rows for r in rs.values()
    )
    client = sum(r.client_requests for _, rs in rows for r in rs.values())
    notes = [f"Requests in the server's log: {server:,}; sent by the clients: {client:,}."]
    for scenario, runs in rows:
        for name, run in runs.items():
            if run.offered > run.traces:
                notes.append(
                    f"{scenario.label}, {name}: {run.offered:,} offered in {run.offered_for:g} s,"
                    f" {run.traces:,} stored in {run.seconds:.1f} s; the writer's full queue"
                    " shed the rest (the store could not keep up)."
                )
            if run.left:
                notes.append(f"{scenario.label}, {name}: {run.left} outbox entries unapplied.")
    return notes


# -- main -------------------------------------------------------------------------------


def _measure_all(kind: StoreKind, admin: str, loads: list[Scenario], workdir: Path) -> str:
    """Every scenario in both setups on ``kind``; its table."""
    rows = []
    with contextlib.ExitStack() as shared:
        server = None if kind.per_run else shared.enter_context(kind.launch(workdir))
        for scenario in loads:
            runs = {}
            for setup in SETUPS:
                dsn = fresh_database(admin)
                with contextlib.ExitStack() as own:
                    backend = server or own.enter_context(kind.launch(workdir))
                    run = asyncio.run(_measure(backend, dsn, scenario, setup, kind.scale))
                runs[setup.name] = run
                print(
                    f"{kind.title}, {scenario.label}, {setup.name}: {run.traces:,} traces,"
                    f" {sum(run.writes.values()):,} requests, {run.seconds:.1f} s",
                    file=sys.stderr,
                )
            rows.append((scenario, runs))
    return table(kind, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quiet-traces", type=int, default=120, help="simulated minutes")
    parser.add_argument("--busy-seconds", type=float, default=6.0)
    parser.add_argument("--busy-rate", type=float, default=500.0, help="traces a second")
    parser.add_argument("--mix-seconds", type=float, default=6.0)
    parser.add_argument("--mix-rate", type=float, default=1000.0, help="traces a second")
    parser.add_argument(
        "--gcs-scale", type=float, default=0.2, help="GCS paced runs' share of the seconds"
    )
    parser.add_argument("--stores", default="s3,gcs", help="comma-separated: s3, gcs")
    args, _ = parser.parse_known_args()
    kinds = store_kinds(args.gcs_scale)
    loads = scenarios(args)
    began = time.perf_counter()
    with postgres() as admin, tempfile.TemporaryDirectory(prefix="strata-cost-") as tmp:
        for name in args.stores.split(","):
            print(_measure_all(kinds[name], admin, loads, Path(tmp)), end="\n\n")
    print(f"bench.cost took {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()

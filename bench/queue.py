"""Queue throughput: messages per second through enqueue → worker → trace stored, for
strata's own Postgres queue (chosen, issue 17) and PgQueuer (not chosen), side by side.

``python -m bench.queue [--messages 5000] [--concurrency 8] [--timeout 40] [--probe 100]``

Method. For each option, one run on a fresh database of one embedded Postgres:

* a real strata stack in this process (``gateway.serve.start``: pool, migrations, local
  store in memory, the inline trace writer), serving a canvas whose worker is
  ``return event["n"] * 2``: the same handler for both options;
* **own**: ``--role all``, so strata's :class:`gateway.workers.Workers` take the
  messages (``FOR UPDATE SKIP LOCKED``, leases, ``NOTIFY`` wake-ups) at
  ``STRATA_WORKER_CONCURRENCY``;
* **pgqueuer**: ``--role editor``, so strata's workers do not run, and a PgQueuer 1.6
  ``QueueManager`` on the stack's own pool consumes instead (its schema installed on
  the fresh database by ``Queries.install``). Its entrypoint runs what strata's worker
  runs: ``runtime.execute.execute(handler, event, record=True, ...)``, then the trace
  built by ``gateway.background_run.submit`` (what strata's workers call) goes to the same
  writer. PgQueuer's job id stands in for the message id (as a UUID). Its concurrency is
  a per-process cap as strata's is (``max_concurrent_tasks``; the batch may be at most
  half of it); ``pgqueuer (entrypoint limit)`` is its other way, the limit enforced in
  SQL across processes (``concurrency_limit``, batches of ``--concurrency``).

Both start consuming, then a latency probe (also the warm-up): ``--probe`` messages
enqueued one at a time (own: ``trace_store.db.queue.enqueue``, what
``stdlib.queue.enqueue`` calls; PgQueuer: ``Queries.enqueue``), one every ``--probe-gap``
seconds onto the idle consumer; p50 of the time from the enqueue call to the handler
starting.

Then the throughput run: ``--messages`` messages of tagged JSON ``{"n": i}``, enqueued
in batches of :data:`BATCH` (own: a bench-local multi-row ``INSERT`` into
``queue_messages`` matching ``trace_store.db.queue.enqueue`` row for row, with one
``NOTIFY``, as strata has no batch enqueue; PgQueuer: its ``Queries.enqueue`` with
lists). The figure is the wall time from the first enqueue to the moment every
message's trace is indexed (``SELECT count(*) FROM traces`` reaches the total; the
writer's batch wait, 400 ms by default, is in it for both); the CPU seconds of this
process (strata, the consumer and the writer all run in it) and of the Postgres server
over that interval, from ``/proc`` (the postmaster, its reaped children and its live
backends: all of the server's work, vacuum included; ``n/a`` when the server is not
local). A run that has not finished after ``--timeout`` seconds is cut off and
reported from the traces indexed by then.

The options are comparable: same process, same pool, same handler, same recording and
writer path, same Postgres, same batches and concurrency; only the queue differs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import resource
import shutil
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bench.common import MEMORY_DIR, fresh_database, postgres
from gateway.background_run import submit
from gateway.config import ServeSettings, WorkSettings
from gateway.serve import Running, start
from runtime.canvas import Canvas
from runtime.execute import execute
from trace_store.db import queue as own_queue
from trace_store.document.ids import uuid7
from trace_store.document.values import from_json, to_json
from trace_store.timestamps import rfc3339_of

if TYPE_CHECKING:
    from gateway.services import Services
    from runtime.canvas import Handler

CANVAS = "bench"
QUEUE = "bench"
#: Messages per enqueue round trip, for both options.
BATCH = 500
OWN = "own (chosen)"
PGQ = "pgqueuer"
PGQ_LIMIT = "pgqueuer (entrypoint limit)"
OPTIONS = (OWN, PGQ, PGQ_LIMIT)

#: Bench-local batched enqueue (strata has none): the rows ``queue.enqueue`` inserts,
#: many at once, and one ``NOTIFY`` for the batch (Postgres folds identical
#: notifications of one transaction into one anyway).
_OWN_BATCH = """
WITH m AS (
    INSERT INTO queue_messages (message_id, canvas, queue, event)
    SELECT id, $2, $3, ev::json FROM unnest($1::uuid[], $4::text[]) AS b(id, ev)
    RETURNING 1
)
SELECT pg_notify($5, $2 || '/' || $3) FROM (SELECT count(*) FROM m) AS done
"""


@dataclass
class Probe:
    """When the handler started on each message (by ``n``), for the latency probe."""

    started: dict[int, float] = field(default_factory=dict)


def _canvas(probe: Probe) -> Canvas:
    canvas = Canvas(CANVAS)

    @canvas.worker(QUEUE)
    async def work(event: dict[str, Any]) -> int:
        probe.started[event["n"]] = time.perf_counter()
        n: int = event["n"]
        return n * 2

    return canvas


class PostgresCpu:
    """CPU seconds of one local Postgres server: the postmaster with its reaped children
    (``cutime``/``cstime``) and its live children."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK")

    @classmethod
    async def find(cls, services: Services) -> PostgresCpu | None:
        data_directory = await services.pool.fetchval("SHOW data_directory")
        try:
            pid = int(Path(data_directory, "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return cls(pid) if Path(f"/proc/{pid}").exists() else None

    def seconds(self) -> float:
        ticks = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is field 3, state
            utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
            if int(entry.name) == self.pid:
                ticks += utime + stime + cutime + cstime
            elif int(fields[1]) == self.pid:
                ticks += utime + stime
        return ticks / self.tick


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Result:
    option: str
    messages: int
    traced: int
    seconds: float
    enqueue_seconds: float
    bench_cpu: float
    postgres_cpu: float | None
    probe_p50_ms: float | None
    notes: str

    @property
    def rate(self) -> float:
        return self.traced / self.seconds


class Consumer:
    """How one option enqueues and consumes."""

    notes = ""

    async def start(self) -> None:
        """Start consuming."""

    async def stop(self) -> None:
        """Stop consuming."""

    async def enqueue_batch(self, events: list[Any]) -> None:
        raise NotImplementedError

    async def enqueue_one(self, event: Any) -> None:
        raise NotImplementedError


class Own(Consumer):
    """strata's own queue: ``running.workers`` (``--role all``) consumes."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.notes = (
            f"strata Workers; batched INSERT of {BATCH} (bench-local) + one NOTIFY;"
            " probe: queue.enqueue"
        )

    async def enqueue_batch(self, events: list[Any]) -> None:
        now = time.time_ns()
        await self.services.pool.execute(
            _OWN_BATCH,
            [uuid.UUID(uuid7(now)) for _ in events],
            CANVAS,
            QUEUE,
            [orjson.dumps(to_json(e)).decode() for e in events],
            own_queue.CHANNEL,
        )

    async def enqueue_one(self, event: Any) -> None:
        await own_queue.enqueue(self.services.pool, CANVAS, QUEUE, to_json(event))


class PgQueuer(Consumer):
    """PgQueuer on the stack's pool; its entrypoint runs strata's worker path."""

    def __init__(self, services: Services, concurrency: int, *, entrypoint_limit: bool) -> None:
        from pgqueuer.db import AsyncpgPoolDriver
        from pgqueuer.qm import QueueManager
        from pgqueuer.queries import Queries

        self.services = services
        self.queries = Queries(AsyncpgPoolDriver(services.pool))
        self.manager = QueueManager(self.queries)
        self.concurrency = concurrency
        self.entrypoint_limit = entrypoint_limit
        self.batch = concurrency if entrypoint_limit else max(1, concurrency // 2)
        self.task: asyncio.Task[None] | None = None
        self.handler: Handler = services.canvases[CANVAS].workers[QUEUE]
        how = (
            f"concurrency_limit={concurrency}"
            if entrypoint_limit
            else f"max_concurrent_tasks={concurrency}"
        )
        self.notes = (
            f"QueueManager batch {self.batch}, {how}; Queries.enqueue lists of {BATCH};"
            " probe: Queries.enqueue"
        )

    async def start(self) -> None:
        from datetime import timedelta

        from pgqueuer.models import Job

        if not await self.queries.schema_is_installed():
            await self.queries.install()
        services, handler = self.services, self.handler

        async def consume(job: Job) -> None:
            assert job.payload is not None
            event = orjson.loads(job.payload)
            run = await execute(
                handler,
                from_json(event),
                record=True,
                max_calls=services.settings.limits.max_calls,
                sync_pool=services.sync_pool,
            )
            doc_input = {
                "kind": "worker",
                "queue": QUEUE,
                "message_id": str(uuid.UUID(int=job.id)),
                "attempt": job.attempts + 1,
                "enqueued_at": rfc3339_of(job.created),
                "event": event,
            }
            submit(services, handler, run, doc_input)
            if run.error is not None:  # PgQueuer's retry path: the job fails
                raise run.error

        limit = self.concurrency if self.entrypoint_limit else 0
        self.manager.entrypoint(QUEUE, concurrency_limit=limit, accepts_context=False)(consume)
        self.task = asyncio.create_task(
            self.manager.run(
                dequeue_timeout=timedelta(seconds=0.5),  # strata's poll
                batch_size=self.batch,
                max_concurrent_tasks=None if self.entrypoint_limit else self.concurrency,
            )
        )

    async def stop(self) -> None:
        self.manager.shutdown.set()
        if self.task is not None:
            await self.task

    async def enqueue_batch(self, events: list[Any]) -> None:
        await self.queries.enqueue(
            [QUEUE] * len(events), [orjson.dumps(to_json(e)) for e in events], [0] * len(events)
        )

    async def enqueue_one(self, event: Any) -> None:
        await self.queries.enqueue(QUEUE, orjson.dumps(to_json(event)), 0)


async def _traces(services: Services) -> int:
    return int(await services.pool.fetchval("SELECT count(*) FROM traces"))


async def _until_traced(services: Services, count: int, deadline: float) -> int:
    """Poll the index until ``count`` traces are there or ``deadline`` has passed."""
    while True:
        traced = await _traces(services)
        if traced >= count or time.perf_counter() > deadline:
            return traced
        await asyncio.sleep(0.05)


async def _run(option: str, database_url: str, args: argparse.Namespace) -> Result:
    probe = Probe()
    data_dir = Path(tempfile.mkdtemp(prefix="strata-bench-queue-", dir=MEMORY_DIR))
    settings = dataclasses.replace(
        ServeSettings(),
        database_url=database_url,
        data_dir=data_dir,
        gateway_port=0,
        editor_port=0,
        secret=b"bench-secret-0123456789abcdef",
        writer_mode="inline",
        role="all" if option == OWN else "editor",
        work=WorkSettings(concurrency=args.concurrency),
    )
    running: Running = await start(settings, {CANVAS: _canvas(probe)})
    services = running.services
    consumer: Consumer = (
        Own(services)
        if option == OWN
        else PgQueuer(services, args.concurrency, entrypoint_limit=option == PGQ_LIMIT)
    )
    try:
        await consumer.start()
        await asyncio.sleep(1.0)  # listeners up, the first idle poll done
        probe_p50 = await _probe(consumer, services, probe, args)
        cpu = await PostgresCpu.find(services)
        n = args.messages
        base = await _traces(services)
        events = [{"n": i} for i in range(n)]
        pg0 = cpu.seconds() if cpu else 0.0
        self0 = _cpu_self()
        t0 = time.perf_counter()
        for i in range(0, n, BATCH):
            await consumer.enqueue_batch(events[i : i + BATCH])
        enqueue_seconds = time.perf_counter() - t0
        traced = await _until_traced(services, base + n, t0 + args.timeout) - base
        seconds = time.perf_counter() - t0
        bench_cpu = _cpu_self() - self0
        postgres_cpu = cpu.seconds() - pg0 if cpu else None
        notes = consumer.notes
        if traced < n:
            notes = f"**cut off after {args.timeout:.0f} s: {traced:,} of {n:,} traced**; " + notes
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        await running.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return Result(
        option, n, traced, seconds, enqueue_seconds, bench_cpu, postgres_cpu, probe_p50, notes
    )


async def _probe(
    consumer: Consumer, services: Services, probe: Probe, args: argparse.Namespace
) -> float | None:
    """p50 ms from the enqueue call to the handler starting, one message at a time onto
    an idle consumer (numbered after the throughput messages)."""
    if args.probe <= 0:
        return None
    enqueued: dict[int, float] = {}
    first = args.messages
    for n in range(first, first + args.probe):
        enqueued[n] = time.perf_counter()
        await consumer.enqueue_one({"n": n})
        await asyncio.sleep(args.probe_gap)
    await _until_traced(services, args.probe, time.perf_counter() + 10)
    delays = [probe.started[n] - at for n, at in enqueued.items() if n in probe.started]
    return statistics.median(delays) * 1e3 if delays else None


def _loop_run(coro: Any) -> Any:
    """Run on uvloop where available, as ``strata serve`` does."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - declared off Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--timeout", type=float, default=40.0, help="seconds per option before a cut-off"
    )
    parser.add_argument("--probe", type=int, default=100, help="latency probe messages")
    parser.add_argument(
        "--probe-gap", type=float, default=0.01, help="seconds between probe messages"
    )
    args, _ = parser.parse_known_args()
    logging.getLogger("pgqueuer").setLevel(logging.ERROR)
    try:
        import pgqueuer  # noqa: F401
    except ImportError:
        print("\n**Queue throughput** (`bench.queue`): skipped, pgqueuer is not installed\n")
        return
    results: list[Result] = []
    with postgres() as admin:
        for option in OPTIONS:
            results.append(_loop_run(_run(option, fresh_database(admin), args)))
    own = results[0].rate
    print(
        f"\n**Queue throughput** (`bench.queue`): {args.messages:,} messages enqueued in"
        f" batches of {BATCH}, consumed at concurrency {args.concurrency}; seconds from the"
        " first enqueue to the last trace indexed. CPU: this process (stack, consumer,"
        " writer) and the Postgres server. Probe: enqueue → handler start, one message"
        f" every {args.probe_gap * 1e3:.0f} ms\n"
    )
    print(
        "| option | messages | seconds | messages/s | ratio to own | enqueue s"
        " | bench CPU s | Postgres CPU s | probe p50 | notes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        pg = "n/a" if r.postgres_cpu is None else f"{r.postgres_cpu:.2f}"
        p50 = "n/a" if r.probe_p50_ms is None else f"{r.probe_p50_ms:.1f} ms"
        print(
            f"| {r.option} | {r.traced:,} | {r.seconds:.2f} | {r.rate:,.0f} | {r.rate / own:.2f}"
            f" | {r.enqueue_seconds:.2f} | {r.bench_cpu:.2f} | {pg} | {p50} | {r.notes} |"
        )


if __name__ == "__main__":
    main()

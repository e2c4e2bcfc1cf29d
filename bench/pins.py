"""Object-store requests per trace, pins included, on S3 (moto over HTTP).

``python -m bench.pins [--quiet-traces 120] [--busy-seconds 6] [--busy-rate 500]``

Two handlers, each through the real writer, commit (pins + outbox) and outbox worker:

* quiet: 1 request a minute. Time is simulated: each trace starts a minute after the
  last, is written as its own batch, and the outbox runs once per trace (it polls
  every second, so at that rate every pin change gets its own pass).
* busy: ``--busy-rate`` requests a second, submitted in real time (10 every 20 ms)
  while the outbox worker polls as in ``serve``.

Every HTTP request the S3 client sends is counted (botocore ``before-send``), retries
included. Steady state for the quiet handler is 3 requests a trace (put, pin the new
one, unpin the one it displaces); the busy one pays the pin changes once per batch.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import fresh_database, postgres
from tests.fixtures_cloud import MOTO_KEY, _stop, _venv_tool, _wait_for_port, free_port
from tests.pin_support import pending
from trace_store import db
from trace_store.backends.s3 import S3Store
from trace_store.backends.s3_client import S3Settings
from trace_store.db.outbox import PinOutbox
from trace_store.metrics import Metrics
from trace_store.writer.batch_writer import TraceWriter
from trace_store.writer.queue import WriterConfig


def _count_requests(store: S3Store) -> Counter[str]:
    counts: Counter[str] = Counter()

    def on_send(request: Any, **_: Any) -> None:
        kind = "tagging" if "tagging" in request.url else request.method
        counts[kind] += 1

    store.client.meta.events.register("before-send.s3", on_send)
    return counts


async def _quiet(store: S3Store, pool: db.Pool, traces: int) -> int:
    outbox = PinOutbox(pool, store)
    writer = TraceWriter(store, pool, Metrics(), config=WriterConfig(batch_wait=0))
    writer.start()
    start = datetime.now(UTC) - timedelta(minutes=traces)
    for minute in range(traces):
        writer.submit(pending("bench", "quiet", start + timedelta(minutes=minute)))
        await writer.flush()
        await outbox.drain()
    await writer.stop()
    return traces


async def _busy(store: S3Store, pool: db.Pool, seconds: float, rate: int) -> int:
    outbox = PinOutbox(pool, store)
    worker = asyncio.create_task(outbox.run(poll_interval=1.0))
    writer = TraceWriter(store, pool, Metrics())
    writer.start()
    start = datetime.now(UTC)
    submitted = 0
    began = time.perf_counter()
    while (elapsed := time.perf_counter() - began) < seconds:
        due = int(elapsed * rate)
        while submitted < due:
            moment = start + timedelta(seconds=submitted / rate)
            if writer.submit(pending("bench", "busy", moment)):
                submitted += 1
        await asyncio.sleep(0.02)
    await writer.flush()
    await writer.stop()
    await outbox.drain()
    worker.cancel()
    return submitted


async def _measure(endpoint: str, dsn: str, name: str, run: Any) -> tuple[str, int, Counter[str]]:
    pool = await db.connect_pool(dsn, max_size=8)
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn)
        bucket = f"bench-{name}-{os.getpid()}"
        store = S3Store(S3Settings(bucket, "", endpoint, "us-east-1"))
        store.client.create_bucket(Bucket=bucket)
        counts = _count_requests(store)
        traces = await run(store, pool)
        await store.close()
        return name, traces, counts
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quiet-traces", type=int, default=120, help="simulated minutes")
    parser.add_argument("--busy-seconds", type=float, default=6.0)
    parser.add_argument("--busy-rate", type=int, default=500, help="requests a second")
    args, _ = parser.parse_known_args()

    os.environ.update(
        AWS_ACCESS_KEY_ID=MOTO_KEY[0],
        AWS_SECRET_ACCESS_KEY=MOTO_KEY[1],
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    port = free_port()
    moto = subprocess.Popen(
        [_venv_tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(moto, port, "moto_server")
        endpoint = f"http://127.0.0.1:{port}"
        rows = []
        with postgres() as admin:
            for name, run in (
                ("quiet (1/min)", lambda s, p: _quiet(s, p, args.quiet_traces)),
                (
                    f"busy ({args.busy_rate}/s)",
                    lambda s, p: _busy(s, p, args.busy_seconds, args.busy_rate),
                ),
            ):
                dsn = fresh_database(admin)
                label = name.split()[0]
                rows.append((*asyncio.run(_measure(endpoint, dsn, label, run)), name))
    finally:
        _stop(moto)

    print("| handler | traces | object PUTs | tagging PUTs | other | requests/trace |")
    print("|---|---|---|---|---|---|")
    for _, traces, counts, name in rows:
        tagging = counts["tagging"]
        other = sum(counts.values()) - counts["PUT"] - tagging
        total = sum(counts.values())
        print(
            f"| {name} | {traces} | {counts['PUT']} | {tagging} | {other} |"
            f" {total / max(traces, 1):.3f} |"
        )


if __name__ == "__main__":
    main()

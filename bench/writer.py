"""Writer throughput: traces/s from the queue to stored objects and index rows, for the
local store and for S3 on moto, in one run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator

from bench.capture import _pending, _run_sync
from bench.common import fresh_database, postgres
from tests.fixtures_cloud import MOTO_KEY, REGION, free_port
from trace_store import db
from trace_store.backends.base import ObjectStore
from trace_store.metrics import Metrics
from trace_store.store_url import parse_store_url
from trace_store.writer import TraceWriter, WriterConfig


@contextlib.contextmanager
def moto() -> Iterator[str]:
    """A moto server on loopback; yields its endpoint."""
    port = free_port()
    proc = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "moto_server"),
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        import socket

        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def measure(store: ObjectStore, dsn: str, n: int) -> tuple[float, int]:
    """Traces/s for ``n`` 20-call traces submitted at once; returns (rate, rows)."""
    await store.check()
    pool = await db.connect_pool(dsn, max_size=4)
    async with pool.acquire() as conn:
        await db.migrate(conn)
    # A queue that holds the whole burst: this measures writing, not admission.
    writer = TraceWriter(store, pool, Metrics(), config=WriterConfig(queue_traces=n))
    pendings = [_pending(_run_sync(True)) for _ in range(n)]
    writer.start()
    t0 = time.perf_counter()
    for p in pendings:
        assert writer.submit(p)
    await writer.flush()
    elapsed = time.perf_counter() - t0
    await writer.stop()
    rows = int(await pool.fetchval("SELECT count(*) FROM traces"))
    await pool.close()
    return n / elapsed, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--traces", type=int, default=5000)
    args, _ = parser.parse_known_args()
    results = {}
    with postgres() as admin, tempfile.TemporaryDirectory(dir=".") as tmp, moto() as endpoint:
        results["local"] = asyncio.run(
            measure(
                parse_store_url(f"file://{os.path.abspath(tmp)}"),
                fresh_database(admin),
                args.traces,
            )
        )
        os.environ.update(AWS_ACCESS_KEY_ID=MOTO_KEY[0], AWS_SECRET_ACCESS_KEY=MOTO_KEY[1])
        import boto3

        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=endpoint, region_name=REGION).create_bucket(Bucket=bucket)
        results["s3 (moto)"] = asyncio.run(
            measure(
                parse_store_url(f"s3://{bucket}?endpoint={endpoint}&region={REGION}"),
                fresh_database(admin),
                args.traces,
            )
        )
    print(f"\n## Writer: {args.traces} queued 20-call traces to objects + index rows\n")
    print("| store | traces/s | index rows | rows/traces |")
    print("|---|---|---|---|")
    for name, (rate, rows) in results.items():
        print(f"| {name} | {rate:,.0f} | {rows} | {rows / args.traces:.3f} |")


if __name__ == "__main__":
    main()

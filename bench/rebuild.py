"""``strata index rebuild`` throughput: traces/s indexed again from the objects after
the index was lost, for the local store and for S3 on moto, in one run.

The writer stores and indexes N 20-call traces; the index tables are emptied (Postgres
lost); :func:`trace_store.rebuild.rebuild` then lists, downloads, checks and commits
them all (pins included). The second pass, with nothing missing, is timed too: it lists
and looks up, and downloads nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

from bench.capture import _pending, _run_sync
from bench.common import fresh_database, postgres
from bench.writer import moto, moto_store_url
from trace_store import db
from trace_store.backends.base import ObjectStore
from trace_store.backends.url import parse_store_url
from trace_store.metrics import Metrics
from trace_store.rebuild import rebuild
from trace_store.writer.batch_writer import TraceWriter
from trace_store.writer.queue import WriterConfig


async def measure(store: ObjectStore, dsn: str, n: int) -> tuple[float, float, int]:
    """Store ``n`` traces, empty the index, rebuild it: (traces/s, second pass s, rows)."""
    pool = await db.connect_pool(dsn, max_size=4)
    async with pool.acquire() as conn:
        await db.migrate(conn)
    writer = TraceWriter(
        store, pool, Metrics(), config=WriterConfig(queue_traces=n, queue_calls=10**9)
    )
    writer.start()
    for seed in range(n):
        assert writer.submit(_pending("chain", _run_sync("chain", True, seed), seed))
    await writer.flush()
    await writer.stop()
    await pool.execute("TRUNCATE traces, pins, pin_outbox, unmatched")
    t0 = time.perf_counter()
    report = await rebuild(store, pool)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = await rebuild(store, pool)
    second = time.perf_counter() - t0
    assert (report.indexed, again.indexed) == (n, 0), (report, again)
    rows = int(await pool.fetchval("SELECT count(*) FROM traces"))
    await pool.close()
    await store.close()
    return n / first, second, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--traces", type=int, default=3000)
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
        results["s3 (moto)"] = asyncio.run(
            measure(
                parse_store_url(moto_store_url(endpoint)),
                fresh_database(admin),
                args.traces,
            )
        )
    print(
        f"\n**Index rebuild** (`bench.rebuild`): {args.traces:,} stored 20-call traces indexed"
        " again from the objects after the index was emptied\n"
    )
    print("| store | traces/s | index rows | second run (nothing missing) s |")
    print("|---|---|---|---|")
    for name, (rate, second, rows) in results.items():
        print(f"| {name} | {rate:,.0f} | {rows} | {second:.2f} |")


if __name__ == "__main__":
    main()

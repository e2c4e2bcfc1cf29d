"""Index commits (issue 19): rows/s of ``commit_batch`` for batches of 1, 50 and 500
index rows, the rows inserted by binary ``COPY`` (``commit_batch`` now) against the
statement it replaced (one JSON parameter read by ``json_to_recordset``), in one run.

``python -m bench.index_commit [--rows 20000] [--reps 5]`` runs on the embedded Postgres
(or ``STRATA_TEST_DATABASE_URL``), in a fresh database with strata's migrations, through
a pool made as ``serve`` makes it. Each commit is a whole writer batch: the index rows,
the pins of its handlers, the ``trace`` notifications, in one transaction. Rows look like
the writer's: 8 handlers a batch, each handler's rows one segment (offsets into one key),
a single-trace object for a batch of one, 0 to 4 user functions, mostly 200s.

Variants run in alternating order, ``--reps`` times each, every run on emptied tables;
figures are medians over the runs:

- rows/s: index rows committed per second of wall time;
- Postgres CPU per row: user + system time of every server process (live ones and the
  ones that exited, through the postmaster's reaped-children counters), so a local
  server only; ``n/a`` otherwise;
- client CPU per row: this process (encoding, pins arithmetic, asyncpg);
- a retried commit: the same batch committed again, every row already present. For
  ``COPY`` that is a failed transaction and the fallback (``insert_rows``).

(The design not taken, ``COPY`` into a per-connection staging table and ``INSERT ...
SELECT ... ON CONFLICT DO NOTHING`` from it, measured slower than direct ``COPY`` at
every size: see ``index.copy_rows``.)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg

from bench.common import fresh_database, postgres, postgres_pid, tree_cpu_seconds
from trace_store import db, keys
from trace_store.db import index
from trace_store.db.index import IndexRow
from trace_store.document.ids import uuid7
from trace_store.writer.commit import Batch, commit_batch, write_batch

SIZES = (1, 50, 500)
HANDLERS = 8
FUNCTIONS = (
    "shop.views.checkout",
    "shop.cart.total",
    "shop.db.fetch_user",
    "shop.pricing.<locals>.discount",
    "shop.render.page",
    "shop.payments.charge",
)

if TYPE_CHECKING:
    Commit = Callable[[db.Pool, Batch], Awaitable[None]]
    Insert = Callable[[db.Connection, Sequence[IndexRow]], Awaitable[int]]


async def _reference_commit(pool: db.Pool, batch: Batch) -> None:
    """The reference: the old path, one ``INSERT ... SELECT FROM json_to_recordset($1)
    ... ON CONFLICT DO NOTHING`` (``index.insert_rows``, now only the fallback)."""
    async with pool.acquire() as conn, conn.transaction():
        await write_batch(conn, batch, index.insert_rows)


class Rows:
    """Writer-like index rows, every trace id new, times moving forward from an hour ago."""

    def __init__(self) -> None:
        self.clock = time.time_ns() - 3600 * 10**9
        self.random = random.Random(19)

    def batch(self, size: int) -> Batch:
        by_handler: dict[str, list[tuple[int, str]]] = {}
        for i in range(size):
            self.clock += 10_000
            by_handler.setdefault(f"handler_{i % HANDLERS}", []).append(
                (self.clock, uuid7(self.clock))
            )
        rows: list[IndexRow] = []
        for handler, traces in by_handler.items():
            newest = traces[-1][1]
            segment = size > 1
            key = (
                keys.segment_key("shop", handler, newest, self.random.randbytes(8).hex())
                if segment
                else keys.trace_key("shop", handler, newest)
            )
            offset = 0
            for ns, trace_id in traces:
                length = self.random.randrange(600, 3000)
                status = self.random.choices((200, 201, 404, 500), (85, 5, 6, 4))[0]
                calls = self.random.randrange(5)
                rows.append(
                    IndexRow(
                        canvas="shop",
                        handler_id=handler,
                        trace_id=trace_id,
                        started_at=datetime.fromtimestamp(ns / 1e9, UTC),
                        object_key=key,
                        size_bytes=length,
                        sha256=hashlib.sha256(trace_id.encode()).digest(),
                        status=status,
                        duration_ms=self.random.lognormvariate(2.0, 1.0),
                        functions=tuple(sorted(self.random.sample(FUNCTIONS, calls))),
                        has_error=status == 500,
                        offset=offset if segment else None,
                    )
                )
                offset += length
        return Batch(rows=rows)


@dataclass
class Figures:
    """What one variant spent at one batch size, summed over its chunks."""

    rows: int = 0
    seconds: float = 0.0
    server: float | None = 0.0
    client: float = 0.0
    retries: int = 0
    retry_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.rows / self.seconds

    def server_us(self) -> str:
        return "n/a" if self.server is None else f"{self.server / self.rows * 1e6:.1f}"

    def client_us(self) -> str:
        return f"{self.client / self.rows * 1e6:.1f}"

    def retry_ms(self) -> str:
        return f"{self.retry_seconds / self.retries * 1e3:.2f}"


async def _chunk(
    pool: db.Pool, commit: Commit, batches: Sequence[Batch], server_pid: int | None, f: Figures
) -> None:
    server = tree_cpu_seconds(server_pid) if server_pid else 0.0
    client = time.process_time()
    start = time.perf_counter()
    for batch in batches:
        await commit(pool, batch)
    f.seconds += time.perf_counter() - start
    f.client += time.process_time() - client
    f.rows += sum(len(b.rows) for b in batches)
    if server_pid is None or f.server is None:
        f.server = None
    else:
        f.server += tree_cpu_seconds(server_pid) - server


async def _retries(pool: db.Pool, commit: Commit, batches: Sequence[Batch], f: Figures) -> None:
    start = time.perf_counter()
    for batch in batches:
        await commit(pool, batch)  # every row already present: a lost acknowledgement
    f.retry_seconds += time.perf_counter() - start
    f.retries += len(batches)


async def measure(
    dsn: str, total_rows: int, server_pid: int | None
) -> dict[int, dict[str, Figures]]:
    """Figures per batch size and variant.

    The variants take turns in chunks of about 50 rows' worth of commits (the order
    rotating), into the same tables: this machine is shared, and load that comes and
    goes then falls on every variant alike instead of on whichever ran during it.
    """
    conn = await asyncpg.connect(dsn)
    try:
        await db.migrate(conn)
    finally:
        await conn.close()
    pool = await db.connect_pool(dsn, max_size=2)
    variants: dict[str, Commit] = {"old": _reference_commit, "new": commit_batch}
    try:
        source = Rows()
        results: dict[int, dict[str, Figures]] = {}
        for size in SIZES:
            await pool.execute("TRUNCATE traces, pins, pin_outbox")
            per_chunk = max(1, 50 // size)
            commits = max(20, min(2000, total_rows // size)) // per_chunk * per_chunk
            batches = {name: [source.batch(size) for _ in range(commits)] for name in variants}
            figures = {name: Figures() for name in variants}
            for commit in variants.values():  # warm up: plans, caches, codecs
                for _ in range(3):
                    await commit(pool, source.batch(size))
            order = list(variants)
            for first in range(0, commits, per_chunk):
                for name in order:
                    chunk = batches[name][first : first + per_chunk]
                    await _chunk(pool, variants[name], chunk, server_pid, figures[name])
                order.append(order.pop(0))
            for name in order:
                await _retries(pool, variants[name], batches[name][-20:], figures[name])
            indexed = await pool.fetchval("SELECT count(*) FROM traces")
            expected = sum(f.rows for f in figures.values()) + 3 * size * len(variants)
            assert indexed == expected, f"{indexed} index rows for {expected} committed"
            results[size] = figures
    finally:
        await pool.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--rows", type=int, default=20_000, help="rows a variant and batch size (20-2000 commits)"
    )
    args, _ = parser.parse_known_args()
    with postgres() as admin:
        results = asyncio.run(measure(fresh_database(admin), args.rows, postgres_pid(admin)))
    print(
        "\n**Index commits** (`bench.index_commit`): `commit_batch` (index rows, pins,"
        " notifications in one transaction) with the rows by `COPY` against the old JSON"
        f" statement, up to {args.rows:,} rows each, interleaved\n"
    )
    print(
        "| batch size | old rows/s | new rows/s | ratio | Postgres CPU µs/row old → new"
        " | client CPU µs/row old → new | retried commit ms old → new |"
    )
    print("|---|---|---|---|---|---|---|")
    for size, by_name in results.items():
        old, new = by_name["old"], by_name["new"]
        print(
            f"| {size} | {old.rate:,.0f} | {new.rate:,.0f} | {new.rate / old.rate:.2f}"
            f" | {old.server_us()} → {new.server_us()} | {old.client_us()} → {new.client_us()}"
            f" | {old.retry_ms()} → {new.retry_ms()} |"
        )


if __name__ == "__main__":
    main()

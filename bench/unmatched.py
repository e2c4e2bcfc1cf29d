"""A scanner on loopback: many distinct unmatched paths against one ``strata serve``.

``python -m bench.unmatched [--paths 100000]`` starts ``strata serve`` with the demo
canvas, sends that many distinct 404 paths with ``wrk`` (a Lua script numbers them),
and reports:

- requests sent and 404s received (every one must be a 404);
- what the writer did with them: stored under ``unmatched/``, shed, dropped;
- Postgres transactions committed during the run (``pg_stat_database.xact_commit``
  delta for the database, read after the server has exited so every backend has
  flushed its counters) and writer batches (``strata_writer_batch_size_count``);
- rows changed (inserted, updated, deleted tuples) and the summary's final size,
  which must stay within its per-canvas bound.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from bench.common import fresh_database, postgres, serve
from trace_store.db.unmatched import PATHS_PER_CANVAS

# Each wrk thread numbers its own paths; past its share it asks /healthz (not a 404,
# not stored) until every one of its 404s is in, then stops. wrk calls thread 0's
# request() once before the run to check it parses: that call is not a request sent.
LUA = r"""
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  target = tonumber(args[1])
  sent, got404, other = 0, 0, 0
  probe = (tid == 0)
end
function request()
  if probe then
    probe = false
    return wrk.format("GET", "/healthz")
  end
  if sent < target then
    sent = sent + 1
    return wrk.format("GET", string.format("/scan/%d/%d/x%x", tid, sent, sent * 7919))
  end
  return wrk.format("GET", "/healthz")
end
function response(status, headers, body)
  if status == 404 then got404 = got404 + 1 elseif status ~= 200 then other = other + 1 end
  if got404 + other >= target then wrk.thread:stop() end
end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("strata sent=%d got404=%d other=%d\n",
      t:get("sent"), t:get("got404"), t:get("other")))
  end
  io.write(string.format("strata p50_us=%d p99_us=%d\n",
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class Figures:
    """What one run measured."""

    paths: int
    sent: int
    got_404: int
    other: int
    seconds: float
    p50_ms: float
    p99_ms: float
    stored: int
    shed: int
    dropped: int
    batches: int
    transactions: int
    idle_transactions: int
    tuples_inserted: int
    tuples_updated: int
    tuples_deleted: int
    summary_rows: int
    summary_count: int
    bound: int = PATHS_PER_CANVAS


def _metrics(base: str) -> dict[str, float]:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        # The loop-lag histogram moves every 20 ms: it is no sign of the writer's work.
        if line and not line.startswith(("#", "strata_event_loop_lag")):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def _settle(base: str, timeout: float = 120.0) -> dict[str, float]:
    """Metrics once the writer queue is empty and nothing moved for a second."""
    deadline = time.monotonic() + timeout
    last: dict[str, float] = {}
    while True:
        now = _metrics(base)
        quiet = now.get("strata_writer_queue_depth", 0) == 0 and now == last
        if quiet or time.monotonic() > deadline:
            return now
        last = now
        time.sleep(1.0)


async def _db_stats(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        stats = await conn.fetchrow(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted"
            " FROM pg_stat_database WHERE datname = current_database()"
        )
        summary = await conn.fetchrow(
            "SELECT count(*) AS rows, coalesce(sum(count), 0) AS total FROM unmatched"
        )
    finally:
        await conn.close()
    assert stats is not None
    assert summary is not None
    return {**dict(stats), "rows": summary["rows"], "total": summary["total"]}


def _unmatched_answered(base: str) -> int:
    return int(
        sum(
            v
            for k, v in _metrics(base).items()
            if k.startswith("strata_requests_total") and 'outcome="unmatched"' in k
        )
    )


def _wrk(base: str, paths: int, connections: int, threads: int, cap: float) -> str:
    """Run wrk until the server has answered ``paths`` 404s, then stop it.

    A wrk thread can stop itself, but wrk's main thread still sleeps for the whole
    ``-d``: so the run is ended with SIGINT, which makes wrk print its summary.
    """
    assert urlsplit(base).hostname in ("127.0.0.1", "localhost"), "load stays on loopback"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA)
    try:
        proc = subprocess.Popen(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{round(cap)}s",
                "-s",
                script.name,
                base + "/",
                "--",
                str(paths // threads),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + cap
        while proc.poll() is None and time.monotonic() < deadline:
            if _unmatched_answered(base) >= paths:
                break
            time.sleep(0.25)
        time.sleep(0.5)  # the last responses reach wrk's counters
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        if proc.returncode not in (0, None):
            raise RuntimeError(f"wrk failed ({proc.returncode}): {err}")
        return out
    finally:
        Path(script.name).unlink()


def run(
    database: str,
    paths: int,
    *,
    connections: int = 32,
    threads: int = 1,
    cap: float = 300.0,
    idle_seconds: float = 3.0,
    env: dict[str, str] | None = None,
) -> Figures:
    """Serve the demo canvas on ``database`` (fresh) and scan it with ``paths`` 404s."""
    assert paths % threads == 0, "paths must split evenly over the wrk threads"
    with serve(database, {"STRATA_TRACE_SAMPLE": "all", **(env or {})}) as served:
        time.sleep(1.5)  # let start-up transactions reach pg_stat_database
        # The idle rate: periodic tasks (pin outbox, leases) commit on their own.
        idle = asyncio.run(_db_stats(database))
        time.sleep(idle_seconds)
        before = asyncio.run(_db_stats(database))
        idle_rate = (before["xact_commit"] - idle["xact_commit"] - 1) / idle_seconds
        window = time.monotonic()
        out = _wrk(served.gateway, paths, connections, threads, cap)
        seconds = time.monotonic() - window
        metrics = _settle(served.gateway)
    # The server has exited: every backend flushed its statistics.
    time.sleep(1.0)
    after = asyncio.run(_db_stats(database))
    window = time.monotonic() - window
    counts = [tuple(map(int, m)) for m in re.findall(r"sent=(\d+) got404=(\d+) other=(\d+)", out)]
    latency = re.search(r"p50_us=(\d+) p99_us=(\d+)", out)
    assert latency is not None, out
    dropped = sum(
        v
        for k, v in metrics.items()
        if k.startswith("strata_traces_dropped_total") and "unmatched_shed" not in k
    )
    return Figures(
        paths=paths,
        sent=sum(c[0] for c in counts),
        got_404=sum(c[1] for c in counts),
        other=sum(c[2] for c in counts),
        seconds=seconds,
        p50_ms=int(latency.group(1)) / 1000,
        p99_ms=int(latency.group(2)) / 1000,
        stored=int(metrics.get('strata_traces_written_total{kind="unmatched"}', 0)),
        shed=int(metrics.get('strata_traces_dropped_total{reason="unmatched_shed"}', 0)),
        dropped=int(dropped),
        batches=int(metrics.get("strata_writer_batch_size_count", 0)),
        # Less the reads of _db_stats's own (autocommit) and the idle baseline.
        transactions=after["xact_commit"] - before["xact_commit"] - 1,
        idle_transactions=round(idle_rate * window),
        tuples_inserted=after["tup_inserted"] - before["tup_inserted"],
        tuples_updated=after["tup_updated"] - before["tup_updated"],
        tuples_deleted=after["tup_deleted"] - before["tup_deleted"],
        summary_rows=after["rows"],
        summary_count=after["total"],
    )


def table(f: Figures) -> str:
    """The figures as a Markdown table."""
    rows = [
        ("distinct 404 paths sent", f"{f.sent:,}"),
        ("404 answers", f"{f.got_404:,}" + (f" (other: {f.other})" if f.other else "")),
        ("wall time, req/s", f"{f.seconds:.1f} s, {f.sent / f.seconds:,.0f}"),
        ("latency p50 / p99", f"{f.p50_ms:.2f} / {f.p99_ms:.2f} ms"),
        ("stored under unmatched/", f"{f.stored:,}"),
        ("shed (queue half full) / dropped", f"{f.shed:,} / {f.dropped:,}"),
        ("writer batches", f"{f.batches:,}"),
        (
            "Postgres transactions (xact_commit delta; of which idle baseline)",
            f"{f.transactions:,}; {f.idle_transactions:,}",
        ),
        (
            "tuples inserted / updated / deleted",
            f"{f.tuples_inserted:,} / {f.tuples_updated:,} / {f.tuples_deleted:,}",
        ),
        ("summary rows (bound)", f"{f.summary_rows:,} ({f.bound:,})"),
        ("requests counted in the summary", f"{f.summary_count:,}"),
    ]
    lines = ["| measure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--paths", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=300.0, help="cap on the wrk run")
    args, _ = parser.parse_known_args()
    with postgres() as admin:
        database = fresh_database(admin)
        figures = run(database, args.paths, connections=args.connections, cap=args.seconds)
    print(f"\n## Unmatched scan: {args.paths:,} distinct 404 paths, wrk -c{args.connections}\n")
    print(table(figures))


if __name__ == "__main__":
    main()

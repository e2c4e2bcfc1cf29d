"""Gateway throughput untraced, traced with the inline writer, and traced with the
writer process, side by side in one run, on ``bench.canvas``.

Three ``strata serve`` processes: ``none`` (``STRATA_TRACE_SAMPLE=none``), ``inline``
and ``process`` (``STRATA_TRACE_SAMPLE=all`` with ``STRATA_WRITER=inline|process``).

**Saturation:** for each route (``/hello``, the 20-call ``/chain``, the 200-call
``/wide``, the tagged ``/tagged``) the configurations alternate over several rounds (so
drift on a shared machine hits all alike) and the median round is reported. Overhead
per request is ``1/traced - 1/untraced`` in µs; "stored" is index rows divided by the
requests the traced server answered. After each traced run the bench waits for
strata's CPU to go quiet, so the writer's backlog and Postgres's work for it count in
that run. The CPU tables count strata's own processes only: each gateway, its writer
process, and the bench's embedded Postgres (its postmaster and every backend and
auxiliary process under it; not measured for an external ``STRATA_TEST_DATABASE_URL``
server). The last table is the CPU per stored trace of all of it, traced minus
untraced, against the issue's target.

**Fixed rate** (the 20-call ``/chain``): wrk paced by a Lua ``delay()`` (each connection
waits 10 ms after each response), at rising rates. At a rate all three configurations
sustain, throughput says nothing; the overhead is the gateway process's CPU time per
request (``/proc``: user + system), traced minus untraced. The writer process's CPU is
shown apart: it runs on the other core. The table marks the highest rate at which the
process writer stored every traced request.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    Served,
    WrkResult,
    count_rows,
    cpu_seconds,
    fresh_database,
    postgres,
    postgres_pid,
    serve,
    tree_cpu_seconds,
    wrk,
)

APP = "bench.canvas:canvas"
#: Route -> handler id, and what the route's trace holds.
ROUTES = {"/hello": "hello", "/chain": "chain", "/wide": "wide", "/tagged": "tagged"}
SHAPES = {
    "/hello": "no user call",
    "/chain": "20 user calls",
    "/wide": "200 user calls",
    "/tagged": "20 user calls on bytes, datetimes and ints > 2**60",
}
MODES = {
    "none": {"STRATA_TRACE_SAMPLE": "none", "STRATA_WRITER": "inline"},
    "inline": {"STRATA_TRACE_SAMPLE": "all", "STRATA_WRITER": "inline"},
    "process": {"STRATA_TRACE_SAMPLE": "all", "STRATA_WRITER": "process"},
}
TRACED = ("inline", "process")
#: The issue's budget: CPU per stored trace of everything strata runs for it.
TARGET_US = 100.0
PACE_MS = 10


def children_cpu_seconds() -> float:
    """CPU time of this process's finished children (the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuSplit:
    """CPU seconds wrk runs cost each process, the requests they made and the traces
    stored for them."""

    gateway: float = 0.0
    writer: float = 0.0
    postgres: float = 0.0
    wrk: float = 0.0
    requests: int = 0
    stored: int = 0

    def add(self, other: CpuSplit) -> None:
        self.gateway += other.gateway
        self.writer += other.writer
        self.postgres += other.postgres
        self.wrk += other.wrk
        self.requests += other.requests
        self.stored += other.stored

    def per_request_us(self, seconds: float) -> float:
        """``seconds`` of CPU spread over this split's requests, in µs."""
        return seconds / max(1, self.requests) * 1e6


def settle(busy: Callable[[], float], quiet: float = 0.05, limit: float = 15.0) -> None:
    """Wait until ``busy()`` (CPU seconds so far) grows by less than ``quiet`` of a core
    over half a second, or ``limit`` seconds. Half a second is longer than the writer's
    batch wait (0.4 s), so a batch waiting to fill cannot pass for quiet; ``quiet`` is
    above what idle gateways and an idle Postgres spend, and far below a writer
    catching up (a core)."""
    interval = 0.5
    last, deadline = busy(), time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = busy()
        if now - last < quiet * interval:
            return
        last = now


def strata_cpu_seconds(servers: dict[str, Served], pg_pid: int | None) -> float:
    """CPU time so far of every gateway, its writer process and the Postgres tree."""
    total = tree_cpu_seconds(pg_pid) if pg_pid else 0.0
    for served in servers.values():
        child = writer_pid(served.proc.pid)
        total += cpu_seconds(served.proc.pid) + (tree_cpu_seconds(child) if child else 0.0)
    return total


def measured_wrk(
    served: Served,
    route: str,
    seconds: float,
    connections: int,
    pg_pid: int | None,
    traced: bool,
) -> tuple[WrkResult, CpuSplit]:
    """One wrk run, the CPU the gateway, its writer process, its Postgres and wrk spent
    on it, and (``traced``) the index rows it stored. A traced run lasts until strata's
    CPU goes quiet; the rows are counted outside the CPU marks, since a ``count(*)``
    over a large table is Postgres work of the bench's, not strata's."""
    pid = served.proc.pid
    child = writer_pid(pid)
    handler = ROUTES[route]

    def marks() -> list[float]:
        # Postgres: the postmaster's whole tree, pooled connections and exited ones.
        return [
            cpu_seconds(pid),
            tree_cpu_seconds(child) if child else 0.0,
            tree_cpu_seconds(pg_pid) if pg_pid else 0.0,
            children_cpu_seconds(),
        ]

    rows = count_rows(served.database_url, handler, 0) if traced else 0
    before = marks()
    result = wrk(served.gateway + route, seconds, connections)
    if traced:
        settle(lambda: sum(marks()[:3]))
    spent = [b - a for a, b in zip(before, marks(), strict=True)]
    stored = count_rows(served.database_url, handler, 0) - rows if traced else 0
    return result, CpuSplit(*spent, requests=result.requests, stored=stored)


def writer_pid(gateway_pid: int) -> int | None:
    """The writer process started by ``gateway_pid``, if any."""
    for task in Path(f"/proc/{gateway_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if "trace_store.writer.child" in Path(f"/proc/{child}/cmdline").read_text():
                return int(child)
    return None


def paced_wrk(url: str, rate: int, seconds: float) -> WrkResult:
    """wrk at about ``rate`` requests/s: ``rate / 100`` connections, 10 ms apart each."""
    connections = max(1, rate * PACE_MS // 1000)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f"function delay() return {PACE_MS} end\n")
    try:
        return wrk(url, seconds, connections, script=script.name)
    finally:
        os.unlink(script.name)


def saturation(servers: dict[str, Served], pg_pid: int | None, args: argparse.Namespace) -> None:
    """Every route at saturation, the configurations alternating; three tables."""
    results: dict[tuple[str, str], list[WrkResult]] = {}
    cpu = {(route, mode): CpuSplit() for route in ROUTES for mode in servers}
    for route in ROUTES:
        for served in servers.values():  # warm-up, left out of every figure
            wrk(served.gateway + route, 1.0, args.connections)
        # The warm-up's traces are stored before the first measured run starts.
        settle(lambda: strata_cpu_seconds(servers, pg_pid))
        for _ in range(args.rounds):
            for mode, served in servers.items():
                result, spent = measured_wrk(
                    served, route, args.seconds, args.connections, pg_pid, mode in TRACED
                )
                results.setdefault((route, mode), []).append(result)
                cpu[(route, mode)].add(spent)

    print("\n## Gateway at saturation: untraced vs traced (inline writer, writer process)\n")
    print(", ".join(f"`{route}`: {shape}" for route, shape in SHAPES.items()) + ".\n")
    print(
        "| route | writer | untraced req/s | traced req/s | ratio | p50 ms off/on "
        "| p99 ms off/on | overhead µs/req | stored |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for route in ROUTES:
        off_runs = results[(route, "none")]
        off_rps = statistics.median(r.rps for r in off_runs)
        for mode in TRACED:
            on_runs = results[(route, mode)]
            on_rps = statistics.median(r.rps for r in on_runs)
            p50 = [statistics.median(r.p50_ms for r in runs) for runs in (off_runs, on_runs)]
            p99 = [statistics.median(r.p99_ms for r in runs) for runs in (off_runs, on_runs)]
            overhead = (1 / on_rps - 1 / off_rps) * 1e6
            split = cpu[(route, mode)]
            fraction = split.stored / max(1, split.requests)
            errors = sum(r.errors for r in off_runs + on_runs)
            print(
                f"| {route} | {mode} | {off_rps:,.0f} | {on_rps:,.0f} | {on_rps / off_rps:.2f} "
                f"| {p50[0]:.2f} / {p50[1]:.2f} | {p99[0]:.2f} / {p99[1]:.2f} "
                f"| {overhead:.1f} | {fraction:.3f} |" + (f" errors: {errors}" if errors else "")
            )

    unmeasured = "not measured (external server)"
    print("\n## Where the CPU goes at saturation, /chain: µs per request, 2 cores in all\n")
    if pg_pid is None:
        print(f"Postgres: {unmeasured}.\n")
    print(
        "| writer | gateway | writer process | Postgres (own) | wrk | total | "
        "ceiling req/s (2 cores / total) | measured req/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for mode in servers:
        split = cpu[("/chain", mode)]
        parts = [split.gateway, split.writer, split.postgres, split.wrk]
        per = [split.per_request_us(part) for part in parts]
        total = sum(per)
        rps = statistics.median(r.rps for r in results[("/chain", mode)])
        print(
            f"| {mode} | "
            + " | ".join(f"{part:.1f}" for part in per)
            + f" | {total:.1f} | {2e6 / total:,.0f} | {rps:,.0f} |"
        )

    print(
        "\n## CPU per stored trace of everything strata runs for it, at saturation: "
        "µs, traced minus untraced\n"
    )
    if pg_pid is None:
        print(f"Postgres: {unmeasured}; the sum leaves it out.\n")
    print(
        "| route | writer | stored | gateway extra | writer process | Postgres extra "
        f"| **strata per stored trace** | target ≤ {TARGET_US:.0f} |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for route in ROUTES:
        off = cpu[(route, "none")]
        for mode in TRACED:
            on = cpu[(route, mode)]
            # Per request, traced minus untraced, then per stored trace: a trace the
            # inline writer dropped still cost its capture, so it counts against the kept.
            per_stored = on.requests / max(1, on.stored)
            gateway = (on.per_request_us(on.gateway) - off.per_request_us(off.gateway)) * per_stored
            writer = on.writer / max(1, on.stored) * 1e6
            pg = (on.per_request_us(on.postgres) - off.per_request_us(off.postgres)) * per_stored
            total = gateway + writer + (pg if pg_pid else 0.0)
            verdict = "met" if total <= TARGET_US else f"over by {total - TARGET_US:.0f}"
            print(
                f"| {route} | {mode} | {on.stored / max(1, on.requests):.3f} | {gateway:.1f} "
                f"| {writer:.1f} | "
                + (f"{pg:.1f}" if pg_pid else "-")
                + f" | **{total:.1f}** | {verdict} |"
            )


def dropped(served: Served) -> float:
    """``strata_traces_dropped_total`` over all reasons, from the gateway's /metrics."""
    with urllib.request.urlopen(served.gateway + "/metrics", timeout=10) as response:
        text = response.read().decode()
    prefix = "strata_traces_dropped_total"
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


@dataclass
class Paced:
    result: WrkResult
    gateway_cpu: float
    writer_cpu: float
    stored: int
    dropped: float


def paced(served: Served, database_url: str | None, rate: int, seconds: float) -> Paced:
    pid = served.proc.pid
    child = writer_pid(pid)
    before_rows = count_rows(database_url, "chain", 0) if database_url else 0
    dropped_before = dropped(served)
    cpu0 = cpu_seconds(pid)
    child0 = cpu_seconds(child) if child else 0.0
    result = paced_wrk(served.gateway + "/chain", rate, seconds)
    cpu = cpu_seconds(pid) - cpu0
    stored = count_rows(database_url, "chain") - before_rows if database_url else 0
    # Measured after the rows settled: includes the writer's catch-up work.
    child_cpu = cpu_seconds(child) - child0 if child else 0.0
    return Paced(result, cpu, child_cpu, stored, dropped(served) - dropped_before)


def fixed_rates(servers: dict[str, Served], dbs: dict[str, str], args: argparse.Namespace) -> None:
    rates = [int(r) for r in args.rates.split(",")]
    print("\n## Gateway at fixed rates, /chain (20 calls): CPU per request of the gateway\n")
    print(
        "| target req/s | writer | achieved req/s | p50 ms | p99 ms | gateway CPU µs/req "
        "| overhead µs/req | writer-process CPU µs/trace | stored | dropped |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    best: dict[str, int] = {}
    for rate in rates:
        runs = {
            mode: paced(served, dbs.get(mode), rate, args.seconds)
            for mode, served in servers.items()
        }
        base = runs["none"].gateway_cpu / max(1, runs["none"].result.requests) * 1e6
        for mode, run in runs.items():
            n = max(1, run.result.requests)
            per = run.gateway_cpu / n * 1e6
            # wrk does not count the responses in flight when it stops, the server
            # does: "stored" can exceed 1 slightly. The drop counter is the exact test.
            fraction = run.stored / n if mode in TRACED else float("nan")
            if mode in TRACED and run.dropped == 0:
                best[mode] = max(best.get(mode, 0), rate)
            writer_cpu = f"{run.writer_cpu / n * 1e6:.1f}" if mode == "process" else "-"
            print(
                f"| {rate:,} | {mode} | {run.result.rps:,.0f} | {run.result.p50_ms:.2f} "
                f"| {run.result.p99_ms:.2f} | {per:.1f} | "
                + ("-" if mode == "none" else f"{per - base:.1f}")
                + f" | {writer_cpu} | "
                + ("-" if mode == "none" else f"{fraction:.4f} | {run.dropped:.0f}")
                + (" | - |" if mode == "none" else " |")
            )
    for mode in TRACED:
        print(f"\nHighest target rate with no trace dropped ({mode}): {best.get(mode, 0):,} req/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    # 4 s runs keep the whole bench (four routes, three configurations) under 6 minutes.
    parser.add_argument("--seconds", type=float, default=4.0, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--rates", default="2000,3000,4000,5000,6000", help="fixed rates for /chain (req/s)"
    )
    parser.add_argument("--only", choices=("saturation", "rates"), help="run one part")
    args, _ = parser.parse_known_args()

    with postgres() as admin:
        dbs = {mode: fresh_database(admin) for mode in MODES}
        with (
            serve(dbs["none"], MODES["none"], app=APP) as off,
            serve(dbs["inline"], MODES["inline"], app=APP) as inline,
            serve(dbs["process"], MODES["process"], app=APP) as process,
        ):
            servers = {"none": off, "inline": inline, "process": process}
            time.sleep(1.0)  # let start-up work (adoption, first pool connections) finish
            if args.only != "rates":
                saturation(servers, postgres_pid(admin), args)
            if args.only != "saturation":
                fixed_rates(servers, {m: dbs[m] for m in TRACED}, args)


if __name__ == "__main__":
    main()

"""Gateway throughput untraced, traced with the inline writer, and traced with the
writer process, side by side in one run.

Three ``strata serve`` processes: ``none`` (``STRATA_TRACE_SAMPLE=none``), ``inline``
and ``process`` (``STRATA_TRACE_SAMPLE=all`` with ``STRATA_WRITER=inline|process``).

**Saturation:** for each route the configurations alternate over several rounds (so
drift on a shared machine hits all alike) and the median round is reported. Overhead
per request is ``1/traced - 1/untraced`` in µs; "stored" is index rows divided by the
requests the traced server answered.

**Fixed rate** (the 20-call ``/chain``): wrk paced by a Lua ``delay()`` (each connection
waits 10 ms after each response), at rising rates. At a rate all three configurations
sustain, throughput says nothing; the overhead is the gateway process's CPU time per
request (``/proc``: user + system), traced minus untraced. The writer process's CPU is
shown apart: it runs on the other core. The table marks the highest rate at which the
process writer stored every traced request.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.common import Served, WrkResult, count_rows, fresh_database, postgres, serve, wrk

ROUTES = {"/hello": "hello", "/chain": "chain"}
MODES = {
    "none": {"STRATA_TRACE_SAMPLE": "none", "STRATA_WRITER": "inline"},
    "inline": {"STRATA_TRACE_SAMPLE": "all", "STRATA_WRITER": "inline"},
    "process": {"STRATA_TRACE_SAMPLE": "all", "STRATA_WRITER": "process"},
}
TRACED = ("inline", "process")
PACE_MS = 10
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def postgres_cpu_seconds() -> float:
    """User + system CPU time of every Postgres process on the machine so far."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if (proc / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(proc.name))
    return total


def children_cpu_seconds() -> float:
    """CPU time of this process's finished children (the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuSplit:
    """CPU seconds one wrk run cost each process, and the requests it made."""

    gateway: float = 0.0
    writer: float = 0.0
    postgres: float = 0.0
    wrk: float = 0.0
    requests: int = 0

    def add(self, other: CpuSplit) -> None:
        self.gateway += other.gateway
        self.writer += other.writer
        self.postgres += other.postgres
        self.wrk += other.wrk
        self.requests += other.requests


def measured_wrk(
    served: Served, url: str, seconds: float, connections: int
) -> tuple[WrkResult, CpuSplit]:
    """One wrk run, and the CPU the gateway, its writer process, Postgres and wrk spent."""
    pid = served.proc.pid
    child = writer_pid(pid)

    def marks() -> list[float]:
        writer = cpu_seconds(child) if child else 0.0
        return [cpu_seconds(pid), writer, postgres_cpu_seconds(), children_cpu_seconds()]

    before = marks()
    result = wrk(url, seconds, connections)
    spent = [b - a for a, b in zip(before, marks(), strict=True)]
    return result, CpuSplit(*spent, requests=result.requests)


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


def saturation(servers: dict[str, Served], dbs: dict[str, str], args: argparse.Namespace) -> None:
    results: dict[tuple[str, str], list[WrkResult]] = {}
    cpu: dict[str, CpuSplit] = {mode: CpuSplit() for mode in servers}
    answered = {(route, mode): 0 for route in ROUTES for mode in TRACED}
    before = {mode: {h: count_rows(dbs[mode], h, 0) for h in ROUTES.values()} for mode in TRACED}
    for route in ROUTES:
        for mode, served in servers.items():  # warm-up; traced ones count as answered
            warm = wrk(served.gateway + route, 1.0, args.connections)
            if mode in TRACED:
                answered[(route, mode)] += warm.requests
        for _ in range(args.rounds):
            for mode, served in servers.items():
                result, spent = measured_wrk(
                    served, served.gateway + route, args.seconds, args.connections
                )
                results.setdefault((route, mode), []).append(result)
                if route == "/chain":
                    cpu[mode].add(spent)
                if mode in TRACED:
                    answered[(route, mode)] += result.requests

    print("\n## Gateway at saturation: untraced vs traced (inline writer, writer process)\n")
    print(
        "| route | writer | untraced req/s | traced req/s | ratio | p50 ms off/on "
        "| p99 ms off/on | overhead µs/req | stored |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for route, handler in ROUTES.items():
        off_runs = results[(route, "none")]
        off_rps = statistics.median(r.rps for r in off_runs)
        for mode in TRACED:
            on_runs = results[(route, mode)]
            on_rps = statistics.median(r.rps for r in on_runs)
            p50 = [statistics.median(r.p50_ms for r in runs) for runs in (off_runs, on_runs)]
            p99 = [statistics.median(r.p99_ms for r in runs) for runs in (off_runs, on_runs)]
            overhead = (1 / on_rps - 1 / off_rps) * 1e6
            stored = count_rows(dbs[mode], handler) - before[mode][handler]
            fraction = stored / max(1, answered[(route, mode)])
            errors = sum(r.errors for r in off_runs + on_runs)
            print(
                f"| {route} | {mode} | {off_rps:,.0f} | {on_rps:,.0f} | {on_rps / off_rps:.2f} "
                f"| {p50[0]:.2f} / {p50[1]:.2f} | {p99[0]:.2f} / {p99[1]:.2f} "
                f"| {overhead:.1f} | {fraction:.3f} |" + (f" errors: {errors}" if errors else "")
            )

    print("\n## Where the CPU goes at saturation, /chain: µs per request, 2 cores in all\n")
    print(
        "| writer | gateway | writer process | Postgres | wrk | total | "
        "ceiling req/s (2 cores / total) | measured req/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for mode, split in cpu.items():
        n = max(1, split.requests) / 1e6
        parts = [split.gateway / n, split.writer / n, split.postgres / n, split.wrk / n]
        total = sum(parts)
        rps = statistics.median(r.rps for r in results[("/chain", mode)])
        print(
            f"| {mode} | "
            + " | ".join(f"{part:.1f}" for part in parts)
            + f" | {total:.1f} | {2e6 / total:,.0f} | {rps:,.0f} |"
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
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk run")
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
            serve(dbs["none"], MODES["none"]) as off,
            serve(dbs["inline"], MODES["inline"]) as inline,
            serve(dbs["process"], MODES["process"]) as process,
        ):
            servers = {"none": off, "inline": inline, "process": process}
            time.sleep(1.0)  # let start-up work (adoption, first pool connections) finish
            if args.only != "rates":
                saturation(servers, dbs, args)
            if args.only != "saturation":
                fixed_rates(servers, {m: dbs[m] for m in TRACED}, args)


if __name__ == "__main__":
    main()

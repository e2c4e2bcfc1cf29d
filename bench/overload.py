"""Memory under overload: RSS of ``strata serve`` (and its writer process) at a
sustainable rate, then at ten times that rate, for the inline and the process writer in
one run. Requests must keep being answered and dropped traces must be counted."""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

from bench.common import Served, fresh_database, postgres, serve
from bench.gateway import dropped, paced_wrk, writer_pid

MODES = {"inline": "inline", "process": "process"}


def rss_mb(pid: int | None) -> float:
    """Resident set size of one process in MiB (0 when there is none)."""
    if pid is None:
        return 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_during(served: Served, rate: int, seconds: float) -> tuple[float, int, int]:
    """Run paced load; return (peak RSS of gateway + writer MiB, requests, non-2xx)."""
    pids = [served.proc.pid, writer_pid(served.proc.pid)]
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, sum(rss_mb(pid) for pid in pids))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = paced_wrk(served.gateway + "/chain", rate, seconds)
    finally:
        done.set()
        sampler.join()
    return peak, result.requests, result.errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=1500, help="sustainable rate, req/s")
    parser.add_argument("--seconds", type=float, default=8.0)
    args, _ = parser.parse_known_args()
    rows = []
    with postgres() as admin:
        for mode in MODES:
            env = {"STRATA_TRACE_SAMPLE": "all", "STRATA_WRITER": mode}
            with serve(fresh_database(admin), env) as served:
                paced_wrk(served.gateway + "/chain", args.rate, 2)  # warm up
                base, base_n, base_err = peak_rss_during(served, args.rate, args.seconds)
                before = dropped(served)
                over, over_n, over_err = peak_rss_during(served, args.rate * 10, args.seconds)
                rows.append((mode, base, base_n, base_err, over, over_n, over_err,
                             dropped(served) - before))  # fmt: skip
    print(f"\n## Overload: /chain at {args.rate} req/s, then 10x ({args.rate * 10}) offered\n")
    print(
        "| writer | RSS MiB sustainable | RSS MiB at 10x | ratio | answered at 10x "
        "| non-2xx | traces dropped (counted) |"
    )
    print("|---|---|---|---|---|---|---|")
    for mode, base, _, _, over, over_n, over_err, drops in rows:
        print(
            f"| {mode} | {base:.0f} | {over:.0f} | {over / base:.2f} | {over_n:,} "
            f"| {over_err} | {drops:,.0f} |"
        )


if __name__ == "__main__":
    main()

"""Gateway throughput with tracing off and on, side by side in one run.

For each route, the two configurations alternate over several rounds (so drift on a
shared machine hits both alike) and the median round is reported. Overhead per
request is ``1/traced - 1/untraced`` in microseconds; "stored" is index rows divided by
the requests the traced server answered.
"""

from __future__ import annotations

import argparse
import statistics

from bench.common import count_rows, fresh_database, postgres, serve, wrk

ROUTES = {"/hello": "hello", "/chain": "chain"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args, _ = parser.parse_known_args()

    with postgres() as admin:
        dbs = {mode: fresh_database(admin) for mode in ("none", "all")}
        with (
            serve(dbs["none"], {"STRATA_TRACE_SAMPLE": "none"}) as off,
            serve(dbs["all"], {"STRATA_TRACE_SAMPLE": "all"}) as on,
        ):
            servers = {"none": off, "all": on}
            results: dict[tuple[str, str], list] = {}
            answered = {route: 0 for route in ROUTES}
            for route in ROUTES:
                # Warm up both; the traced server's warm-up requests count as answered.
                for mode, served in servers.items():
                    warm = wrk(served.gateway + route, 1.0, args.connections)
                    if mode == "all":
                        answered[route] += warm.requests
                for _ in range(args.rounds):
                    for mode, served in servers.items():
                        result = wrk(served.gateway + route, args.seconds, args.connections)
                        results.setdefault((route, mode), []).append(result)
            for route in ROUTES:
                answered[route] += sum(r.requests for r in results[(route, "all")])
            stored = {route: count_rows(dbs["all"], handler) for route, handler in ROUTES.items()}

    print("\n## Gateway: tracing off (STRATA_TRACE_SAMPLE=none) vs on (all)\n")
    print(
        "| route | untraced req/s | traced req/s | ratio | p50 ms off/on | p99 ms off/on "
        "| overhead µs/req | stored |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for route in ROUTES:
        off_runs, on_runs = results[(route, "none")], results[(route, "all")]
        off_rps = statistics.median(r.rps for r in off_runs)
        on_rps = statistics.median(r.rps for r in on_runs)
        p50 = [statistics.median(r.p50_ms for r in runs) for runs in (off_runs, on_runs)]
        p99 = [statistics.median(r.p99_ms for r in runs) for runs in (off_runs, on_runs)]
        overhead = (1 / on_rps - 1 / off_rps) * 1e6
        fraction = stored[route] / max(1, answered[route])
        errors = sum(r.errors for r in off_runs + on_runs)
        print(
            f"| {route} | {off_rps:,.0f} | {on_rps:,.0f} | {on_rps / off_rps:.2f} "
            f"| {p50[0]:.2f} / {p50[1]:.2f} | {p99[0]:.2f} / {p99[1]:.2f} "
            f"| {overhead:.1f} | {fraction:.3f} |" + (f" errors: {errors}" if errors else "")
        )


if __name__ == "__main__":
    main()

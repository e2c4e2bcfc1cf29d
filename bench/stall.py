"""Does any request stall a strata process? ``/healthz`` on both ports, probed every
10 ms while one kind of hostile request is served back to back (two at a time, 16 of
each), and what the thread hop of a sync handler costs.

One ``strata serve`` (writer in its own process, the default) serves every kind in turn;
the probe and the load run in this process. SPEC §12 asks for a p99 under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp

from bench.common import fresh_database, postgres, serve, wrk
from tests.probe import Probe, p99

#: Each kind is served for at least this long, so that the probe sees it.
MIN_SECONDS = 2.0

KINDS: dict[str, tuple[str, str, bytes | None]] = {
    "idle": ("GET", "/hello-async", None),
    "recursion error (~500 calls share it)": ("GET", "/recurse", None),
    "600-deep JSON body, recursive walk": ("POST", "/deep", b"[" * 600 + b"]" * 600),
    "maximal trace (10,000 calls, 1 MiB bodies)": ("POST", "/max", b"x" * (1024 * 1024)),
    "blocking sync handler (1 s sleep)": ("GET", "/block", None),
}


async def _load(gateway: str, kind: tuple[str, str, bytes | None], requests: int) -> None:
    method, path, body = kind

    async def one_client(http: aiohttp.ClientSession) -> None:
        for _ in range(requests // 2):
            async with http.request(method, gateway + path, data=body) as response:
                await response.read()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        await asyncio.gather(one_client(http), one_client(http))


async def _drained(editor: str) -> None:
    """Wait until the writer has stored what it was given (its work is not the next
    kind's): the indexed-traces counter stops moving for three scrapes in a row (the
    writer process reports its counters to the gateway about once a second)."""
    seen: list[list[str]] = []
    async with aiohttp.ClientSession() as http:
        while len(seen) < 3 or seen[-1] != seen[-3]:
            async with http.get(editor + "/metrics") as response:
                text = await response.text()
            seen.append([ln for ln in text.splitlines() if ln.startswith("strata_traces_indexed")])
            await asyncio.sleep(1.0)


async def _lag_buckets(editor: str) -> dict[float, float]:
    """The cumulative buckets of ``strata_event_loop_lag_seconds`` (le -> count)."""
    async with aiohttp.ClientSession() as http, http.get(editor + "/metrics") as response:
        text = await response.text()
    buckets = {}
    for line in text.splitlines():
        if line.startswith("strata_event_loop_lag_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(le)] = float(line.rsplit(" ", 1)[1])
    return buckets


def _lag_cells(before: dict[float, float], after: dict[float, float]) -> list[str]:
    """The p99 bucket bound of the loop lag between two scrapes, and ticks over 100 ms."""
    delta = {le: after[le] - before.get(le, 0.0) for le in sorted(after)}
    total = delta[float("inf")]
    p99 = next(le for le, count in delta.items() if count >= 0.99 * total)
    over = total - delta[0.1]
    bound = "> 2.5 s" if p99 == float("inf") else f"≤ {p99 * 1000:g}"
    return [bound, f"{over:.0f} of {total:.0f}"]


async def _measure(gateway: str, editor: str, requests: int) -> list[list[str]]:
    rows = []
    for name, kind in KINDS.items():
        before = await _lag_buckets(editor)
        with Probe([gateway, editor]) as probe:  # its own process: the load's work is not its
            t0 = time.perf_counter()
            served = 0
            while served < requests or time.perf_counter() - t0 < MIN_SECONDS:
                await _load(gateway, kind, requests)
                served += requests
            elapsed = time.perf_counter() - t0
        after = await _lag_buckets(editor)
        await _drained(editor)
        cells = [name, f"{served:,} in {elapsed:.1f} s", *_lag_cells(before, after)]
        for url in (gateway, editor):
            ms = [s * 1000 for s in probe.latencies[url]]
            cells += [f"{statistics.median(ms):.1f}", f"{p99(ms):.1f}", f"{max(ms):.1f}"]
        rows.append(cells)
    return rows


def _table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0, help="wrk time per handler")
    parser.add_argument("--requests", type=int, default=16, help="hostile requests per kind")
    args, _ = parser.parse_known_args()
    with postgres() as admin:
        with serve(fresh_database(admin), {}, app="tests.canvases_hostile:canvas") as server:
            rows = asyncio.run(_measure(server.gateway, server.editor, args.requests))
            print(
                "\n**Stalls** (`bench.stall`): the strata process's own event-loop lag (a timer due"
                " every 20 ms, `strata_event_loop_lag_seconds`) and /healthz latency in ms from a"
                " probe process, while each request kind is served back to back, two at a time"
                " (the writer drains between kinds)\n"
            )
            _table(
                [
                    "request kind",
                    "served",
                    "loop lag p99 ms",
                    "lag ticks > 100 ms",
                    "gateway /healthz p50",
                    "p99",
                    "max",
                    "editor p50",
                    "p99",
                    "max",
                ],
                rows,
            )
            sync = wrk(server.gateway + "/hello-sync", args.seconds)
            plain = wrk(server.gateway + "/hello-async", args.seconds)
        print("\n**Sync handlers in the thread pool** (`wrk -c32`, every request traced)\n")
        _table(
            ["handler", "req/s", "p50 ms", "p99 ms", "ratio"],
            [
                [
                    "async def",
                    f"{plain.rps:,.0f}",
                    f"{plain.p50_ms:.2f}",
                    f"{plain.p99_ms:.2f}",
                    "1.00",
                ],
                [
                    "def (STRATA_SYNC_THREADS=32)",
                    f"{sync.rps:,.0f}",
                    f"{sync.p50_ms:.2f}",
                    f"{sync.p99_ms:.2f}",
                    f"{sync.rps / plain.rps:.2f}",
                ],
            ],
        )


if __name__ == "__main__":
    main()

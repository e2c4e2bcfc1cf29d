"""Does any request stall a strata process? ``/healthz`` on both ports, probed every
10 ms while one kind of hostile request is served back to back (two at a time), and
what the thread hop of a sync handler costs.

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

KINDS: dict[str, tuple[str, str, bytes | None]] = {
    "idle": ("GET", "/hello-async", None),
    "recursion error (~500 calls share it)": ("GET", "/recurse", None),
    "600-deep JSON body, recursive walk": ("POST", "/deep", b"[" * 600 + b"]" * 600),
    "maximal trace (10,000 calls, 1 MiB bodies)": ("POST", "/max", b"x" * (1024 * 1024)),
    "blocking sync handler (1 s sleep)": ("GET", "/block", None),
}


async def _probe(urls: list[str], stop: asyncio.Event) -> dict[str, list[float]]:
    seen: dict[str, list[float]] = {url: [] for url in urls}
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            for url in urls:
                t0 = time.perf_counter()
                async with http.get(url + "/healthz") as response:
                    await response.read()
                seen[url].append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.01)
    return seen


async def _load(gateway: str, kind: tuple[str, str, bytes | None], seconds: float) -> int:
    method, path, body = kind
    done = 0
    deadline = time.monotonic() + seconds

    async def one_client(http: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            async with http.request(method, gateway + path, data=body) as response:
                await response.read()
            done += 1

    timeout = aiohttp.ClientTimeout(total=seconds + 30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(one_client(http), one_client(http))
    return done


async def _measure(gateway: str, editor: str, seconds: float) -> list[list[str]]:
    rows = []
    for name, kind in KINDS.items():
        stop = asyncio.Event()
        probe = asyncio.create_task(_probe([gateway, editor], stop))
        served = await _load(gateway, kind, seconds)
        await asyncio.sleep(0.5)  # the writer's share of the last traces
        stop.set()
        seen = await probe
        cells = [name, f"{served:,}"]
        for url in (gateway, editor):
            ms = seen[url]
            cells += [
                f"{statistics.median(ms):.1f}",
                f"{statistics.quantiles(ms, n=100)[98]:.1f}",
                f"{max(ms):.1f}",
            ]
        rows.append(cells)
    return rows


def _table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    args, _ = parser.parse_known_args()
    with postgres() as admin:
        with serve(fresh_database(admin), {}, app="tests.canvases_hostile:canvas") as server:
            rows = asyncio.run(_measure(server.gateway, server.editor, args.seconds))
            print(
                "\n**Stalls** (`bench.stall`): /healthz latency in ms while each request kind is"
                " served back to back, two at a time\n"
            )
            _table(
                ["request kind", "served", "gateway p50", "p99", "max", "editor p50", "p99", "max"],
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

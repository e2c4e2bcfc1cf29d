"""Manifest latency for 1 KB, 1 MB and 10 MB traces, next to the old approach of
sending the trace body through the API server, in one run."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bench.common import fresh_database, postgres, serve
from trace_store.document import codec

SIZES = {"1 KB": 1_000, "1 MB": 1_000_000, "10 MB": 10_000_000}
API = "/api/v1/canvases/shop"
AUTH = {"Authorization": "Bearer bench-admin"}


async def _median_ms(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


async def _new_trace(http: aiohttp.ClientSession, editor: str, known: set[str]) -> str:
    """Wait for the writer to index a trace of ``echo`` that is not in ``known``."""
    for _ in range(200):
        async with http.get(f"{editor}{API}/handlers/echo/traces?limit=5", headers=AUTH) as r:
            fresh = [
                t["trace_id"] for t in (await r.json())["traces"] if t["trace_id"] not in known
            ]
        if fresh:
            known.add(fresh[0])
            return str(fresh[0])
        await asyncio.sleep(0.05)
    raise TimeoutError("the trace was not indexed")


async def run(gateway: str, editor: str, n: int) -> dict[str, tuple[float, float]]:
    results = {}
    known: set[str] = set()
    async with aiohttp.ClientSession() as http:
        for label, size in SIZES.items():
            async with http.post(gateway + "/echo", data=b"x" * size) as response:
                assert response.status == 200
            trace_id = await _new_trace(http, editor, known)

            async def manifest(trace_id: str = trace_id) -> dict[str, Any]:
                async with http.get(f"{editor}{API}/traces/{trace_id}", headers=AUTH) as r:
                    body: dict[str, Any] = await r.json()
                    return body

            async def through_api() -> None:
                # The replaced design: the API server reads the trace and returns its JSON.
                url = (await manifest())["base"]["url"]
                async with (
                    aiohttp.ClientSession(auto_decompress=False) as plain,
                    plain.get(url) as r,
                ):
                    codec.decode(await r.read())

            results[label] = (
                await _median_ms(manifest, n),
                await _median_ms(through_api, max(3, n // 10)),
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100)
    args, _ = parser.parse_known_args()
    env = {"STRATA_MAX_BODY_BYTES": "20000000", "STRATA_MAX_REQUEST_BYTES": "20000000"}
    with postgres() as admin, serve(fresh_database(admin), env, app="tests.canvases:shop") as s:
        results = asyncio.run(run(s.gateway, s.editor, args.requests))
    base = results["1 KB"][0]
    print("\n## Manifest latency (median ms) vs sending the body through the API\n")
    print("| trace | manifest ms | ÷ 1 KB manifest | body through the API ms |")
    print("|---|---|---|---|")
    for label, (m, p) in results.items():
        print(f"| {label} | {m:.2f} | {m / base:.2f} | {p:.1f} |")


if __name__ == "__main__":
    main()

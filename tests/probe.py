"""A ``/healthz`` probe in a process of its own: how long a strata process takes to
answer while something else loads it.

The probe must not share an interpreter with the load: the load's own work (sending
and reading 1 MiB bodies, say) would hold the probe's requests back and show up as a
stall of the server's. So it runs in a child process, and reports when stopped.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
from typing import Any

import aiohttp

_CONTEXT = multiprocessing.get_context("spawn")


def _probe_main(urls: list[str], interval: float, halt: Any, out: Any) -> None:
    latencies: dict[str, list[float]] = {url: [] for url in urls}
    failures: list[str] = []

    async def run() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            while not halt.is_set():
                for url in urls:
                    t0 = time.perf_counter()
                    try:
                        async with http.get(url + "/healthz") as response:
                            await response.read()
                            if response.status != 200:
                                failures.append(f"{url}: {response.status}")
                    except Exception as exc:
                        failures.append(f"{url}: {exc!r}")
                    latencies[url].append(time.perf_counter() - t0)
                await asyncio.sleep(interval)

    asyncio.run(run())
    out.put((latencies, failures))


class Probe:
    """``GET /healthz`` on every URL in turn, every ``interval`` seconds, until stopped;
    then ``latencies`` (seconds, per URL) and ``failures`` are filled in."""

    def __init__(self, urls: list[str], interval: float = 0.01) -> None:
        self.urls = urls
        self.latencies: dict[str, list[float]] = {url: [] for url in urls}
        self.failures: list[str] = []
        self._halt = _CONTEXT.Event()
        self._out = _CONTEXT.Queue()
        self._process = _CONTEXT.Process(
            target=_probe_main, args=(urls, interval, self._halt, self._out), daemon=True
        )

    def start(self) -> None:
        """Start probing in the child process."""
        self._process.start()

    def stop(self) -> None:
        """Stop probing and collect what was seen."""
        self._halt.set()
        self.latencies, self.failures = self._out.get(timeout=60)
        self._process.join(timeout=30)

    def __enter__(self) -> Probe:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def all(self) -> list[float]:
        """Every latency, seconds."""
        return [s for seen in self.latencies.values() for s in seen]


def p99(latencies: list[float]) -> float:
    """The 99th percentile, never above the largest value seen."""
    return statistics.quantiles(latencies, n=100, method="inclusive")[98]

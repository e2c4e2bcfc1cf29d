"""Trace visibility: how long after its answer a request's trace is a live dot, at low
load, by writer batch wait, side by side in one run.

``python -m bench.visibility [--requests 20] [--gap 0.5]``

A real ``strata serve`` (writer process, local store in memory), an open event stream
(``/api/v1/canvases/demo/events``, as the page has), then one request every ``--gap``
seconds: the figure is the time from the response to the ``trace`` event for that
request's trace. The writer takes a batch when ``STRATA_BATCH_SIZE`` traces wait or the
oldest has waited ``STRATA_BATCH_WAIT_MS``: a longer wait makes fewer, larger objects
(requests to pay for, ``bench.cost``) and a later dot.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp

from bench.common import fresh_database, postgres, serve

AUTH = {"Authorization": "Bearer bench-admin"}
#: The batch waits compared (ms): before segments, and the default.
WAITS = (20, 400)


async def _dots(gateway: str, editor: str, requests: int, gap: float) -> list[float]:
    """Seconds from each response to its trace's event."""
    arrivals: list[float] = []
    timeout = aiohttp.ClientTimeout(total=None, sock_read=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        events = await http.get(f"{editor}/api/v1/canvases/demo/events", headers=AUTH)
        assert events.status == 200, await events.text()
        await events.content.readuntil(b"\n\n")  # retry: and id: the subscription exists

        async def listen() -> None:
            while True:
                block = await events.content.readuntil(b"\n\n")
                lines = dict(
                    line.split(": ", 1) for line in block.decode().splitlines() if ": " in line
                )
                if lines.get("event") == "trace":
                    arrivals.append(time.perf_counter())

        listener = asyncio.create_task(listen())
        answered: list[float] = []
        try:
            for user in range(requests):
                async with http.get(f"{gateway}/users/{user}") as response:
                    await response.read()
                    answered.append(time.perf_counter())
                await asyncio.sleep(gap)
            await asyncio.sleep(3)
        finally:
            listener.cancel()
            events.close()
    # One trace per request, in order: requests are far enough apart not to overtake.
    assert len(arrivals) == requests, f"{len(arrivals)} trace events for {requests} requests"
    return [arrived - at for at, arrived in zip(answered, arrivals, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between requests")
    args, _ = parser.parse_known_args()
    results = {}
    with postgres() as admin:
        for wait in WAITS:
            env = {"STRATA_STORE": "", "STRATA_BATCH_WAIT_MS": str(wait)}
            with serve(fresh_database(admin), env) as served:
                results[wait] = asyncio.run(
                    _dots(served.gateway, served.editor, args.requests, args.gap)
                )
    print(
        f"\n**Trace visibility** (`bench.visibility`): a request every {args.gap} s,"
        f" {args.requests} requests; seconds from the response to its live dot\n"
    )
    print("| batch wait | p50 | p90 | max |")
    print("|---|---|---|---|")
    for wait, delays in results.items():
        ordered = sorted(delays)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        print(
            f"| {wait} ms | {statistics.median(ordered):.3f} s | {p90:.3f} s"
            f" | {ordered[-1]:.3f} s |"
        )


if __name__ == "__main__":
    main()

"""Live events across processes and under load: two servers on one database, and 200
event-stream clients of which half never read, against a real ``strata serve``."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import asyncpg
import orjson

from tests.harness import SseReader
from trace_store.db import notify

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
ADMIN = "admin-token-for-the-scale-test"
EVENTS = "/api/v1/canvases/shop/events"


async def test_a_request_to_one_server_reaches_a_stream_on_the_other_within_a_second(
    database_url: str, tmp_path: Path
) -> None:
    shared = f"file://{tmp_path / 'objects'}"  # one database, one store, two processes
    with (
        serve_process(database_url, tmp_path / "a", store_url=shared) as (_, first),
        serve_process(database_url, tmp_path / "b", store_url=shared) as (_, second),
    ):
        headers = {"Authorization": f"Bearer {ADMIN}"}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.get(second["editor"] + EVENTS, headers=headers) as response:
                assert response.status == 200
                events = SseReader(response)
                await response.content.readuntil(b"\n\n")  # subscribed
                started = time.monotonic()
                async with http.get(first["gateway"] + "/users/5") as answer:
                    assert answer.status == 200
                event = await events.until("trace", timeout=2)
                elapsed = time.monotonic() - started
            assert event.json()["handler_id"] == "get_user"
            assert elapsed < 1.0, elapsed
            # The trace is the first server's: its index row is what both read.
            trace_id = event.json()["trace_id"]
            url = f"{second['editor']}/api/v1/canvases/shop/traces/{trace_id}"
            async with http.get(url, headers=headers) as manifest:
                assert manifest.status == 200, await manifest.text()


@contextmanager
def serve_process(
    database_url: str, data_dir: Path, *, store_url: str | None = None
) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """``strata serve`` as a subprocess; yields it and its URLs once ready."""
    env = {**os.environ, "STRATA_ADMIN_TOKEN": ADMIN, "STRATA_LOOP": "asyncio"}
    store = ["--store", store_url] if store_url else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "serve", "--app", "tests.canvases:shop",
         "--database-url", database_url, "--data-dir", str(data_dir), *store,
         "--gateway-port", "0", "--editor-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        urls: dict[str, str] = {}
        for line in proc.stdout:
            key, _, value = line.strip().partition(": ")
            if key in ("gateway", "editor"):
                urls[key] = value
            if line.strip() == "ready":
                break
        else:
            raise AssertionError(f"serve exited with {proc.wait()}")
        yield proc, urls
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def metric(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


async def test_200_streams_half_never_reading_keep_memory_bounded(
    database_url: str, tmp_path: Path
) -> None:
    readers, idlers, per_round, size = 100, 100, 20, 6000
    marker = b"\nevent: trace\n"
    with serve_process(database_url, tmp_path) as (proc, urls):
        editor = urls["editor"]
        host, port = editor.removeprefix("http://").split(":")
        headers = {"Authorization": f"Bearer {ADMIN}"}
        received = [0] * readers
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

            async def scrape() -> str:
                async with http.get(editor + "/metrics") as response:
                    return await response.text()

            async def read(i: int) -> None:
                async with http.get(editor + EVENTS, headers=headers) as response:
                    assert response.status == 200
                    tail = b""
                    async for chunk in response.content.iter_any():
                        data = tail + chunk
                        received[i] += data.count(marker)
                        tail = data[-(len(marker) - 1) :]

            request = (
                f"GET {EVENTS} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {ADMIN}\r\n\r\n"
            )
            idle_sockets = []
            loop = asyncio.get_running_loop()
            for _ in range(idlers):
                sock = socket.socket()
                # A small receive window: the kernel holds little, so the server's own
                # buffering is what is tested.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.setblocking(False)
                await loop.sock_connect(sock, (host, int(port)))
                await loop.sock_sendall(sock, request.encode())
                idle_sockets.append(sock)
            tasks = [asyncio.create_task(read(i)) for i in range(readers)]
            try:
                for _ in range(200):
                    if metric(await scrape(), "strata_events_clients ") == readers + idlers:
                        break
                    await asyncio.sleep(0.05)
                assert metric(await scrape(), "strata_events_clients ") == readers + idlers
                baseline = peak = rss_mb(proc.pid)
                conn = await asyncpg.connect(database_url)
                sent = rounds = 0
                peak_at_drop = 0.0
                pad = "x" * size
                started = time.monotonic()
                try:
                    after_drop = None
                    while rounds < 150 and (after_drop is None or rounds < after_drop + 20):
                        await notify.publish_many(
                            conn,
                            [
                                ("shop", "trace", {"n": sent + k, "pad": pad})
                                for k in range(per_round)
                            ],
                        )
                        sent += per_round
                        rounds += 1
                        deadline = time.monotonic() + 15
                        while min(received) < sent:
                            assert time.monotonic() < deadline, (min(received), sent)
                            await asyncio.sleep(0.01)
                        peak = max(peak, rss_mb(proc.pid))
                        if after_drop is None and rounds % 5 == 0:
                            dropped = metric(await scrape(), "strata_events_clients_dropped_total")
                            if dropped >= idlers:
                                # Keep going: with no idle client left, memory stays put.
                                after_drop, peak_at_drop = rounds, peak
                finally:
                    await conn.close()
                seconds = time.monotonic() - started
                text = await scrape()
                dropped = metric(text, 'strata_events_clients_dropped_total{reason="slow"}')
                figures = {
                    "events_sent": sent,
                    "bytes_per_client": sent * (size + 60),
                    "seconds": round(seconds, 2),
                    "rss_baseline_mb": round(baseline, 1),
                    "rss_peak_mb": round(peak, 1),
                    "rss_at_last_drop_mb": round(peak_at_drop, 1),
                    "events_after_last_drop": (rounds - (after_drop or rounds)) * per_round,
                    "rss_end_mb": round(rss_mb(proc.pid), 1),
                    "dropped_slow": dropped,
                    "open_streams_end": metric(text, "strata_events_clients "),
                    "buffered_bytes_end": metric(text, "strata_events_buffered_bytes"),
                    "undelivered_to_idlers_mb": round(idlers * sent * (size + 60) / 2**20, 1),
                }
                ARTIFACTS.mkdir(exist_ok=True)
                (ARTIFACTS / "events-200-clients.json").write_bytes(
                    orjson.dumps(figures, option=orjson.OPT_INDENT_2)
                )
                print(figures)
                # Every idle client was dropped; every reader got every event and is open.
                assert dropped == idlers, figures
                assert received == [sent] * readers
                assert figures["open_streams_end"] == readers
                # Far less than what the idle clients failed to take.
                assert peak - baseline < 80, figures
                assert figures["undelivered_to_idlers_mb"] > 5 * (peak - baseline), figures
                assert peak - peak_at_drop < 10, figures
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for sock in idle_sockets:
                    sock.close()

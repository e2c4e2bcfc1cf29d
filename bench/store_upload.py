"""Upload throughput to S3 over HTTP: boto3 in threads vs aiobotocore.

Decides which client ``S3Store`` uses for concurrent create-only puts. Both clients
send the same request (``PutObject`` with ``If-None-Match: *``, content headers and the
expirable tag), with a connection pool sized to the concurrency.

    python -m bench.store_upload                       # starts moto on 127.0.0.1
    python -m bench.store_upload --endpoint http://127.0.0.1:5000 --count 400

Numbers are uploads per second (higher is better); ``ratio`` is aiobotocore / boto3.
Against moto the server is usually the bottleneck, so this measures client overhead
under a realistic server, not S3's own limits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from aiobotocore.session import get_session
from botocore.config import Config

SIZES = (1024, 100 * 1024)
CONCURRENCY = (1, 8, 32)
BUCKET = "bench-uploads"
PUT_ARGS: dict[str, Any] = {
    "ContentType": "application/json",
    "ContentEncoding": "zstd",
    "IfNoneMatch": "*",
    "Tagging": "strata-expirable=true",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """Run moto in server mode on a free local port for the duration."""
    port = _free_port()
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("moto_server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _config(pool: int) -> Config:
    return Config(max_pool_connections=pool, retries={"mode": "standard", "total_max_attempts": 3})


def _client_kwargs(endpoint: str) -> dict[str, Any]:
    return {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", "bench"),
        "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", "bench"),
    }


async def _run_tasks(count: int, concurrency: int, upload: Any) -> tuple[float, float]:
    """Run ``count`` uploads, at most ``concurrency`` at once.

    Returns uploads/s and this process's CPU milliseconds per upload (the client's own
    cost, which matters on a small machine even when the server is the bottleneck).
    """
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            await upload(f"b/{uuid.uuid4().hex}")

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return count / elapsed, cpu * 1000 / count


async def bench_boto3(
    endpoint: str, size: int, concurrency: int, count: int
) -> tuple[float, float]:
    """boto3 calls in a thread pool sized to the concurrency."""
    client = boto3.session.Session().client(
        "s3", config=_config(concurrency), **_client_kwargs(endpoint)
    )
    body = os.urandom(size)
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:

        async def upload(key: str) -> None:
            await loop.run_in_executor(
                pool, lambda: client.put_object(Bucket=BUCKET, Key=key, Body=body, **PUT_ARGS)
            )

        await _run_tasks(concurrency * 2, concurrency, upload)  # warm the pool
        rate = await _run_tasks(count, concurrency, upload)
    client.close()
    return rate


async def bench_aiobotocore(
    endpoint: str, size: int, concurrency: int, count: int
) -> tuple[float, float]:
    """aiobotocore on the running event loop."""
    body = os.urandom(size)
    async with get_session().create_client(
        "s3", config=_config(concurrency), **_client_kwargs(endpoint)
    ) as client:

        async def upload(key: str) -> None:
            await client.put_object(Bucket=BUCKET, Key=key, Body=body, **PUT_ARGS)

        await _run_tasks(concurrency * 2, concurrency, upload)
        return await _run_tasks(count, concurrency, upload)


async def main_async(endpoint: str, count: int, rounds: int) -> None:
    setup = boto3.session.Session().client("s3", **_client_kwargs(endpoint))
    setup.create_bucket(Bucket=BUCKET)
    print(f"endpoint {endpoint}, {count} uploads per cell, best of {rounds} rounds")
    print(
        f"{'size':>6} {'conc':>4} | {'boto3+threads/s':>15} {'aiobotocore/s':>13} {'ratio':>5}"
        f" | {'boto3 cpu ms':>12} {'aiobotocore cpu ms':>18}"
    )
    for size in SIZES:
        for concurrency in CONCURRENCY:
            sync_best = async_best = (0.0, 0.0)
            # Alternate the clients each round so drift on a shared machine hits both.
            for _ in range(rounds):
                sync_best = max(sync_best, await bench_boto3(endpoint, size, concurrency, count))
                async_best = max(
                    async_best, await bench_aiobotocore(endpoint, size, concurrency, count)
                )
            label = f"{size // 1024} KB"
            print(
                f"{label:>6} {concurrency:>4} | {sync_best[0]:>15.0f} {async_best[0]:>13.0f}"
                f" {async_best[0] / sync_best[0]:>5.2f} | {sync_best[1]:>12.2f}"
                f" {async_best[1]:>18.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="S3 endpoint (default: start moto on 127.0.0.1)")
    parser.add_argument("--count", type=int, default=300, help="uploads per cell")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per cell (best kept)")
    args, _ = parser.parse_known_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    if args.endpoint:
        asyncio.run(main_async(args.endpoint, args.count, args.rounds))
        return
    with moto_server() as endpoint:
        asyncio.run(main_async(endpoint, args.count, args.rounds))


if __name__ == "__main__":
    main()

"""Writer throughput: traces/s from the queue to stored objects and index rows, for the
local store and for S3 on moto, one object per trace against segments (a batch's traces
of one handler in one object), for one handler and for 50, in one run.

CPU per trace is counted for the writer's own process and for the moto server: on this
2-core machine moto (about 2 ms of CPU per PUT) and botocore in the writer (about 1.4 ms
per PUT) share the cores, so with one object per trace the PUTs are the ceiling and
upload concurrency changes little; segments make a PUT cost per handler and batch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator

from bench.capture import _pending, _run_sync
from bench.common import cpu_seconds, fresh_database, postgres
from tests.fixtures_cloud import MOTO_KEY, REGION, free_port
from trace_store import db
from trace_store.backends.base import ObjectStore
from trace_store.backends.url import parse_store_url
from trace_store.metrics import Metrics
from trace_store.writer.batch_writer import TraceWriter
from trace_store.writer.queue import WriterConfig


@contextlib.contextmanager
def moto() -> Iterator[str]:
    """A moto server on loopback; yields its endpoint."""
    port = free_port()
    proc = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "moto_server"),
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        import socket

        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


#: Layouts compared: one object per trace (as before segments) and the defaults.
LAYOUTS = {
    "one object per trace": WriterConfig(batch_size=256, batch_wait=0.02, segment_bytes=0),
    "segments": WriterConfig(),
}
HANDLERS = (1, 50)


async def measure(
    store: ObjectStore,
    dsn: str,
    n: int,
    layout: WriterConfig,
    handlers: int,
    server_pid: int | None = None,
) -> tuple[float, int, int, float, float]:
    """``n`` 20-call traces of ``handlers`` handlers submitted at once: traces/s, index
    rows, objects, and CPU ms per trace of this process (the writer) and of the store
    server."""
    await store.check()
    pool = await db.connect_pool(dsn, max_size=4)
    async with pool.acquire() as conn:
        await db.migrate(conn)
    # A queue that holds the whole burst: this measures writing, not admission.
    config = dataclasses.replace(layout, queue_traces=n, queue_calls=10**9)
    writer = TraceWriter(store, pool, Metrics(), config=config)
    pendings = []
    for i in range(n):
        p = _pending("chain", _run_sync("chain", True))
        assert p.handler is not None
        p.handler = {**p.handler, "id": f"handler-{i % handlers}"}
        pendings.append(p)
    writer.start()
    cpu0 = cpu_seconds(os.getpid())
    server0 = cpu_seconds(server_pid) if server_pid else 0.0
    t0 = time.perf_counter()
    for p in pendings:
        assert writer.submit(p)
    await writer.flush()
    elapsed = time.perf_counter() - t0
    cpu = (cpu_seconds(os.getpid()) - cpu0) * 1000 / n
    server = (cpu_seconds(server_pid) - server0) * 1000 / n if server_pid else 0.0
    await writer.stop()
    rows = int(await pool.fetchval("SELECT count(*) FROM traces"))
    objects = int(await pool.fetchval("SELECT count(DISTINCT object_key) FROM traces"))
    await pool.close()
    await store.close()
    return n / elapsed, rows, objects, cpu, server


def moto_store_url(endpoint: str) -> str:
    """A fresh bucket on the moto server at ``endpoint``, as a store URL."""
    os.environ.update(AWS_ACCESS_KEY_ID=MOTO_KEY[0], AWS_SECRET_ACCESS_KEY=MOTO_KEY[1])
    import boto3

    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name=REGION).create_bucket(Bucket=bucket)
    return f"s3://{bucket}?endpoint={endpoint}&region={REGION}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--traces", type=int, default=3000)
    args, _ = parser.parse_known_args()
    results = {}
    with postgres() as admin, tempfile.TemporaryDirectory(dir=".") as tmp, moto() as endpoint:
        moto_pid = _listener_pid(int(endpoint.rsplit(":", 1)[1]))
        for handlers in HANDLERS:
            for name, layout in LAYOUTS.items():
                local = f"file://{os.path.abspath(tmp)}/{handlers}-{len(results)}"
                results[("local", handlers, name)] = asyncio.run(
                    measure(
                        parse_store_url(local), fresh_database(admin), args.traces, layout, handlers
                    )
                )
                results[("s3 (moto)", handlers, name)] = asyncio.run(
                    measure(
                        parse_store_url(moto_store_url(endpoint)),
                        fresh_database(admin),
                        args.traces,
                        layout,
                        handlers,
                        moto_pid,
                    )
                )
    print(
        f"\n**Writer** (`bench.writer`): {args.traces:,} queued 20-call traces to objects and"
        " index rows, one object per trace against segments (CPU per trace: the writer's own"
        " process, and the moto server's)\n"
    )
    print(
        "| store | handlers | layout | traces/s | × one object per trace | index rows | objects"
        " | writer CPU ms/trace | server CPU ms/trace |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (store, handlers, name), (rate, rows, objects, cpu, server) in results.items():
        baseline = results[(store, handlers, "one object per trace")][0]
        server_cell = f"{server:.2f}" if server else "-"
        print(
            f"| {store} | {handlers} | {name} | {rate:,.0f} | {rate / baseline:.1f}× | {rows}"
            f" | {objects} | {cpu:.2f} | {server_cell} |"
        )


def _listener_pid(port: int) -> int | None:
    """The moto server's pid (the process listening on ``port``), from /proc."""
    inode = None
    with open("/proc/net/tcp") as table:
        lines = table.read().splitlines()[1:]
    for line in lines:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            inode = fields[9]
    if inode is None:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return int(pid)
    return None


if __name__ == "__main__":
    main()

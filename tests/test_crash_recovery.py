"""``kill -9`` of every strata process under load loses no answered trace (issue 14,
acceptance 2): a real ``strata serve`` with its writer process, a local store and a real
Postgres; both processes are killed mid-load and ``serve`` is started again on the same
data dir. Every request answered more than 100 ms before the kill has its object and its
index row, and no object is left without its index row.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import aiohttp
import asyncpg
import orjson

from tests.test_serve_process import _writer_children, strata_serve
from trace_store.document import codec

LOAD_SECONDS = 1.5


async def _load(gateway: str, answered: dict[int, float], stop: asyncio.Event) -> None:
    ids = iter(range(10**9))

    async def client(http: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            i = next(ids)
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{gateway}/users/{i}") as response:
                    await response.read()
                    if response.status == 200:
                        answered[i] = time.monotonic()

    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(*(client(http) for _ in range(4)))


def _stored(objects: Path) -> dict[str, list[int]]:
    """Object key -> the requests' user ids, for every trace object in the local store
    (a segment holds several)."""
    out = {}
    for path in objects.rglob("*.zst"):
        if path.relative_to(objects).parts[0].startswith("."):
            continue  # the store's own bookkeeping (pin markers)
        users = []
        for _, _, raw in codec.frames(path.read_bytes()):
            users.append(int(orjson.loads(raw)["input"]["path"].rsplit("/", 1)[1]))
        out[path.relative_to(objects).as_posix()] = users
    return out


async def test_kill_9_of_every_process_loses_no_answered_trace(
    database_url: str, tmp_path: Path
) -> None:
    env = {
        "STRATA_DATABASE_URL": database_url,
        "STRATA_DATA_DIR": str(tmp_path),
        "STRATA_STORE": "",
        "STRATA_WRITER": "process",
    }
    answered: dict[int, float] = {}
    with strata_serve(["--app", "examples.demo:canvas"], env) as printed:
        proc = printed["proc"]
        stop = asyncio.Event()
        load = asyncio.create_task(_load(printed["gateway"], answered, stop))
        await asyncio.sleep(LOAD_SECONDS)
        victims = [*_writer_children(proc.pid), proc.pid]
        killed_at = time.monotonic()
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        stop.set()
        await load
        proc.wait()
    must_have = {i for i, at in answered.items() if at < killed_at - 0.1}
    assert len(must_have) > 100  # the load was real

    started = time.monotonic()
    with strata_serve(["--app", "examples.demo:canvas"], env):
        restart_seconds = time.monotonic() - started
        conn = await asyncpg.connect(database_url)
        try:
            deadline = time.monotonic() + 30
            while (indexed := await conn.fetchval("SELECT count(*) FROM traces")) < len(must_have):
                assert time.monotonic() < deadline, f"{indexed} of {len(must_have)} indexed"
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # whatever else the log held
            keys = {row["object_key"] for row in await conn.fetch("SELECT object_key FROM traces")}
        finally:
            await conn.close()
    assert restart_seconds < 5
    stored = _stored(tmp_path / "objects")
    assert set(stored) == keys  # no object without its index row, no row without its object
    users = [user for in_object in stored.values() for user in in_object]
    assert must_have <= set(users)
    assert len(users) == len(set(users))  # a re-read frame stored nothing twice

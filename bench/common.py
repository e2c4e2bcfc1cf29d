"""Shared benchmark plumbing: an embedded Postgres, fresh databases, ``strata serve``
processes and ``wrk``."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent


def postgres() -> contextlib.AbstractContextManager[str]:
    """An admin DSN: ``STRATA_TEST_DATABASE_URL`` or a throwaway embedded server."""
    from tests.fixtures_postgres import admin_dsn

    return admin_dsn("strata-bench-pg-")


def postgres_pid(admin_dsn: str) -> int | None:
    """The postmaster's PID of the server :func:`postgres` started, or ``None`` for an
    external one (``STRATA_TEST_DATABASE_URL``): it may serve other people's work, or
    run where this machine's ``/proc`` cannot see it, so its CPU is not strata's to
    count."""
    if os.environ.get("STRATA_TEST_DATABASE_URL"):
        return None
    import asyncio

    import asyncpg

    async def parent_of_backend() -> int:
        conn = await asyncpg.connect(admin_dsn)
        try:
            backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
            # Every backend is forked by the postmaster. Read while the backend lives.
            stat = Path(f"/proc/{backend}/stat").read_text()
            return int(stat.rsplit(")", 1)[1].split()[1])
        finally:
            await conn.close()

    return asyncio.run(parent_of_backend())


TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    # Split after the command name, which may hold spaces: index 0 is field 3 (state).
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (all its threads) so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU time so far of ``root`` and every live descendant, plus the
    children each of them has waited for (``cutime``/``cstime``, fields 16 and 17).

    The postmaster reaps its backends as they exit, so a backend that ends between two
    marks still counts, in the postmaster's ``cutime``: the sum is exact up to a backend
    that exits between this scan reading its parent and reading it."""
    stats: dict[int, list[str]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stats[int(proc.name)] = _stat(int(proc.name))
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += sum(int(field) for field in stats[pid][11:15])
            todo.extend(children.get(pid, ()))
    return total / TICK


def fresh_database(admin_dsn: str) -> str:
    """Create an empty database and return its DSN."""
    import asyncio

    import asyncpg

    name = "bench_" + uuid.uuid4().hex[:12]

    async def create() -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()

    asyncio.run(create())
    parts = urlsplit(admin_dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@dataclass
class Served:
    proc: subprocess.Popen[str]
    gateway: str
    editor: str
    database_url: str


#: Where the gateway benchmarks keep their local store: memory-backed when the machine
#: has it. On this VM's ext4, creating files shortly after mass deletes (every earlier
#: run's cleanup) spends half the writer's CPU in the inode allocator (``perf``:
#: ``recently_deleted``), which would measure the disk's history, not strata.
#: ``python -m bench.writer`` measures the disk.
MEMORY_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None


@contextlib.contextmanager
def serve(
    database_url: str,
    env: dict[str, str],
    app: str = "examples.demo:canvas",
    data_root: str | None = MEMORY_DIR,
) -> Iterator[Served]:
    """A ``strata serve`` process on free ports, its data directory under ``data_root``."""
    data_dir = tempfile.mkdtemp(prefix="strata-bench-data-", dir=data_root)
    full_env = {
        **os.environ,
        "STRATA_DATABASE_URL": database_url,
        "STRATA_DATA_DIR": data_dir,
        "STRATA_ADMIN_TOKEN": "bench-admin",
        **env,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli.main",
            "serve",
            "--app",
            app,
            "--gateway-port",
            "0",
            "--editor-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=full_env,
        cwd=ROOT,
    )
    urls: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.strip()
        if line == "ready":
            break
        key, _, value = line.partition(": ")
        urls[key] = value
    try:
        yield Served(proc, urls["gateway"], urls["editor"], database_url)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


@dataclass
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _latency(text: str, pct: str) -> float:
    match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


def wrk(
    url: str,
    seconds: float,
    connections: int = 32,
    threads: int = 1,
    script: str | None = None,
) -> WrkResult:
    """Run wrk against ``url`` (loopback only, optionally with a Lua script) and parse
    its summary."""
    assert urlsplit(url).hostname in ("127.0.0.1", "localhost"), "load tests stay on loopback"
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            *(["-s", script] if script else []),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return WrkResult(requests, rps, _latency(out, "50"), _latency(out, "99"), errors)


def count_rows(database_url: str, handler_id: str | None = None, settle: float = 30.0) -> int:
    """Index rows (for one handler), after the writer has settled."""
    import asyncio

    import asyncpg

    async def count() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            if handler_id is None:
                return int(await conn.fetchval("SELECT count(*) FROM traces"))
            return int(
                await conn.fetchval("SELECT count(*) FROM traces WHERE handler_id = $1", handler_id)
            )
        finally:
            await conn.close()

    deadline = time.monotonic() + settle
    last = -1
    while True:
        now = asyncio.run(count())
        if now == last or time.monotonic() > deadline:
            return now
        last = now
        time.sleep(1.0)

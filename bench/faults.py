"""Fault injection against real parts: ``python -m bench.faults [SCENARIO ...] [--quick]``.

Every scenario starts its own ``strata serve --app examples.demo:canvas`` (writer in its
own process, the default) on a fresh Postgres database, a fresh S3 bucket and a fresh
data dir, and drives ``GET /users/<n>`` (``n`` unique per request) at it. The parts are
real: moto in server mode is the store, reached through a TCP proxy of this module's
own (a child process) that can pass, refuse or hang connections, so moto keeps its
objects across an outage; Postgres is a real server (pgserver's binaries) that this
module stops and starts again on the same socket directory, so the DSN survives.

Load is open-loop: requests are issued on a fixed schedule whatever the answers, over
a bounded pool of connections; a request's latency is measured from its scheduled time
(a request that waits for a connection is late, not absent). ``capacity`` and
``overload`` use ``wrk -c64`` instead, paced by a per-connection delay (the Python
client cannot offer that much); ``overload`` offers ten times the paced rate.

While a scenario runs, ``/metrics`` is scraped every half second (backlog =
``strata_writer_queue_depth``, log bytes, counters, RSS of serve and its writer child)
and ``/readyz`` every second. After the fault ends and load stops, the scenario waits
(bounded) until the backlog is 0, then counts ``SELECT count(*) FROM traces``.

Columns: ``answered`` = 200 responses; ``errors`` = other statuses and connection errors
or timeouts; ``p99`` over the 200s (and its ratio to ``baseline``'s); ``stored`` = rows
in Postgres / ``strata_traces_indexed_total``; ``lost`` = traces enqueued and neither
stored nor counted as dropped (must be 0); ``build-up / drain`` = seconds from the
fault's start to the backlog's peak / from the peak until the backlog is back to its
pre-fault level (ratio drain/build-up); ``log lines`` = lines serve wrote on stderr.

The paced scenarios run at half the writer's capacity, measured first in the same run
(``capacity``: traces indexed per second while wrk offers more than the writer stores),
capped at what the gateway answered. ``--rate`` skips the measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import aiohttp
import asyncpg

from bench.common import MEMORY_DIR, ROOT, WrkResult, wrk

SCENARIOS: Final = (
    "baseline",
    "capacity",
    "store-hung",
    "store-refused",
    "postgres-stopped",
    "kill-9",
    "overload",
    "log-unwritable",
)
#: Scenarios whose load is paced at half the measured capacity.
PACED: Final = frozenset(SCENARIOS) - {"capacity"}
MOTO_KEY: Final = ("testing", "testing")
REGION: Final = "us-east-1"
APP: Final = "examples.demo:canvas"
#: Concurrent connections of the paced client, and of wrk.
CONNECTIONS: Final = 64
REQUEST_TIMEOUT: Final = 10.0
#: The paced client's own ceiling (req/s) on this machine, whatever the capacity.
CLIENT_MAX_RATE: Final = 800
#: What ``capacity`` offers (req/s, wrk): well above what the writer stores on this
#: machine (~300 traces/s into moto), not so far above that the backlog takes minutes.
CAPACITY_OFFER: Final = 700
SAMPLE_EVERY: Final = 0.5
READYZ_EVERY: Final = 1.0
#: The tmpfs mounted as the data dir's ``log`` in ``log-unwritable``. When the store
#: outage starts it is filled up to a third of the outage's worth of paced traces.
TMPFS_SIZE: Final = "8m"
START_TIMEOUT: Final = 60.0
#: Waiting for the backlog to drain gives up when it has not shrunk for this long.
STUCK_SECONDS: Final = 15.0


@dataclass(frozen=True)
class Timing:
    """How long each phase lasts (seconds)."""

    pre: float  # paced load before a fault
    outage: float
    after: float  # paced load after a fault (and the baseline's length)
    after_refused: float
    capacity: float
    overload: float
    drain_bound: float


FULL: Final = Timing(
    pre=10, outage=30, after=30, after_refused=60, capacity=15, overload=20, drain_bound=120
)
QUICK: Final = Timing(
    pre=5, outage=10, after=10, after_refused=20, capacity=8, overload=8, drain_bound=60
)


def now() -> float:
    """The bench's clock."""
    return time.monotonic()


# -- the store proxy (runs as a child process) ------------------------------------------


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close a connection with a TCP reset (SO_LINGER 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass(eq=False)
class _Conn:
    """One proxied connection; ``frozen`` ones forward nothing any more."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    frozen: bool = False

    def reset(self) -> None:
        """Reset the client side, close the upstream side."""
        _reset(self.client)
        if self.upstream is not None:
            self.upstream.transport.abort()


class _Proxy:
    """A TCP proxy to ``127.0.0.1:target`` with three modes: ``pass``; ``refuse`` (the
    port stops listening and open connections are reset); ``hang`` (connections are
    accepted and read, and nothing is ever answered; open ones freeze). Back to
    ``pass``, the frozen connections are reset."""

    def __init__(self, port: int, target: int) -> None:
        self.port = port
        self.target = target
        self.mode = "pass"
        self.server: asyncio.Server | None = None
        self.conns: set[_Conn] = set()

    async def listen(self) -> None:
        """Accept connections (again)."""
        if self.server is None:
            self.server = await asyncio.start_server(
                self._accept, "127.0.0.1", self.port, reuse_address=True, backlog=1024
            )

    def set_mode(self, mode: str) -> None:
        """Switch modes (see the class)."""
        self.mode = mode
        if mode == "refuse":
            if self.server is not None:
                self.server.close()
                self.server = None
            for conn in list(self.conns):
                conn.reset()
        elif mode == "hang":
            for conn in self.conns:
                conn.frozen = True
        else:
            for conn in [c for c in self.conns if c.frozen]:
                conn.reset()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer, frozen=self.mode == "hang")
        self.conns.add(conn)
        try:
            if not conn.frozen:
                try:
                    up_reader, conn.upstream = await asyncio.open_connection(
                        "127.0.0.1", self.target
                    )
                except OSError:
                    conn.reset()
                    return
                upstream = asyncio.create_task(self._pipe(up_reader, writer, conn))
                await self._pipe(reader, conn.upstream, conn)
                upstream.cancel()
            else:
                await self._pipe(reader, None, conn)
        finally:
            self.conns.discard(conn)
            conn.client.transport.abort()
            if conn.upstream is not None:
                conn.upstream.transport.abort()

    @staticmethod
    async def _pipe(
        src: asyncio.StreamReader, dst: asyncio.StreamWriter | None, conn: _Conn
    ) -> None:
        """Copy ``src`` to ``dst`` until EOF; a frozen connection's bytes are dropped."""
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await src.read(65536):
                if conn.frozen or dst is None:
                    continue
                dst.write(data)
                await dst.drain()


async def _proxy_main(port: int, target: int) -> None:
    """Run the proxy; modes arrive as lines on stdin, each acknowledged on stdout."""
    proxy = _Proxy(port, target)
    await proxy.listen()
    print("listening", flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        mode = line.strip()
        if mode in ("pass", "hang"):
            await proxy.listen()
        proxy.set_mode(mode)
        print(f"ok {mode}", flush=True)


class StoreProxy:
    """The parent's handle on the proxy child process."""

    def __init__(self, target: int) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.faults", "--proxy-child", str(self.port), str(target)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
        self._expect("listening")

    def _expect(self, word: str) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != word:
            raise RuntimeError(f"store proxy said {line!r}, expected {word!r}")

    def set(self, mode: str) -> None:
        """``pass``, ``refuse`` or ``hang``."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(mode + "\n")
        self.proc.stdin.flush()
        self._expect(f"ok {mode}")

    def close(self) -> None:
        """Stop the proxy."""
        stop_process(self.proc)


# -- moto, Postgres ---------------------------------------------------------------------


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(proc: subprocess.Popen[Any], port: int, name: str) -> None:
    """Wait until ``port`` accepts connections (``proc`` must stay alive)."""
    deadline = now() + START_TIMEOUT
    while now() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} at start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port}")


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM one process we started, SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def aws_env() -> dict[str, str]:
    """moto's credentials, and no fallback to a developer's profile or instance metadata."""
    return {
        "AWS_ACCESS_KEY_ID": MOTO_KEY[0],
        "AWS_SECRET_ACCESS_KEY": MOTO_KEY[1],
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class Moto:
    """moto_server on a free port, and a plain boto3 client straight to it."""

    def __init__(self) -> None:
        self.port = free_port()
        tool = Path(sys.executable).with_name("moto_server")
        self.proc = subprocess.Popen(
            [str(tool), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **aws_env()},
            start_new_session=True,
        )
        wait_for_port(self.proc, self.port, "moto_server")
        import boto3
        from botocore.config import Config

        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.port}",
            region_name=REGION,
            aws_access_key_id=MOTO_KEY[0],
            aws_secret_access_key=MOTO_KEY[1],
            config=Config(
                s3={"addressing_style": "path"}, signature_version="s3v4", max_pool_connections=16
            ),
        )

    def bucket(self) -> str:
        """A new, empty bucket."""
        name = f"faults-{uuid.uuid4().hex[:16]}"
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        """Every object key in ``bucket``."""
        out: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            out.extend(item["Key"] for item in page.get("Contents", ()))
        return out

    def user_ids(self, bucket: str, keys: list[str]) -> dict[str, list[int]]:
        """Object key -> the ``<n>`` of each ``/users/<n>`` request it traces (a segment
        holds several)."""
        import orjson

        from trace_store.document import codec

        def one(key: str) -> tuple[str, list[int]]:
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
            docs = [orjson.loads(raw) for _, _, raw in codec.frames(body)]
            return key, [int(doc["input"]["path"].rsplit("/", 1)[1]) for doc in docs]

        with ThreadPoolExecutor(8) as pool:
            return dict(pool.map(one, [k for k in keys if k.startswith("traces/")]))

    def close(self) -> None:
        """Stop moto."""
        stop_process(self.proc)


class Postgres:
    """A real Postgres (pgserver's binaries, run as the user pgserver picks) that can be
    stopped and started again on the same socket directory: the DSN stays valid."""

    def __init__(self, root: Path) -> None:
        os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"strata-run-{os.getuid()}"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
        import pgserver
        from pgserver.postgres_server import get_server

        self.pgdata = root / "pg"
        self.pgdata.mkdir(parents=True)
        # cleanup_mode=None: this class stops the server (pgserver would not find the
        # restarted one).
        server: Any = get_server(self.pgdata, cleanup_mode=None)
        info = server.get_postmaster_info()
        self.user: str | None = server.system_user
        self.socket_dir = str(info.socket_dir)
        self.dsn: str = server.get_uri()
        self.bin = Path(pgserver.__file__).parent / "pginstall" / "bin"
        self.running = True

    def _pg_ctl(self, *args: str) -> None:
        with tempfile.TemporaryFile() as err:
            # No pipes: the postmaster would inherit them and keep them open.
            result = subprocess.run(
                [str(self.bin / "pg_ctl"), "-D", str(self.pgdata), *args],
                stdout=subprocess.DEVNULL,
                stderr=err,
                user=self.user,
                timeout=60,
                check=False,
                start_new_session=True,
            )
            if result.returncode != 0:
                err.seek(0)
                raise RuntimeError(f"pg_ctl {' '.join(args)}: {err.read().decode()[-500:]}")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m <mode>``."""
        self._pg_ctl("-w", "-m", mode, "stop")
        self.running = False

    def start(self) -> None:
        """Start it again as pgserver did: no TCP, the same socket directory."""
        log = str(self.pgdata / "log")
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", log, "start")
        self.running = True

    def close(self) -> None:
        """Stop it for good."""
        with contextlib.suppress(Exception):
            self.stop("immediate")

    def database_dsn(self, name: str) -> str:
        """The DSN of database ``name``."""
        return self.dsn.replace("@/postgres?", f"@/{name}?", 1)

    async def fresh_database(self) -> str:
        """Create an empty database; its DSN."""
        name = "faults_" + uuid.uuid4().hex[:12]
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
        return self.database_dsn(name)


async def index_keys(dsn: str) -> list[str]:
    """The object keys of every index row."""
    conn = await asyncpg.connect(dsn)
    try:
        return [r["object_key"] for r in await conn.fetch("SELECT object_key FROM traces")]
    finally:
        await conn.close()


async def count_traces(dsn: str) -> int:
    """``SELECT count(*) FROM traces``."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM traces"))
    finally:
        await conn.close()


# -- strata serve -----------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """The child processes of ``pid`` (from every thread's ``children`` list)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out.extend(int(c) for c in (task / "children").read_text().split())
    return out


def writer_pid(pid: int) -> int | None:
    """The ``trace_store.writer.child`` process of serve ``pid``, if one runs."""
    for child in children_of(pid):
        with contextlib.suppress(OSError):
            if b"trace_store.writer.child" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
    return None


def rss_mib(pid: int | None) -> float:
    """Resident set size of one process in MiB (0 when there is none)."""
    if pid is None:
        return 0.0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Strata:
    """One ``strata serve``, restartable on the same data dir; stderr goes to a file."""

    def __init__(self, data_dir: Path, env: dict[str, str], stderr: Path) -> None:
        self.data_dir = data_dir
        self.env = env
        self.stderr = stderr
        self.proc: subprocess.Popen[str] | None = None
        self.gateway = ""
        self.editor = ""

    def start(self) -> float:
        """Start serve and wait for ``ready``; the seconds that took."""
        began = now()
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("STRATA_", "AWS_"))}
        with open(self.stderr, "ab") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli.main", "serve", "--app", APP,
                 "--gateway-port", "0", "--editor-port", "0"],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env={**clean, **aws_env(), "STRATA_DATA_DIR": str(self.data_dir), **self.env},
                cwd=ROOT,
                start_new_session=True,
            )  # fmt: skip
        self.proc = proc
        assert proc.stdout is not None
        urls: dict[str, str] = {}
        for line in proc.stdout:
            if line.strip() == "ready":
                break
            key, _, value = line.strip().partition(": ")
            urls[key] = value
        else:
            raise RuntimeError(
                f"strata serve exited ({proc.wait()}) before ready: see {self.stderr}"
            )
        self.gateway, self.editor = urls["gateway"], urls["editor"]
        # Keep reading stdout so that serve can never block on a full pipe.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        return now() - began

    @property
    def pid(self) -> int | None:
        """serve's pid while it runs."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def writer(self) -> int | None:
        """The writer child's pid."""
        pid = self.pid
        return writer_pid(pid) if pid is not None else None

    def kill9(self) -> list[int]:
        """SIGKILL the writer child, then serve; the pids killed."""
        assert self.proc is not None
        victims = [p for p in (self.writer(), self.proc.pid) if p is not None]
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        return victims

    def stop(self) -> None:
        """SIGTERM (serve drains for up to 10 s), SIGKILL after 60 s."""
        if self.proc is not None:
            child = self.writer()
            stop_process(self.proc)
            if child is not None and Path(f"/proc/{child}").exists():
                with contextlib.suppress(OSError):
                    os.kill(child, signal.SIGKILL)

    def log_lines(self) -> list[str]:
        """What serve wrote on stderr so far."""
        return self.stderr.read_text(errors="replace").splitlines()


# -- metrics and probes -----------------------------------------------------------------

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)")


def parse_metrics(text: str) -> dict[str, dict[str, float]]:
    """Prometheus text -> metric name -> first label value ("" when none) -> value."""
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        match = _SAMPLE_RE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        label = labels.split('"')[1] if labels and '"' in labels else ""
        out.setdefault(name, {})[label] = float(value)
    return out


@dataclass
class Sample:
    """One scrape of serve's ``/metrics`` and the RSS of its processes."""

    t: float
    depth: float
    log_bytes: float
    log_traces: float
    enqueued: float
    indexed: float
    dropped: dict[str, float]
    rss_serve: float
    rss_writer: float

    @classmethod
    def of(cls, t: float, m: dict[str, dict[str, float]], strata: Strata) -> Sample:
        """Build from parsed metrics."""

        def one(name: str) -> float:
            return sum(m.get(name, {}).values())

        return cls(
            t=t,
            depth=one("strata_writer_queue_depth"),
            log_bytes=one("strata_log_bytes"),
            log_traces=one("strata_log_traces"),
            enqueued=one("strata_traces_enqueued_total"),
            indexed=one("strata_traces_indexed_total"),
            dropped=dict(m.get("strata_traces_dropped_total", {})),
            rss_serve=rss_mib(strata.pid),
            rss_writer=rss_mib(strata.writer()),
        )


class Sampler:
    """Scrapes ``/metrics`` every :data:`SAMPLE_EVERY` and ``/readyz`` every
    :data:`READYZ_EVERY` on the editor port while a scenario runs."""

    def __init__(self, strata: Strata) -> None:
        self.strata = strata
        self.samples: list[Sample] = []
        self.readyz: list[tuple[float, str, str]] = []  # t, status, checks.log
        self._tasks: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Begin sampling."""
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._tasks = [
            asyncio.create_task(self._every(SAMPLE_EVERY, self.scrape)),
            asyncio.create_task(self._every(READYZ_EVERY, self._probe)),
        ]

    async def stop(self) -> None:
        """Stop sampling."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    @staticmethod
    async def _every(seconds: float, probe: Callable[[], Awaitable[object]]) -> None:
        while True:
            began = now()
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
                await probe()
            await asyncio.sleep(max(0.0, seconds - (now() - began)))

    async def scrape(self) -> Sample:
        """One scrape, kept."""
        assert self._http is not None
        async with self._http.get(self.strata.editor + "/metrics") as response:
            text = await response.text()
        sample = Sample.of(now(), parse_metrics(text), self.strata)
        self.samples.append(sample)
        return sample

    async def _probe(self) -> None:
        assert self._http is not None
        async with self._http.get(self.strata.editor + "/readyz") as response:
            body = await response.json()
        self.readyz.append((now(), str(body.get("status")), str(body.get("checks", {}).get("log"))))

    def between(self, start: float, end: float = float("inf")) -> list[Sample]:
        """The samples taken in ``[start, end]``."""
        return [s for s in self.samples if start <= s.t <= end]


# -- load -------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """One request of the paced client."""

    user: int
    scheduled: float
    done: float
    status: int  # 0: connection error or timeout


class PacedLoad:
    """Open-loop ``GET /users/<n>``: issued on schedule, over at most
    :data:`CONNECTIONS` connections; every outcome is kept."""

    def __init__(self, strata: Strata, ids: Iterator[int]) -> None:
        self.strata = strata
        self.ids = ids
        self.outcomes: list[Outcome] = []

    async def run(self, rate: float, seconds: float, stop: asyncio.Event | None = None) -> None:
        """Offer ``rate`` requests/s for ``seconds`` (or until ``stop``)."""
        connector = aiohttp.TCPConnector(limit=CONNECTIONS)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            pending: set[asyncio.Task[None]] = set()
            began = now()
            total = int(rate * seconds)
            issued = 0
            while issued < total and not (stop is not None and stop.is_set()):
                due = min(total, int((now() - began) * rate) + 1)
                for _ in range(issued, due):
                    at = began + issued / rate
                    task = asyncio.create_task(self._one(http, next(self.ids), at))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    issued += 1
                await asyncio.sleep(0.002)
            await asyncio.gather(*pending, return_exceptions=True)

    async def _one(self, http: aiohttp.ClientSession, user: int, at: float) -> None:
        status = 0
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            async with http.get(f"{self.strata.gateway}/users/{user}") as response:
                await response.read()
                status = response.status
        self.outcomes.append(Outcome(user, at, now(), status))


_WRK_BLOCKS = itertools.count(1)


def wrk_users(gateway: str, seconds: float, rate: float | None = None) -> WrkResult:
    """``wrk -c64`` on ``GET /users/<n>``, ``n`` unique (a block of its own per run);
    with ``rate``, each connection waits ``64 / rate`` seconds between its requests."""
    first = next(_WRK_BLOCKS) * 10**8
    delay = f"delay = function() return {CONNECTIONS * 1000 / rate:.0f} end\n" if rate else ""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            f"counter = {first}\n"
            "request = function()\n"
            "  counter = counter + 1\n"
            '  return wrk.format("GET", "/users/" .. counter)\n'
            "end\n" + delay
        )
    try:
        return wrk(gateway + "/", seconds, CONNECTIONS, script=script.name)
    finally:
        os.unlink(script.name)


def p99(values: list[float]) -> float | None:
    """Nearest-rank 99th percentile (``None`` for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


# -- one scenario's parts ---------------------------------------------------------------


@dataclass
class Bench:
    """What every scenario shares: the servers, the pace, the baseline figures."""

    moto: Moto
    proxy: StoreProxy
    pg: Postgres
    timing: Timing
    work: Path
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    rate: float = 0.0
    capacity: float | None = None
    baseline_p99: float | None = None


@dataclass
class Run:
    """One scenario's serve, sampler, load and timeline."""

    bench: Bench
    name: str
    strata: Strata
    sampler: Sampler
    load: PacedLoad
    dsn: str
    bucket: str
    marks: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def mark(self, name: str) -> float:
        """Record when ``name`` happened."""
        self.marks[name] = now()
        return self.marks[name]


@contextlib.asynccontextmanager
async def started(
    bench: Bench, name: str, data_dir: Path | None = None, env: dict[str, str] | None = None
) -> AsyncIterator[Run]:
    """A serve on a fresh database, bucket and data dir (``data_dir``: the caller's),
    sampled while the block runs; stopped and cleaned up after."""
    bench.proxy.set("pass")
    dsn = await bench.pg.fresh_database()
    bucket = bench.moto.bucket()
    own_dir = data_dir is None
    directory = data_dir or Path(tempfile.mkdtemp(prefix="strata-faults-", dir=MEMORY_DIR))
    store = f"s3://{bucket}?endpoint=http://127.0.0.1:{bench.proxy.port}&region={REGION}"
    strata = Strata(
        directory,
        {"STRATA_DATABASE_URL": dsn, "STRATA_STORE": store, "STRATA_ADMIN_TOKEN": "bench-admin",
         **(env or {})},
        bench.work / f"{name}.stderr",
    )  # fmt: skip
    sampler = Sampler(strata)
    try:
        await asyncio.to_thread(strata.start)
        await sampler.start()
        yield Run(bench, name, strata, sampler, PacedLoad(strata, bench.ids), dsn, bucket)
    finally:
        await sampler.stop()
        await asyncio.to_thread(strata.stop)
        bench.proxy.set("pass")
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)


async def wait_drained(run: Run, bound: float) -> float | None:
    """Wait until the backlog is 0 (at most ``bound`` seconds, or until it has not
    shrunk for :data:`STUCK_SECONDS`); when it was, or ``None``."""
    deadline = now() + bound
    lowest, lowest_at = float("inf"), now()
    while now() < deadline and now() - lowest_at < STUCK_SECONDS:
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            sample = await run.sampler.scrape()
            if sample.depth == 0:
                return sample.t
            if sample.depth < lowest:
                lowest, lowest_at = sample.depth, sample.t
        await asyncio.sleep(0.25)
    return None


async def paced_with_fault(
    run: Run,
    pre: float,
    outage: float,
    after: float,
    begin: Callable[[], Awaitable[None]],
    end: Callable[[], Awaitable[None]],
) -> None:
    """Paced load for ``pre + outage + after`` seconds, the fault in the middle."""
    run.mark("load_start")
    load = asyncio.create_task(run.load.run(run.bench.rate, pre + outage + after))
    try:
        await asyncio.sleep(pre)
        run.mark("fault_start")
        await begin()
        await asyncio.sleep(outage)
        await end()
        run.mark("fault_end")
        await load
    finally:
        if not load.done():
            load.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await load
    run.mark("load_end")


# -- the table --------------------------------------------------------------------------


@dataclass
class Row:
    """One scenario's figures."""

    name: str
    rate: str
    answered: int
    errors: int
    p99_ms: float | None
    stored_pg: int
    stored_metric: float
    lost: float
    dropped: dict[str, float]
    backlog_peak: float
    build_s: float | None
    drain_s: float | None
    readyz: list[str]
    log_lines: int
    notes: list[str]


def build_and_drain(run: Run, drained_at: float | None) -> tuple[float | None, float | None]:
    """Seconds from the fault's start to the backlog's peak, and from the peak back to
    the pre-fault level (``None`` when it never got there)."""
    start = run.marks.get("fault_start")
    if start is None:
        return None, None
    samples = run.sampler.samples
    before = [s.depth for s in samples if run.marks.get("load_start", 0) + 2 <= s.t < start]
    level = max(10.0, 2 * max(before, default=0.0))
    window = [s for s in samples if s.t >= start]
    if not window:
        return None, None
    peak = max(window, key=lambda s: s.depth)
    back = next((s.t for s in window if s.t > peak.t and s.depth <= level), drained_at)
    build = peak.t - start
    return build, (back - peak.t) if back is not None else None


async def finish(run: Run, answered: int, errors: int, p99_ms: float | None, rate: str) -> Row:
    """Wait for the backlog to drain, count what was stored, and make the row."""
    bound = run.bench.timing.drain_bound
    drained_at = await wait_drained(run, bound)
    if drained_at is None:
        run.notes.append(
            f"backlog not 0 after the load (gave up: {bound:.0f} s, or {STUCK_SECONDS:.0f} s"
            f" without shrinking); {run.sampler.samples[-1].depth:,.0f} traces left"
        )
    last = run.sampler.samples[-1]
    stored = await count_traces(run.dsn)
    dropped = {k: v for k, v in last.dropped.items() if v}
    not_enqueued = dropped.get("queue_full", 0.0)
    # Traces still in the log may be stored already (stored, not yet committed).
    unstored = last.enqueued - stored - (sum(dropped.values()) - not_enqueued)
    lost = max(0.0, unstored - last.depth)
    if run.name != "kill-9" and answered > stored + sum(dropped.values()):
        run.notes.append(
            f"{answered - stored - sum(dropped.values()):.0f} answered requests neither stored"
            " nor counted as dropped"
        )
    build, drain = build_and_drain(run, drained_at)
    statuses = sorted({status for _, status, _ in run.sampler.readyz})
    log_checks = sorted({check.split(":")[0] for _, _, check in run.sampler.readyz})
    if log_checks != ["ok"]:
        run.notes.append(f"readyz checks.log seen: {', '.join(log_checks)}")
    lines = run.strata.log_lines()
    if lines:
        run.notes.append(f"serve stderr, most frequent: {top_lines(lines)}")
    return Row(
        name=run.name,
        rate=rate,
        answered=answered,
        errors=errors,
        p99_ms=p99_ms,
        stored_pg=stored,
        stored_metric=last.indexed,
        lost=lost if run.name != "kill-9" else float("nan"),
        dropped=dropped,
        backlog_peak=max((s.depth for s in run.sampler.samples), default=0.0),
        build_s=build,
        drain_s=drain,
        readyz=statuses,
        log_lines=len(lines),
        notes=run.notes,
    )


def top_lines(lines: list[str], shown: int = 3) -> str:
    """The most frequent stderr lines (timestamps cut, digits blanked), with counts."""
    shapes: Counter[str] = Counter()
    for line in lines:
        line = re.sub(r"^(?:writer )?\d{4}-\d\d-\d\d [\d:,]+ ", "", line)
        shapes[re.sub(r"\d+", "N", line)[:120]] += 1
    return "; ".join(f"{n}x `{shape}`" for shape, n in shapes.most_common(shown))


async def paced_row(run: Run) -> Row:
    """The row of a paced scenario, from its outcomes."""
    outcomes = run.load.outcomes
    ok = [o for o in outcomes if o.status == 200]
    statuses = Counter(o.status for o in outcomes if o.status != 200)
    if statuses:
        run.notes.append(
            "errors by status: "
            + ", ".join(f"{s or 'conn'}: {n}" for s, n in sorted(statuses.items()))
        )
    latency = p99([(o.done - o.scheduled) * 1000 for o in ok])
    return await finish(run, len(ok), len(outcomes) - len(ok), latency, f"{run.bench.rate:.0f}")


def fmt(value: float | None, digits: int = 0) -> str:
    """A number, or ``-``."""
    return "-" if value is None or value != value else f"{value:,.{digits}f}"


def render(rows: list[Row], baseline_p99: float | None) -> str:
    """The markdown table and the notes."""
    head = (
        "| scenario | rate req/s | answered | errors | p99 ms (x baseline) | stored pg / metric"
        " | lost | dropped | backlog peak | build-up s / drain s (ratio) | readyz seen"
        " | log lines |"
    )
    out = [head, "|" + "---|" * 12]
    for r in rows:
        ratio = f" ({r.p99_ms / baseline_p99:.1f}x)" if r.p99_ms and baseline_p99 else ""
        dropped = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(r.dropped.items())) or "0"
        phases = "-"
        if r.build_s is not None:
            ratio_bd = f" ({r.drain_s / r.build_s:.2f})" if r.drain_s and r.build_s else ""
            phases = f"{r.build_s:.1f} / {fmt(r.drain_s, 1)}{ratio_bd}"
        out.append(
            f"| {r.name} | {r.rate} | {r.answered:,} | {r.errors:,} | {fmt(r.p99_ms, 1)}{ratio}"
            f" | {r.stored_pg:,} / {r.stored_metric:,.0f} | {fmt(r.lost)} | {dropped}"
            f" | {r.backlog_peak:,.0f} | {phases} | {', '.join(r.readyz)} | {r.log_lines} |"
        )
    out.append("")
    for r in rows:
        for note in r.notes:
            out.append(f"- {r.name}: {note}")
    return "\n".join(out)


# -- scenarios --------------------------------------------------------------------------


async def capacity(bench: Bench, offer: float) -> Row:
    """wrk offering ``offer`` req/s for ``timing.capacity`` seconds; indexed traces/s
    while it runs (from 3 s in, when the writer is saturated)."""
    async with started(bench, "capacity") as run:
        run.mark("load_start")
        result = await asyncio.to_thread(
            wrk_users, run.strata.gateway, bench.timing.capacity, offer
        )
        end = run.mark("load_end")
        window = run.sampler.between(run.marks["load_start"] + 3, end)
        if len(window) >= 2:
            rate = (window[-1].indexed - window[0].indexed) / (window[-1].t - window[0].t)
        else:
            rate = 0.0
        bench.capacity = rate
        bench.rate = min(rate / 2, result.rps, CLIENT_MAX_RATE)
        kept_up = rate >= 0.9 * result.rps
        run.notes.append(
            f"writer capacity {'at least ' if kept_up else ''}{rate:,.0f} traces/s"
            f" stored+indexed while the gateway answered {result.rps:,.0f} req/s"
            f" (offered {offer:,.0f}); paced scenarios run at {bench.rate:.0f} req/s"
        )
        row = await finish(run, result.requests - result.errors, result.errors, result.p99_ms,
                           f"wrk {offer:,.0f} ({result.rps:,.0f})")  # fmt: skip
        after = run.sampler.between(end)
        if len(after) >= 2 and after[-1].indexed > after[0].indexed:
            speed = (after[-1].indexed - after[0].indexed) / max(0.1, after[-1].t - after[0].t)
            row.notes.append(f"drain after the load: {speed:,.0f} traces/s")
        return row


async def baseline(bench: Bench) -> Row:
    """Paced load, no fault."""
    async with started(bench, "baseline") as run:
        run.mark("load_start")
        await run.load.run(bench.rate, bench.timing.after)
        run.mark("load_end")
        row = await paced_row(run)
        bench.baseline_p99 = row.p99_ms
        return row


def proxy_fault(bench: Bench, mode: str) -> tuple[Callable[[], Awaitable[None]], ...]:
    """The begin/end actions of a store outage in proxy ``mode``."""

    async def begin() -> None:
        bench.proxy.set(mode)

    async def end() -> None:
        bench.proxy.set("pass")

    return begin, end


async def store_outage(bench: Bench, name: str, mode: str, after: float) -> Row:
    """Paced load; the store hangs or refuses for ``timing.outage`` seconds."""
    async with started(bench, name) as run:
        begin, end = proxy_fault(bench, mode)
        await paced_with_fault(run, bench.timing.pre, bench.timing.outage, after, begin, end)
        note_resume(run)
        return await paced_row(run)


def note_resume(run: Run) -> None:
    """Note how long after the fault's end the indexed counter moved again."""
    end = run.marks.get("fault_end")
    if end is None:
        return
    at_end = [s for s in run.sampler.samples if s.t <= end]
    if not at_end:
        return
    base = at_end[-1].indexed
    moved = next((s.t for s in run.sampler.samples if s.t > end and s.indexed > base), None)
    run.notes.append(
        "storage resumed " + (f"{moved - end:.1f} s after the fault ended" if moved else "never")
    )


async def postgres_stopped(bench: Bench) -> Row:
    """Paced load; Postgres stopped (``pg_ctl stop -m fast``) and started again."""
    async with started(bench, "postgres-stopped") as run:

        async def begin() -> None:
            await asyncio.to_thread(bench.pg.stop, "fast")

        async def end() -> None:
            await asyncio.to_thread(bench.pg.start)

        try:
            t = bench.timing
            await paced_with_fault(run, t.pre, t.outage, t.after, begin, end)
        finally:
            if not bench.pg.running:
                await asyncio.to_thread(bench.pg.start)
        note_resume(run)
        return await paced_row(run)


async def kill_9(bench: Bench) -> Row:
    """Paced load; SIGKILL of serve and its writer child; serve again on the same data
    dir. Every request answered more than 100 ms before the kill must be stored."""
    async with started(bench, "kill-9") as run:
        stop = asyncio.Event()
        run.mark("load_start")
        load = asyncio.create_task(run.load.run(bench.rate, bench.timing.pre + 5, stop))
        await asyncio.sleep(bench.timing.pre)
        victims = run.strata.kill9()
        killed_at = run.mark("killed")
        await asyncio.sleep(0.5)
        stop.set()
        await load
        restart = await asyncio.to_thread(run.strata.start)
        row = await paced_row(run)
        must = {o.user for o in run.load.outcomes if o.status == 200 and o.done < killed_at - 0.1}
        keys = await asyncio.to_thread(bench.moto.keys, run.bucket)
        stored = await asyncio.to_thread(bench.moto.user_ids, run.bucket, keys)
        rows = set(await index_keys(run.dsn))
        users = [user for in_object in stored.values() for user in in_object]
        missing = must - set(users)
        which = "writer child + serve" if len(victims) == 2 else "no writer child found"
        row.notes += [
            f"killed pids {victims} ({which}); serve ready again after {restart:.1f} s",
            f"{len(must):,} answered >100 ms before the kill: {len(missing)} missing from the"
            f" store; {len(set(stored) - rows)} objects without an index row;"
            f" {len(rows - set(stored))} index rows without an object;"
            f" {len(users) - len(set(users))} traces stored twice",
        ]
        if missing:
            row.notes.append(f"missing user ids (first 10): {sorted(missing)[:10]}")
        row.rate = f"{bench.rate:.0f}"
        return row


async def overload(bench: Bench) -> Row:
    """Paced load (the RSS baseline), then wrk -c64: peak backlog, log bytes and RSS."""
    async with started(bench, "overload") as run:
        run.mark("load_start")
        await run.load.run(bench.rate, bench.timing.pre)
        paced = run.sampler.between(run.marks["load_start"] + 1)
        base_serve = max((s.rss_serve for s in paced), default=0.0)
        base_writer = max((s.rss_writer for s in paced), default=0.0)
        start = run.mark("fault_start")
        result = await asyncio.to_thread(
            wrk_users, run.strata.gateway, bench.timing.overload, 10 * bench.rate
        )
        run.mark("fault_end")
        run.mark("load_end")
        over = run.sampler.between(start)
        peak_serve = max((s.rss_serve for s in over), default=0.0)
        peak_writer = max((s.rss_writer for s in over), default=0.0)
        peak_log = max((s.log_bytes for s in over), default=0.0)
        ok = [o for o in run.load.outcomes if o.status == 200]
        run.notes += [
            f"wrk offered {result.rps:,.0f} req/s answered ({result.rps / bench.rate:.1f}x the"
            f" pace); peak log {peak_log / 2**20:,.1f} MiB",
            f"peak RSS serve {peak_serve:.0f} MiB vs {base_serve:.0f} paced"
            f" ({peak_serve / max(base_serve, 1):.2f}x), writer child {peak_writer:.0f} MiB vs"
            f" {base_writer:.0f} ({peak_writer / max(base_writer, 1):.2f}x)",
        ]
        answered = len(ok) + result.requests - result.errors
        errors = len(run.load.outcomes) - len(ok) + result.errors
        return await finish(
            run, answered, errors, result.p99_ms, f"wrk {10 * bench.rate:,.0f} ({result.rps:,.0f})"
        )


@contextlib.contextmanager
def tmpfs_log(data_dir: Path) -> Iterator[Path]:
    """A small tmpfs mounted as ``data_dir/log``; unmounted after."""
    log_dir = data_dir / "log"
    log_dir.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(log_dir)], check=True
    )
    try:
        yield log_dir
    finally:
        if subprocess.run(["umount", str(log_dir)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(log_dir)], check=False)


def fill(log_dir: Path, leave: int) -> int:
    """Fill the filesystem of ``log_dir`` until ``leave`` bytes are free; bytes written."""
    stat = os.statvfs(log_dir)
    size = max(0, stat.f_bavail * stat.f_frsize - leave)
    with open(log_dir / "filler", "wb") as handle:
        left = size
        while left > 0:
            left -= handle.write(b"\0" * min(left, 1 << 20))
    return size


async def log_unwritable(bench: Bench) -> Row:
    """A store outage while the trace log's filesystem (a tmpfs) fills up."""
    data_dir = Path(tempfile.mkdtemp(prefix="strata-faults-", dir=MEMORY_DIR))
    try:
        with tmpfs_log(data_dir) as log_dir:
            async with started(bench, "log-unwritable", data_dir=data_dir) as run:
                t = bench.timing

                async def begin() -> None:
                    bench.proxy.set("refuse")
                    held = [s for s in run.sampler.samples if s.log_traces > 0]
                    per_trace = held[-1].log_bytes / held[-1].log_traces if held else 1500.0
                    leave = int(bench.rate * per_trace * t.outage / 3)
                    written = await asyncio.to_thread(fill, log_dir, leave)
                    run.notes.append(
                        f"filled the {TMPFS_SIZE} tmpfs with {written / 2**20:.1f} MiB, leaving"
                        f" {leave / 2**20:.1f} MiB (~{per_trace:.0f} B/trace)"
                    )

                async def end() -> None:
                    bench.proxy.set("pass")

                await paced_with_fault(run, t.pre, t.outage, t.after, begin, end)
                note_resume(run)
                note_log_recovery(run)
                row = await paced_row(run)
                free = os.statvfs(log_dir)
                row.notes.append(
                    f"tmpfs free at the end: {free.f_bavail * free.f_frsize / 2**20:.1f} MiB"
                )
                return row
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def note_log_recovery(run: Run) -> None:
    """When log drops began, whether appends (new traces) resumed after the outage, and
    what ``/readyz`` said meanwhile."""
    start, end, load_end = run.marks["fault_start"], run.marks["fault_end"], run.marks["load_end"]
    samples = run.sampler.samples

    def drops(s: Sample) -> float:
        return s.dropped.get("log_error", 0.0) + s.dropped.get("log_full", 0.0)

    first = next((s.t for s in samples if drops(s) > 0), None)
    grew = [b.t for a, b in itertools.pairwise(samples) if drops(b) > drops(a) and b.t <= load_end]
    at_end = max((drops(s) for s in samples if s.t <= end), default=0.0)
    after = max((drops(s) for s in samples), default=0.0) - at_end
    if not grew or grew[-1] <= end:
        resumed = "log appends worked again as soon as the outage ended"
    elif load_end - grew[-1] < 2 * SAMPLE_EVERY + 0.5:
        resumed = f"log appends never resumed ({load_end - end:.0f} s of load after the outage)"
    else:
        resumed = f"log appends resumed {grew[-1] - end:.1f} s after the outage ended"
    during = sorted({st for t, st, _ in run.sampler.readyz if start <= t <= end})
    later = sorted({st for t, st, _ in run.sampler.readyz if t > end})
    run.notes.append(
        ("log drops began " + (f"{first - start:.1f} s into the outage" if first else "never"))
        + f"; {after:,.0f} dropped after it ended; {resumed}; readyz during the outage:"
        f" {', '.join(during)}, after: {', '.join(later)}"
    )


async def run_scenarios(
    names: list[str], timing: Timing, rate: float | None, offer: float, keep: bool = False
) -> list[Row]:
    """Start moto, the proxy and Postgres; run ``names`` in order; stop everything
    (``keep``: leave the work dir, with serve's stderr of each scenario)."""
    work = Path(tempfile.mkdtemp(prefix="strata-faults-work-"))
    stack = contextlib.ExitStack()
    rows: list[Row] = []
    try:
        moto = Moto()
        stack.callback(moto.close)
        proxy = StoreProxy(moto.port)
        stack.callback(proxy.close)
        pg = Postgres(work)
        stack.callback(pg.close)
        bench = Bench(moto, proxy, pg, timing, work)
        if rate is not None:
            bench.rate = rate
        elif PACED.intersection(names) and "capacity" not in names:
            names = ["capacity", *names]
        if "capacity" in names:  # first: the others run at its pace
            names = ["capacity", *(n for n in names if n != "capacity")]
        if "baseline" in names:  # next: the others compare their p99 to it
            names = [n for n in names if n != "baseline"]
            names.insert(1 if names[0] == "capacity" else 0, "baseline")
        scenarios: dict[str, Callable[[], Awaitable[Row]]] = {
            "capacity": lambda: capacity(bench, offer),
            "baseline": lambda: baseline(bench),
            "store-hung": lambda: store_outage(bench, "store-hung", "hang", timing.after),
            "store-refused": lambda: store_outage(
                bench, "store-refused", "refuse", timing.after_refused
            ),
            "postgres-stopped": lambda: postgres_stopped(bench),
            "kill-9": lambda: kill_9(bench),
            "overload": lambda: overload(bench),
            "log-unwritable": lambda: log_unwritable(bench),
        }
        for name in names:
            began = now()
            print(f"[faults] {name} ...", file=sys.stderr, flush=True)
            row = await scenarios[name]()
            row.notes.append(f"scenario took {now() - began:.0f} s")
            rows.append(row)
            print(render([row], bench.baseline_p99), file=sys.stderr, flush=True)
        print(render(rows, bench.baseline_p99))
        return rows
    finally:
        stack.close()
        if keep:
            print(f"serve's stderr per scenario: {work}/*.stderr", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    """Parse the command line and run."""
    if len(sys.argv) == 4 and sys.argv[1] == "--proxy-child":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_proxy_main(int(sys.argv[2]), int(sys.argv[3])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help=f"{', '.join(SCENARIOS)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="10 s outages, shorter loads")
    parser.add_argument("--seconds", type=float, help="paced load without a fault (s)")
    parser.add_argument("--outage", type=float, help="length of each fault (s)")
    parser.add_argument("--rate", type=float, help="paced rate (skips measuring capacity)")
    parser.add_argument("--keep", action="store_true", help="keep serve's stderr files")
    parser.add_argument(
        "--capacity-offer", type=float, default=CAPACITY_OFFER, help="req/s offered by capacity"
    )
    args = parser.parse_args()
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; expected {', '.join(SCENARIOS)}")
    timing = QUICK if args.quick else FULL
    if args.seconds is not None:
        timing = replace(timing, after=args.seconds, after_refused=args.seconds * 2)
    if args.outage is not None:
        timing = replace(timing, outage=args.outage)
    began = now()
    names = list(args.scenarios) or list(SCENARIOS)
    try:
        asyncio.run(run_scenarios(names, timing, args.rate, args.capacity_offer, args.keep))
    except KeyboardInterrupt:
        print("interrupted (everything started was stopped)", file=sys.stderr)
        sys.exit(130)
    print(f"\ntotal {now() - began:.0f} s")


if __name__ == "__main__":
    main()

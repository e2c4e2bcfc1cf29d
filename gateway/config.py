"""``strata serve`` settings: one frozen dataclass, parsed strictly at start-up.

Every flag has an environment variable; a flag given on the command line wins. A bad
value fails at start-up with the variable's name. The variables are read through
:class:`trace_store.config.Config`, the one reader of the environment.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from lifecycle_policies.policy import Policy, PolicyError
from runtime.sampling import Sampling
from trace_store.config import Config
from trace_store.document.build import DEFAULT_REDACT_FIELDS, DEFAULT_REDACT_HEADERS, TraceLimits
from trace_store.errors import ConfigError
from trace_store.writer.queue import WriterConfig

if TYPE_CHECKING:
    from collections.abc import Mapping

ROLES = ("all", "gateway", "editor", "worker")
WRITER_MODES = ("process", "inline")


def _http_url(value: str | None, setting: str) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{setting}: expected an http(s)://host[:port] URL, got {value!r}")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise ConfigError(f"{setting}: bad port in {value!r}") from None
    return value


#: Hosts that mean "every interface" to a server; a client on the machine uses loopback.
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def client_host(host: str) -> str:
    """``host`` as a client on this machine dials it: a wildcard listen address means
    loopback, and an IPv6 address goes in brackets."""
    host = _WILDCARD_HOSTS.get(host, host)
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True)
class EventSettings:
    """Bounds and timings of the event streams."""

    #: Seconds between comment lines on an idle stream (keeps proxies from closing it).
    heartbeat: float = 15.0
    #: Recent events kept per canvas for ``Last-Event-ID`` resumption.
    ring_size: int = 1024
    #: Per-connection buffer: beyond either bound the client is dropped as too slow.
    client_events: int = 256
    client_bytes: int = 256 * 1024
    #: A single write blocked longer than this drops the client.
    write_timeout: float = 30.0
    #: Reconnection delay the server suggests to clients (the ``retry:`` field).
    retry_ms: int = 3000
    #: Seconds between liveness probes of the ``LISTEN`` connection.
    keepalive: float = 15.0
    #: Open streams per process; beyond it new streams get 503.
    max_clients: int = 10_000

    @classmethod
    def from_config(cls, config: Config) -> EventSettings:
        """Settings from ``STRATA_EVENTS_*`` variables; a bad value names its variable."""
        number, integer = config.get_float, config.get_int
        return cls(
            heartbeat=number("STRATA_EVENTS_HEARTBEAT", 15.0, low=0.05, high=3600),
            ring_size=integer("STRATA_EVENTS_RING", 1024, low=0, high=1_000_000),
            client_events=integer("STRATA_EVENTS_CLIENT_BUFFER", 256, low=1, high=100_000),
            client_bytes=integer(
                "STRATA_EVENTS_CLIENT_BYTES", 256 * 1024, low=8192, high=64 * 1024 * 1024
            ),
            write_timeout=number("STRATA_EVENTS_WRITE_TIMEOUT", 30.0, low=0.1, high=3600),
            keepalive=number("STRATA_EVENTS_KEEPALIVE", 15.0, low=0.1, high=3600),
            max_clients=integer("STRATA_EVENTS_MAX_CLIENTS", 10_000, low=1, high=1_000_000),
        )


@dataclass(frozen=True, slots=True)
class WorkSettings:
    """How a process runs queue workers (:mod:`gateway.workers`)."""

    #: Messages run at once (``STRATA_WORKER_CONCURRENCY``).
    concurrency: int = 8
    #: A taken message's lease, the visibility timeout (``STRATA_WORKER_LEASE``): a
    #: killed process's messages are taken again this long after its last renewal,
    #: which comes every third of it.
    lease: timedelta = timedelta(seconds=30)
    #: How often the loop looks for due messages without a wake-up.
    poll: float = 0.5
    #: On stop: how long running messages may take to finish.
    grace: float = 10.0
    #: How long one attempt may run before it is abandoned as failed
    #: (``STRATA_WORKER_TIMEOUT``).
    timeout: float = 300.0
    #: Retry delays: ``backoff_base * 2 ** (attempt - 1)`` seconds, at most ``backoff_cap``.
    backoff_base: float = 1.0
    backoff_cap: float = 300.0


@dataclass(frozen=True)
class ServeSettings:
    """Everything ``strata serve`` needs to start."""

    apps: tuple[str, ...] = ()
    store_url: str | None = None
    database_url: str | None = None
    data_dir: Path = Path(".strata")
    gateway_port: int = 8000
    editor_port: int = 8001
    host: str = "127.0.0.1"
    role: str = "all"
    domain: str = "localhost"
    secret: bytes | None = None
    admin_token: str | None = None
    sample: Sampling = field(default_factory=lambda: Sampling(1))
    limits: TraceLimits = field(default_factory=TraceLimits)
    writer: WriterConfig = field(default_factory=WriterConfig)
    #: ``process``: the trace writer runs in a child process (the gateway's core stays
    #: on requests); ``inline``: in the gateway's process. A ``memory:`` store is
    #: always written inline (a child process cannot share it).
    writer_mode: str = "process"
    #: Tune the garbage collector for queued traces (see trace_store.gc_tuning).
    gc_tuning: bool = True
    #: Bound of the trace log (``<data-dir>/log/<role>``), where every trace waits until
    #: it is stored and indexed (see trace_store.writer.log).
    log_bytes: int = 1024 * 1024 * 1024
    #: How queue workers run (``--role all`` and ``worker``).
    work: WorkSettings = field(default_factory=WorkSettings)
    signed_url_ttl: timedelta = timedelta(minutes=15)
    editor_url: str | None = None
    max_request_bytes: int = 10 * 1024 * 1024
    #: Seconds a connection may take to send a request's headers, counted from its
    #: opening or from the previous response (an idle keep-alive connection is closed
    #: after the same time), and to send a request's body.
    header_timeout: float = 15.0
    body_timeout: float = 30.0
    #: Seconds one rerun or function run may take before it is answered with an error.
    run_timeout: float = 30.0
    #: Threads that run sync handlers and sync user functions, so that a blocking one
    #: holds a thread and never the event loop.
    sync_threads: int = 32
    #: Retention (SPEC §10), from the TOML file named by ``STRATA_POLICY``.
    policy: Policy = field(default_factory=Policy)
    #: The editor's live event streams (``STRATA_EVENTS_*``).
    events: EventSettings = field(default_factory=EventSettings)
    #: Watch the canvas modules and load their changes in the running process
    #: (``STRATA_RELOAD``, ``--reload``; see gateway.reload).
    reload: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | Config, **flags: object) -> ServeSettings:
        """Settings from environment variables (a :class:`Config` or the mapping it
        reads), overridden by non-``None`` ``flags``."""
        config = env if isinstance(env, Config) else Config(env)

        def pick(flag: str, var: str) -> str | None:
            value = flags.get(flag)
            if value is not None:
                return str(value)
            return config.get(var)

        apps_flag = flags.get("apps")
        if apps_flag:
            apps = tuple(str(a) for a in apps_flag)  # type: ignore[attr-defined]
        else:
            apps = tuple(
                a.strip() for a in (config.get("STRATA_APP") or "").split(",") if a.strip()
            )
        role = pick("role", "STRATA_ROLE") or "all"
        if role not in ROLES:
            raise ConfigError(f"STRATA_ROLE (--role): expected one of {ROLES}, got {role!r}")
        ports = {}
        for flag, var, default in (
            ("gateway_port", "STRATA_GATEWAY_PORT", 8000),
            ("editor_port", "STRATA_EDITOR_PORT", 8001),
        ):
            given = Config({var: pick(flag, var) or ""})
            ports[flag] = given.get_int(var, default, low=0, high=65535)
        secret_raw = config.get("STRATA_SECRET")
        if secret_raw is not None and len(secret_raw) < 16:
            raise ConfigError("STRATA_SECRET: must be at least 16 characters")
        limits = TraceLimits(
            max_body_bytes=config.get_int("STRATA_MAX_BODY_BYTES", 1024 * 1024),
            max_calls=config.get_int("STRATA_MAX_CALLS", 10_000),
            redact_headers=config.get_names("STRATA_REDACT_HEADERS", DEFAULT_REDACT_HEADERS),
            redact_fields=config.get_names("STRATA_REDACT_FIELDS", DEFAULT_REDACT_FIELDS),
        )
        writer = WriterConfig(
            queue_traces=config.get_int("STRATA_QUEUE_TRACES", 2_000, low=1),
            queue_bytes=config.get_int("STRATA_QUEUE_BYTES", 256 * 1024 * 1024, low=1024),
            queue_calls=config.get_int("STRATA_QUEUE_CALLS", 100_000, low=1),
            batch_size=config.get_int("STRATA_BATCH_SIZE", 500, low=1, high=10_000),
            batch_wait=config.get_int("STRATA_BATCH_WAIT_MS", 400, low=0, high=10_000) / 1000,
            segment_bytes=config.get_int("STRATA_SEGMENT_BYTES", 16 << 20, low=0, high=1 << 30),
            upload_concurrency=config.get_int("STRATA_UPLOAD_CONCURRENCY", 16, low=1, high=1024),
        )
        if config.is_set("STRATA_SPOOL_BYTES"):  # a setting silently ignored would be worse
            raise ConfigError(
                "STRATA_SPOOL_BYTES: the spool became the trace log; set STRATA_LOG_BYTES instead"
            )
        writer_mode = config.get_choice("STRATA_WRITER", "process", WRITER_MODES)
        gc_mode = config.get_choice("STRATA_GC", "tuned", ("tuned", "default"))
        ttl = config.get_int("STRATA_SIGNED_URL_TTL", 900, low=1, high=7 * 24 * 3600)
        policy_file = pick("policy", "STRATA_POLICY")
        try:
            policy = Policy.from_file(policy_file) if policy_file else Policy()
        except PolicyError as exc:
            raise ConfigError(f"STRATA_POLICY (--policy): {exc}") from None
        return cls(
            apps=apps,
            store_url=pick("store", "STRATA_STORE"),
            database_url=pick("database_url", "STRATA_DATABASE_URL"),
            data_dir=Path(pick("data_dir", "STRATA_DATA_DIR") or ".strata"),
            gateway_port=ports["gateway_port"],
            editor_port=ports["editor_port"],
            host=pick("host", "STRATA_HOST") or "127.0.0.1",
            role=role,
            domain=(config.get("STRATA_DOMAIN") or "localhost").lower().strip("."),
            secret=secret_raw.encode() if secret_raw else None,
            admin_token=config.get("STRATA_ADMIN_TOKEN"),
            sample=Sampling.parse(config.get("STRATA_TRACE_SAMPLE") or "all"),
            limits=limits,
            writer=writer,
            writer_mode=writer_mode,
            gc_tuning=gc_mode == "tuned",
            log_bytes=config.get_int("STRATA_LOG_BYTES", 1 << 30, low=1 << 20, high=2**62),
            work=WorkSettings(
                concurrency=config.get_int("STRATA_WORKER_CONCURRENCY", 8, low=1, high=1024),
                lease=timedelta(
                    seconds=config.get_float("STRATA_WORKER_LEASE", 30.0, low=1.0, high=3600.0)
                ),
                timeout=config.get_float("STRATA_WORKER_TIMEOUT", 300.0, low=0.1, high=86400.0),
            ),
            signed_url_ttl=timedelta(seconds=ttl),
            editor_url=_http_url(
                pick("editor_url", "STRATA_EDITOR_URL"),
                # Only the client commands have the flag; `serve` reads the variable.
                "--editor-url" if flags.get("editor_url") else "STRATA_EDITOR_URL",
            ),
            max_request_bytes=config.get_int("STRATA_MAX_REQUEST_BYTES", 10 << 20, low=1024),
            header_timeout=config.get_float("STRATA_HEADER_TIMEOUT", 15.0, low=0.1, high=3600),
            body_timeout=config.get_float("STRATA_BODY_TIMEOUT", 30.0, low=0.1, high=3600),
            run_timeout=config.get_float("STRATA_RUN_TIMEOUT", 30.0, low=0.1, high=3600),
            sync_threads=config.get_int("STRATA_SYNC_THREADS", 32, low=1, high=1024),
            policy=policy,
            events=EventSettings.from_config(config),
            reload=bool(flags.get("reload")) or config.get_bool("STRATA_RELOAD", False),
        )

    def resolve_secret(self) -> bytes:
        """``STRATA_SECRET``, or one generated once and kept in the data dir (mode 0600)."""
        if self.secret is not None:
            return self.secret
        path = self.data_dir / "secret"
        try:
            if path.exists():
                return path.read_bytes().strip()
            self.data_dir.mkdir(parents=True, exist_ok=True)
            value = secrets.token_hex(32).encode()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(value)
        except OSError as exc:
            raise ConfigError(
                f"STRATA_DATA_DIR (--data-dir): cannot keep the secret in {path}:"
                f" {exc.strerror} (or set STRATA_SECRET)"
            ) from None
        return value

    @property
    def local_editor_url(self) -> str:
        """Where a client on this machine reaches the editor API: ``editor_url``
        (``STRATA_EDITOR_URL``) when set, else ``http://host:editor_port``, where a
        wildcard host (``0.0.0.0``, ``::``) means loopback."""
        if self.editor_url:
            return self.editor_url.rstrip("/")
        return f"http://{client_host(self.host)}:{self.editor_port}"

    @property
    def log_dir(self) -> Path:
        """The trace log of this role (one process appends to it at a time)."""
        return self.data_dir / "log" / self.role

    @property
    def default_store_url(self) -> str:
        """The store used when none is configured: ``objects/`` in the data dir."""
        return f"file://{(self.data_dir / 'objects').resolve()}"

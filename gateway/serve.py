"""``strata serve``: open the services, start both ports, run until a signal.

Start-up order matters: Postgres (embedded if no URL) and migrations, then the store
(checked, so a bad bucket fails here and not on the first trace), then the writer, then
the listening sockets. Shutdown runs in reverse and drains the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from gateway import loop_lag
from gateway.adoption import adopt_unmatched
from gateway.config import client_host
from gateway.editor_api import add_api_routes
from gateway.errors import error_middleware
from gateway.events_api import add_event_routes
from gateway.explain_api import add_explain_routes
from gateway.grand_user import build_gateway_app
from gateway.health import add_health_routes
from gateway.http_server import Runner
from gateway.loader import load_canvases
from gateway.objects import add_object_routes
from gateway.openapi_api import add_openapi_routes
from gateway.patches_api import add_patch_routes
from gateway.queues_api import add_queue_routes
from gateway.reload import Reloader
from gateway.services import SERVICES, Services
from gateway.static_routes import add_static_routes
from gateway.unmatched_api import add_unmatched_routes
from gateway.workers import Workers
from runtime import stdlib
from runtime.sync_pool import SyncPool
from trace_store import db, gc_tuning, retention
from trace_store.backends.signing import UrlSigner
from trace_store.backends.url import parse_store_url
from trace_store.db import queue, tokens
from trace_store.errors import ConfigError
from trace_store.metrics import Metrics
from trace_store.writer import wire
from trace_store.writer.batch_writer import TraceWriter, Writer
from trace_store.writer.log import TraceLog
from trace_store.writer.process import ProcessWriter

if TYPE_CHECKING:
    from gateway.config import ServeSettings
    from runtime.canvas import Canvas
    from trace_store.backends.base import ObjectStore

log = logging.getLogger("strata.serve")


@dataclass
class Running:
    """A started server: its services, bound URLs and what to close."""

    services: Services
    urls: dict[str, str] = field(default_factory=dict)
    runners: list[web.AppRunner] = field(default_factory=list)
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    #: Background tasks (retention, ...), cancelled after the writer has drained.
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: Set with ``--reload``: it watches the canvas files.
    reloader: Reloader | None = None
    #: Under ``--role all`` and ``worker``: the queue workers and crons.
    workers: Workers | None = None

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        if self.workers is not None:  # before the writer: their last traces go with it
            await self.workers.stop()
        stdlib.queue.install(None)
        await self.services.writer.stop()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.stack.aclose()


async def resolve_database(settings: ServeSettings, stack: contextlib.AsyncExitStack) -> str:
    """The DSN to use: the configured one, or the data dir's embedded server."""
    if settings.database_url:
        return settings.database_url
    from gateway.embedded_pg import start_embedded

    dsn, server = await asyncio.to_thread(start_embedded, settings.data_dir)
    stack.callback(server.cleanup)
    return dsn


def build_editor_app(services: Services) -> web.Application:
    """The editor port: API and its OpenAPI document, signed object downloads, health."""
    app = web.Application(middlewares=[error_middleware], client_max_size=1024 * 1024)
    app[SERVICES] = services
    add_health_routes(app)
    add_api_routes(app, services)
    add_patch_routes(app)
    add_explain_routes(app)
    add_object_routes(app)
    add_unmatched_routes(app)
    add_queue_routes(app)
    add_event_routes(app, services)
    add_openapi_routes(app)
    add_static_routes(app)
    return app


async def open_services(
    settings: ServeSettings, canvases: dict[str, Canvas], stack: contextlib.AsyncExitStack
) -> Services:
    """Connect Postgres and the store, migrate, and start the writer."""
    dsn = await resolve_database(settings, stack)
    pool = await db.connect_pool(dsn)
    stack.push_async_callback(pool.close)
    async with pool.acquire() as conn:
        await db.migrate(conn)
    signer = UrlSigner(settings.resolve_secret(), "http://127.0.0.1")
    store_url = settings.store_url or settings.default_store_url
    store = parse_store_url(store_url, signer=signer)
    stack.push_async_callback(store.close)
    await store.check()
    await adopt_unmatched(pool, store, canvases)
    metrics = Metrics()
    writer = await start_writer(settings, store_url, dsn, store, pool, metrics)
    stack.push_async_callback(stdlib.http.close)
    sync_pool = SyncPool(settings.sync_threads)
    stack.callback(sync_pool.close)
    return Services(settings, canvases, store, pool, writer, metrics, signer, sync_pool)


async def start_writer(
    settings: ServeSettings,
    store_url: str,
    dsn: str,
    store: ObjectStore,
    pool: db.Pool,
    metrics: Metrics,
) -> Writer:
    """Start the trace writer ``settings.writer_mode`` asks for."""
    if settings.writer_mode == "process" and not store.process_local:
        tracelog = TraceLog(settings.log_dir, settings.log_bytes)
        tracelog.open()
        child = wire.ChildConfig(
            store_url,
            dsn,
            settings.limits,
            settings.writer,
            gc_tuning=settings.gc_tuning,
            log_dir=str(settings.log_dir),
        )
        process = ProcessWriter(child, metrics, tracelog, config=settings.writer)
        process.start()
        try:
            await process.wait_ready()
        except BaseException:
            await process.stop(drain_timeout=1.0)
            raise
        return process
    inline = TraceWriter(store, pool, metrics, limits=settings.limits, config=settings.writer)
    inline.start()
    return inline


def _runner(app: web.Application, role: str, services: Services) -> Runner:
    settings = services.settings
    return Runner(
        app, port_name=role, header_timeout=settings.header_timeout, metrics=services.metrics
    )


async def _start_site(runner: web.AppRunner, host: str, port: int, role: str) -> int:
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:  # the port is taken, or the host is not one of ours
        await runner.cleanup()
        flag = f"STRATA_{role.upper()}_PORT (--{role}-port) / STRATA_HOST (--host)"
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(f"{flag}: cannot listen on {host}:{port}: {reason}") from None
    server = site._server
    assert server is not None
    sockets: Any = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1]) if sockets else port


async def start(settings: ServeSettings, canvases: dict[str, Canvas] | None = None) -> Running:
    """Start everything ``settings`` asks for and return the running server."""
    if canvases is None:
        canvases = load_canvases(settings.apps)
    stack = contextlib.AsyncExitStack()
    try:
        services = await open_services(settings, canvases, stack)
    except BaseException:
        await stack.aclose()
        raise
    running = Running(services, stack=stack)
    try:
        running.tasks += await retention.start_tasks(services.store, services.pool, settings.policy)
        running.tasks.append(loop_lag.start(services.metrics))
        if settings.role in ("all", "worker"):
            running.workers = Workers(services, settings.work)
            running.workers.start()
            stdlib.queue.install(running.workers.enqueue)
        else:  # enqueues only: the worker processes hear of them through NOTIFY
            pool = services.pool
            stdlib.queue.install(
                lambda canvas, name, event: queue.enqueue(pool, canvas, name, event)
            )
        if settings.reload:
            running.reloader = Reloader(services)
            running.tasks.append(await start_reloader(running.reloader))
        if settings.role in ("all", "editor"):
            runner = _runner(build_editor_app(services), "editor", services)
            port = await _start_site(runner, settings.host, settings.editor_port, "editor")
            running.runners.append(runner)
            # Printed and used for local signed URLs: 0.0.0.0 is not an address to dial.
            running.urls["editor"] = f"http://{client_host(settings.host)}:{port}"
            services.signer.base_url = (settings.editor_url or running.urls["editor"]).rstrip("/")
        elif settings.editor_url:
            services.signer.base_url = settings.editor_url.rstrip("/")
        if settings.role in ("all", "gateway"):
            runner = _runner(build_gateway_app(services), "gateway", services)
            port = await _start_site(runner, settings.host, settings.gateway_port, "gateway")
            running.runners.append(runner)
            running.urls["gateway"] = f"http://{client_host(settings.host)}:{port}"
    except BaseException:
        await running.close()
        raise
    return running


async def start_reloader(reloader: Reloader) -> asyncio.Task[None]:
    """Start watching; a watch that cannot start (no inotify watches left, say) is a
    start-up error naming the setting."""
    watching = asyncio.Event()
    task = asyncio.create_task(reloader.run(watching))
    ready = asyncio.create_task(watching.wait())
    await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if task.done() and not watching.is_set():
        error = task.exception()
        raise ConfigError(f"STRATA_RELOAD (--reload): cannot watch the canvas files: {error}")
    if not watching.is_set():
        task.cancel()
        raise ConfigError("STRATA_RELOAD (--reload): the file watcher did not start within 10 s")
    return task


async def dev_tokens(running: Running) -> dict[str, str]:
    """One editor token per canvas for local development, kept in the data dir (0600)."""
    services = running.services
    path = services.settings.data_dir / "dev-tokens.json"
    known: dict[str, str] = {}
    if path.exists():
        known = orjson.loads(path.read_bytes())
    result: dict[str, str] = {}
    for name in services.canvases:
        token = known.get(name)
        if token is None or await tokens.canvas_of(services.pool, token) != name:
            token = await tokens.create_token(services.pool, name)
        result[name] = token
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(orjson.dumps(result))
    return result


async def serve_forever(settings: ServeSettings, *, print_dev_tokens: bool = False) -> None:
    """Run until SIGINT or SIGTERM, printing the URLs once listening."""
    running = await start(settings)
    if settings.gc_tuning:
        gc_tuning.tune()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for role in ("gateway", "editor"):
            if role in running.urls:
                print(f"{role}: {running.urls[role]}", flush=True)
        if "gateway" in running.urls and len(running.services.canvases) > 1:
            port = running.urls["gateway"].rsplit(":", 1)[1]
            for name in running.services.canvases:
                print(f"canvas {name}: http://{name}.{settings.domain}:{port}", flush=True)
        if print_dev_tokens:
            for name, token in (await dev_tokens(running)).items():
                print(f"token {name}: {token}", flush=True)
                if "editor" in running.urls:
                    print(f"open {name}: {running.urls['editor']}/#token={token}", flush=True)
        print("ready", flush=True)
        await stop.wait()
    finally:
        print("stopping", file=sys.stderr, flush=True)
        await running.close()

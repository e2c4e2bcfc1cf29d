"""``/healthz``, ``/readyz`` and ``/metrics``, on both ports, without a token."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.services import SERVICES
from trace_store.errors import describe

READY_TIMEOUT = 3.0


async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when Postgres and the object store both answer, else 503 saying which not."""
    services = request.app[SERVICES]
    checks: dict[str, str] = {}

    async def postgres() -> None:
        await services.pool.fetchval("SELECT 1")

    for name, probe in (("postgres", postgres), ("store", services.store.check)):
        try:
            await asyncio.wait_for(probe(), READY_TIMEOUT)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unavailable: {describe(exc)}"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this process's metrics."""
    services = request.app[SERVICES]
    services.metrics.queue_depth.set(services.writer.depth)
    body = generate_latest(services.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_health_routes(app: web.Application) -> None:
    """Register the three routes on ``app``."""
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)

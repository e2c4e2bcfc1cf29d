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
    """200 when Postgres and the object store both answer and the trace log is healthy;
    else 503 saying which not (``degraded``: only the log is unwell: unwritable, full,
    or not draining)."""
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
    reachable = all(v == "ok" for v in checks.values())
    problem = services.writer.problem()
    checks["log"] = problem or "ok"
    status = "unavailable" if not reachable else "degraded" if problem else "ready"
    return web.json_response(
        {"status": status, "checks": checks}, status=200 if status == "ready" else 503
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

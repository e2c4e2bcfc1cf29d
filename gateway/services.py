"""The shared objects of one ``serve`` process, as typed aiohttp app state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.config import ServeSettings
    from runtime.canvas import Canvas
    from runtime.sync_pool import SyncPool
    from trace_store.backends.base import ObjectStore
    from trace_store.backends.signing import UrlSigner
    from trace_store.db import Pool
    from trace_store.metrics import Metrics
    from trace_store.writer.batch_writer import Writer


@dataclass
class Services:
    """What every request handler of both apps may use."""

    settings: ServeSettings
    canvases: dict[str, Canvas]
    store: ObjectStore
    pool: Pool
    writer: Writer
    metrics: Metrics
    signer: UrlSigner
    #: Where sync handlers and sync user functions run (``serve`` always sets one).
    sync_pool: SyncPool | None = None


SERVICES = web.AppKey("services", Services)

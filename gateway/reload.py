"""``strata serve --reload`` (SPEC §14): the loaded canvas modules are watched, and a
change is imported in the running process.

When the new code loads and registers cleanly it replaces the canvas in one dict
assignment (requests in flight finish on the old code, which they hold), the stored
unmatched requests its routes now match are adopted, and a ``canvas`` event
``{canvas, handlers, error: null}`` goes out. When it does not load (a syntax error,
an ambiguous route, an import error) the old code keeps serving and the event carries
``error: {type, message, file, line}``.

Files are watched with watchfiles (inotify through Rust's ``notify``; it batches the
several events one save makes into one change set).
"""

from __future__ import annotations

import linecache
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import watchfiles

from gateway.adoption import adopt_unmatched
from gateway.loader import canvas_module, failure_place, reload_canvas
from runtime.source import relative_file
from trace_store.db import notify

if TYPE_CHECKING:
    import asyncio
    from types import ModuleType

    from gateway.services import Services
    from trace_store.types import JSONObject

log = logging.getLogger("strata.reload")


@dataclass(frozen=True, slots=True)
class Watched:
    """One loaded canvas and the module file it comes from."""

    canvas: str
    module: ModuleType
    path: Path


def watched(services: Services) -> list[Watched]:
    """The canvases that can be reloaded: those whose module has a file."""
    found = []
    for name, canvas in services.canvases.items():
        module = canvas_module(canvas)
        if module is not None and module.__file__:
            found.append(Watched(name, module, Path(module.__file__).resolve()))
    return found


def load_error(exc: BaseException, module: ModuleType, path: Path) -> JSONObject:
    """``{type, message, file, line, text}`` of a failed reload: a syntax error's own
    place, else the deepest frame in the module's file; ``text`` is that line."""
    _, line = failure_place(exc, path)
    message = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    linecache.checkcache(str(path))
    text = linecache.getline(str(path), line).rstrip() if line else ""
    return {
        "type": type(exc).__name__,
        "message": message[:2000],
        "file": relative_file(module.__name__, str(path)),
        "line": line,
        "text": text[:500],
    }


class Reloader:
    """Reloads the canvases of ``services`` when their files change."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.watching = {w.path: w for w in watched(services)}
        #: The outcome of the last reload of each canvas (for tests and logs).
        self.last: dict[str, JSONObject] = {}

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Watch until cancelled; ``ready`` is set once the watch is in place (a change
        saved after that is seen)."""
        if not self.watching:
            log.warning("--reload: no loaded canvas comes from a file; nothing to watch")
            if ready is not None:
                ready.set()
            return
        directories = {path.parent for path in self.watching}
        # yield_on_timeout: an empty change set after rust_timeout ms says the watcher
        # is running (the generator arms it only when first iterated).
        watcher = watchfiles.awatch(
            *directories,
            debounce=100,
            step=20,
            rust_timeout=200,
            yield_on_timeout=True,
            recursive=False,
        )
        async for changes in watcher:
            if ready is not None:
                ready.set()
            touched = {Path(path) for _, path in changes}  # under the resolved dirs
            for path in sorted(touched & self.watching.keys()):
                await self.reload(self.watching[path])

    async def reload(self, item: Watched) -> JSONObject:
        """Load ``item``'s file again; swap the canvas in when it loads cleanly."""
        services = self.services
        try:
            canvas = reload_canvas(item.module, item.canvas)
        except Exception as exc:
            error = load_error(exc, item.module, item.path)
            log.warning(
                "reload of %s failed, the old code keeps serving: %s at %s:%s: %s",
                item.canvas,
                error["type"],
                error["file"],
                error["line"],
                error["message"],
            )
            return await self._announce(item.canvas, None, error)
        linecache.checkcache(str(item.path))  # the source API shows the new lines
        module = canvas_module(canvas)
        if module is not None:
            self.watching[item.path] = Watched(item.canvas, module, item.path)
        services.canvases[item.canvas] = canvas
        log.info("reloaded %s: %d handlers", item.canvas, len(canvas.handlers))
        try:
            await adopt_unmatched(services.pool, services.store, {item.canvas: canvas})
        except Exception:  # the next reload (or restart) adopts them
            log.exception("adoption after the reload of %s failed", item.canvas)
        handlers = [h.description for h in sorted(canvas.handlers.values(), key=lambda h: h.id)]
        return await self._announce(item.canvas, handlers, None)

    async def _announce(
        self, canvas: str, handlers: list[Any] | None, error: JSONObject | None
    ) -> JSONObject:
        data: JSONObject = {"canvas": canvas, "handlers": handlers, "error": error}
        self.last[canvas] = {**data, "at": time.monotonic()}
        try:
            async with self.services.pool.acquire() as conn:
                try:
                    await notify.publish(conn, canvas, "canvas", data)
                except ValueError:  # too many handlers for one notification
                    slim = {**data, "handlers": None}
                    await notify.publish(conn, canvas, "canvas", slim)
        except Exception:
            log.exception("could not publish the canvas event of %s", canvas)
        return data

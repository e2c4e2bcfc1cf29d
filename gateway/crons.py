"""Crons of the loaded canvases (SPEC §15): one loop per cron handler sleeps until its
next tick and claims it in Postgres (:func:`trace_store.db.queue.claim_tick`), so that of
every process on the database exactly one runs it. At start-up the latest tick missed
while no process ran is run once (for a cron that ran before); ticks that come while a
run takes longer than its interval are skipped."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.background_run import run_recorded, submit
from runtime.canvas import CRON
from trace_store.background import GaveUp, Retries, until_done
from trace_store.db import queue
from trace_store.timestamps import rfc3339_of

if TYPE_CHECKING:
    from gateway.services import Services
    from runtime.canvas import Handler

log = logging.getLogger("strata.crons")


class Crons:
    """The cron loops of one process (``taker`` names it in the claims)."""

    def __init__(self, services: Services, taker: str) -> None:
        self.services = services
        self.taker = taker
        self._loops: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._retries = Retries("cron", log, base=0.5, cap=10.0)

    async def stop(self) -> None:
        """Stop every loop (a run in progress is cancelled; its tick stays claimed)."""
        loops = list(self._loops.values())
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        self._loops.clear()

    def sync(self) -> None:
        """One loop per loaded cron handler (a reload adds and removes them)."""
        wanted = {
            (canvas.name, handler.id)
            for canvas in self.services.canvases.values()
            for handler in canvas.handlers.values()
            if handler.kind == CRON
        }
        for key in list(self._loops):
            if key not in wanted:
                self._loops.pop(key).cancel()
        for key in wanted - self._loops.keys():
            self._loops[key] = asyncio.get_running_loop().create_task(
                self._cron_forever(*key), name=f"cron-{key[0]}-{key[1]}"
            )

    def _cron_handler(self, canvas_name: str, handler_id: str) -> Handler | None:
        canvas = self.services.canvases.get(canvas_name)
        handler = None if canvas is None else canvas.handlers.get(handler_id)
        return handler if handler is not None and handler.kind == CRON else None

    async def _cron_forever(self, canvas_name: str, handler_id: str) -> None:
        handler = self._cron_handler(canvas_name, handler_id)
        assert handler is not None
        assert handler.schedule is not None
        tick = await self._missed_tick(handler)
        if tick is not None and await self._claim(handler, tick):
            self.services.metrics.cron_missed.labels(handler.id).inc()
            await self._run_cron(handler, tick)
        tick = handler.schedule.latest(datetime.now(UTC))
        while True:
            handler = self._cron_handler(canvas_name, handler_id)
            if handler is None or handler.schedule is None:
                return
            # The tick after the latest one that has come: the ticks that came while a
            # run took longer than its interval are skipped, not run late one by one.
            tick = handler.schedule.after(max(tick, handler.schedule.latest(datetime.now(UTC))))
            await asyncio.sleep(max(0.0, (tick - datetime.now(UTC)).total_seconds()))
            if await self._claim(handler, tick):
                await self._run_cron(handler, tick)

    async def _missed_tick(self, handler: Handler) -> datetime | None:
        """The latest tick before now, if this cron ran before and not at that tick."""
        assert handler.schedule is not None
        latest = handler.schedule.latest(datetime.now(UTC))
        last = await until_done(
            lambda: self.services.pool.fetchval(
                "SELECT max(tick) FROM cron_runs WHERE canvas = $1 AND handler_id = $2",
                handler.canvas,
                handler.id,
            ),
            self._retries,
        )
        return latest if last is not None and last < latest else None

    async def _claim(self, handler: Handler, tick: datetime) -> bool:
        """Whether this process runs ``tick``; a tick that cannot be claimed within 30 s
        (Postgres down) is left to whichever process can."""
        try:
            return await until_done(
                lambda: queue.claim_tick(
                    self.services.pool, handler.canvas, handler.id, tick, self.taker
                ),
                self._retries,
                give_up=30.0,
            )
        except GaveUp:
            return False

    async def _run_cron(self, handler: Handler, tick: datetime) -> None:
        assert handler.schedule is not None
        run = await run_recorded(self.services, handler, None)
        doc_input = {"kind": "cron", "schedule": handler.schedule.text, "tick": rfc3339_of(tick)}
        submit(self.services, handler, run, doc_input)
        self.services.metrics.cron_runs.labels(handler.id).inc()

"""Queue workers and crons of the loaded canvases (SPEC §15), under ``--role all`` and
``--role worker``.

Workers: one loop takes due messages of every queue that has a worker, up to
``STRATA_WORKER_CONCURRENCY`` at a time across canvases, and runs each as a task: the
worker is called with the message's value, recorded, and its trace goes to the writer
like a request's; then the message is finished, or retried with exponential backoff,
or kept as dead after ``max_attempts``. A taken message is leased; the lease is renewed
while it runs, so a killed process's messages come back once it lapses (that attempt
counts). New messages wake the loop through ``NOTIFY`` (and directly, in the process
that enqueued them); it also polls.

Crons (:mod:`gateway.crons`) run beside them: this loop starts and stops a cron's loop
as reloads add and remove cron handlers.

Stopping: no more messages are taken, running ones get ``grace`` seconds to finish, the
rest are cancelled and given back untried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.background_run import run_recorded, submit
from gateway.config import WorkSettings
from gateway.crons import Crons
from trace_store.background import GaveUp, Retries, until_done
from trace_store.db import queue
from trace_store.document.values import from_json
from trace_store.errors import RunTimeout, describe
from trace_store.record import Execution
from trace_store.timestamps import rfc3339_of

if TYPE_CHECKING:
    from gateway.services import Services
    from runtime.canvas import Canvas, Handler
    from trace_store.db import Connection

log = logging.getLogger("strata.workers")


def backoff(settings: WorkSettings, attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``, with ±25 % jitter."""
    delay = min(settings.backoff_cap, settings.backoff_base * 2.0 ** (attempt - 1))
    return float(delay * (0.75 + random.random() / 2))


class Workers:
    """The background work of one ``serve`` process."""

    def __init__(self, services: Services, settings: WorkSettings | None = None) -> None:
        self.services = services
        self.settings = settings or WorkSettings()
        self.taker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._running: dict[asyncio.Task[None], queue.Message] = {}
        self.crons = Crons(services, self.taker)
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = False
        self._expire_due = 0.0
        self._counted: set[tuple[str, str]] = set()
        #: Finished messages not yet deleted (:meth:`_finish_forever`).
        self._done: list[queue.Message] = []
        self._has_done = asyncio.Event()

    def start(self) -> None:
        """Start taking messages and running crons."""
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._take_forever(), name="workers"),
            loop.create_task(self._renew_forever(), name="worker-leases"),
            loop.create_task(self._finish_forever(), name="worker-acks"),
        ]

    def wake(self) -> None:
        """A message was enqueued: look now."""
        self._wake.set()

    async def enqueue(self, canvas: str, name: str, event: Any) -> str:
        """``stdlib.queue.enqueue`` of this process: queue, then wake the loop."""
        message_id = await queue.enqueue(self.services.pool, canvas, name, event)
        self.wake()
        return message_id

    async def stop(self) -> None:
        """Stop taking; let running messages finish within the grace period; give the
        rest back untried."""
        self._stopping.set()
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.crons.stop()
        running = dict(self._running)
        if running:
            _, late = await asyncio.wait(running, timeout=self.settings.grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            unfinished = [running[task] for task in late]
            if unfinished:
                with contextlib.suppress(Exception):
                    await queue.release(self.services.pool, unfinished, self.taker)
                log.info("stopped with %d messages given back", len(unfinished))
        if self._done:  # finished during the grace period, or left by the cancelled loop
            with contextlib.suppress(Exception):  # else their leases lapse: delivered again
                await queue.finish(self.services.pool, self._done, self.taker)
            self._done = []

    # -- workers ----------------------------------------------------------------------

    async def _take_forever(self) -> None:
        retries = Retries("workers", log, base=self.settings.poll, cap=10.0)
        while not self._stopping.is_set():
            self.crons.sync()
            try:
                took = await self._take()
            except Exception as exc:
                await asyncio.sleep(retries.failed(exc))
                continue
            retries.succeeded()
            if not took:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll)

    async def _take(self) -> int:
        """Take and start what fits; returns how many were taken."""
        free = self.settings.concurrency - len(self._running)
        if free <= 0:
            return 0
        pool = self.services.pool
        canvases = list(self.services.canvases.values())
        attempts = {(c.name, q): h.max_attempts for c in canvases for q, h in c.workers.items()}
        if not attempts:
            return 0
        loop = asyncio.get_running_loop()
        if not self._listening:  # a connection held for wake-ups only once there are workers
            self._listening = True
            self._tasks.append(loop.create_task(self._listen_forever(), name="worker-wakeups"))
        if loop.time() >= self._expire_due:  # leases lapse on a scale of seconds
            await queue.expire_dead(pool, attempts)
            await self._count(canvases)
            self._expire_due = loop.time() + self.settings.lease.total_seconds() / 3
        took = 0
        for canvas in canvases:
            if free <= 0 or not canvas.workers:
                continue
            wanted = {name: worker.max_attempts for name, worker in canvas.workers.items()}
            messages = await queue.take(
                pool, canvas.name, wanted, free, self.settings.lease, self.taker
            )
            for message in messages:
                task = asyncio.get_running_loop().create_task(self._run(message))
                self._running[task] = message
                task.add_done_callback(self._finished)
            took += len(messages)
            free -= len(messages)
        return took

    async def _count(self, canvases: list[Canvas]) -> None:
        """The queue depths for ``/metrics``."""
        gauge = self.services.metrics.queue_messages
        counted: dict[tuple[str, str], queue.QueueStats] = {}
        for canvas in canvases:
            for stats in await queue.stats(self.services.pool, canvas.name):
                counted[(canvas.name, stats.name)] = stats
        for key in self._counted - counted.keys():  # emptied since: zero, not stale
            for state in ("ready", "running", "dead"):
                gauge.labels(*key, state).set(0)
        for (canvas_name, name), stats in counted.items():
            for state in ("ready", "running", "dead"):
                gauge.labels(canvas_name, name, state).set(getattr(stats, state))
        self._counted = set(counted)

    def _finished(self, task: asyncio.Task[None]) -> None:
        # A free slot: look again at once (a backlog must not wait for the poll).
        self._running.pop(task, None)
        self._wake.set()

    async def _run(self, message: queue.Message) -> None:
        services = self.services
        canvas = services.canvases.get(message.canvas)
        handler = None if canvas is None else canvas.workers.get(message.queue)
        if handler is None:  # unloaded by a reload since: it waits for its worker again
            await queue.release(services.pool, [message], self.taker)
            return
        services.metrics.worker_lag.observe(
            max(0.0, (datetime.now(UTC) - message.enqueued_at).total_seconds())
        )
        run = await self._execute_within(handler, from_json(message.event))
        doc_input = {
            "kind": "worker",
            "queue": message.queue,
            "message_id": message.message_id,
            "attempt": message.attempt,
            "enqueued_at": rfc3339_of(message.enqueued_at),
            "event": message.event,
        }
        submit(self.services, handler, run, doc_input)
        await self._settle(handler, message, run)

    async def _settle(self, handler: Handler, message: queue.Message, run: Execution) -> None:
        """Finish the message (in the next batch of :meth:`_finish_forever`) or retry
        it; a database that does not answer is retried until the lease runs out (then
        the message comes back anyway: at least once)."""
        if run.error is None:
            self._done.append(message)
            self._has_done.set()
            self.services.metrics.worker_attempts.labels(message.queue, "ok").inc()
            return
        error = describe(run.error)
        try:
            dead = await until_done(
                lambda: queue.fail(
                    self.services.pool,
                    message,
                    self.taker,
                    error,
                    max_attempts=handler.max_attempts,
                    backoff=backoff(self.settings, message.attempt),
                ),
                Retries(f"worker {message.queue}", log, base=0.2, cap=5.0),
                give_up=self.settings.lease.total_seconds(),
            )
        except GaveUp:
            return
        outcome = "dead" if dead else "error"
        self.services.metrics.worker_attempts.labels(message.queue, outcome).inc()

    async def _finish_forever(self) -> None:
        """Delete finished messages a batch at a time: one statement for all that
        finished while the previous one ran."""
        retries = Retries("worker acknowledgements", log, base=0.2, cap=5.0)
        while True:
            await self._has_done.wait()
            batch, self._done = self._done, []
            self._has_done.clear()
            try:
                await queue.finish(self.services.pool, batch, self.taker)
            except Exception as exc:
                self._done[:0] = batch  # again with the next batch
                self._has_done.set()
                await asyncio.sleep(retries.failed(exc))
                continue
            retries.succeeded()

    async def _renew_forever(self) -> None:
        every = self.settings.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(Exception):  # a missed renewal: the next one, or a retry
                await queue.renew(
                    self.services.pool,
                    list(self._running.values()),
                    self.settings.lease,
                    self.taker,
                )

    async def _listen_forever(self) -> None:
        """Wake the loop on every ``NOTIFY`` of a new message (any process's)."""
        retries = Retries("worker wake-ups", log, base=1.0, cap=30.0)
        while True:
            try:
                async with self.services.pool.acquire() as conn:
                    await self._listen(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await asyncio.sleep(retries.failed(exc))

    async def _listen(self, conn: Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())

        def notified(*_: object) -> None:
            self._wake.set()

        await conn.add_listener(queue.CHANNEL, notified)
        try:
            while not lost.is_set():
                await asyncio.sleep(5)
                await conn.fetchval("SELECT 1")  # a dead connection raises here
        finally:
            with contextlib.suppress(Exception):
                await conn.remove_listener(queue.CHANNEL, notified)

    async def _execute_within(self, handler: Handler, argument: Any) -> Execution:
        """A worker's run, abandoned after ``timeout`` seconds: a worker that hangs must
        not hold its slot (and its message's lease) for ever. An abandoned run is a
        failed attempt (retried, then dead); a sync worker's thread runs on by itself."""
        started_ns, t0 = time.time_ns(), time.perf_counter_ns()
        try:
            async with asyncio.timeout(self.settings.timeout):
                # execute() keeps the worker's own errors: a TimeoutError out of this
                # block is the deadline's.
                return await run_recorded(self.services, handler, argument)
        except TimeoutError:
            error = RunTimeout(
                f"the worker did not finish within {self.settings.timeout:g} s"
                " (STRATA_WORKER_TIMEOUT)"
            )
            duration = time.perf_counter_ns() - t0
            return Execution(None, [], b"", error, None, False, started_ns, t0, duration)

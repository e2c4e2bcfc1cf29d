"""Live editor events (SPEC §8): Postgres ``LISTEN`` fanned out as server-sent events.

Writers publish ``trace``, ``patch`` and ``unmatched`` events with ``pg_notify`` inside
the transaction that makes the change visible (:mod:`trace_store.db.notify`), so every
``serve`` process sharing the database hears every event. Each process holds **one**
``LISTEN`` connection and fans each notification out to the event streams of its
canvas: ``GET /api/v1/canvases/{canvas}/events`` (``text/event-stream``).

Bounded memory, whatever the clients do:

- each stream has a bounded buffer (events and bytes). A client that does not read
  stops draining its socket, its buffer fills, and the server drops the connection
  (``strata_events_clients_dropped_total{reason="slow"}``) instead of buffering more;
  a write stuck longer than ``write_timeout`` is dropped the same way;
- each canvas keeps a bounded ring of recent events for resumption.

Resumption: event ids are ``<epoch>-<seq>``. ``seq`` increases by one per event in this
process; ``epoch`` is new for every process start and every re-established ``LISTEN``
connection, because notifications sent while no connection listened are lost. A client
reconnecting with ``Last-Event-ID`` from the current epoch, whose missed events are all
still in the ring, gets them replayed. Otherwise (another process behind a load
balancer, a restart, a listener gap, a ring overrun) it gets a ``resync`` event, meaning
"reload your lists": the stream cannot prove nothing was missed, so it says so. Every
stream starts with ``retry:`` and the current id, so a client that saw no event yet can
still resume precisely. Events are at-least-once: a writer retry after a lost commit
acknowledgement may publish an event twice, so clients de-duplicate by id in ``data``.

Browsers' ``EventSource`` cannot send an ``Authorization`` header. The stream takes the
bearer token in the header only, like every other ``/api/`` route, and the editor page
reads it with ``fetch()`` streaming: a token in a query string would end up in access
logs, proxies and browser history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import Counter, Gauge

from trace_store.background import Retries
from trace_store.db import notify
from trace_store.parsing import ascii_uint

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.config import EventSettings
    from gateway.services import Services
    from trace_store.db import Connection

log = logging.getLogger("strata.events")

RESYNC = "resync"
#: Seconds ``serve`` waits at start-up for the first ``LISTEN`` before going on without.
START_TIMEOUT = 10.0


class EventMetrics:
    """The event streams' Prometheus metrics, in the process registry."""

    def __init__(self, hub: EventHub) -> None:
        registry = hub.services.metrics.registry
        self.clients = Gauge("strata_events_clients", "Open event streams", registry=registry)
        self.buffered = Gauge(
            "strata_events_buffered_bytes",
            "Bytes waiting in event-stream buffers (all clients)",
            registry=registry,
        )
        self.buffered.set_function(hub.buffered_bytes)
        self.dropped = Counter(
            "strata_events_clients_dropped",
            "Event streams closed by the server because the client did not keep up",
            ["reason"],
            registry=registry,
        )
        self.received = Counter(
            "strata_events_received", "Events received through Postgres", registry=registry
        )
        self.reconnects = Counter(
            "strata_events_listener_reconnects",
            "Times the LISTEN connection was lost and opened again",
            registry=registry,
        )


@dataclass(eq=False)
class Subscriber:
    """One open event stream: a bounded buffer of encoded SSE chunks."""

    canvas: str
    max_events: int
    max_bytes: int
    transport: asyncio.Transport | None = None
    chunks: deque[bytes] = field(default_factory=deque)
    size: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: str | None = None

    def offer(self, chunk: bytes) -> bool:
        """Buffer ``chunk``; ``False`` (and the stream is closed) when the buffer is full."""
        if self.closed is not None:
            return False
        if len(self.chunks) >= self.max_events or self.size + len(chunk) > self.max_bytes:
            self.close("slow")
            return False
        self.chunks.append(chunk)
        self.size += len(chunk)
        self.wake.set()
        return True

    def take(self) -> bytes:
        """Everything buffered, as one write."""
        data = b"".join(self.chunks)
        self.chunks.clear()
        self.size = 0
        return data

    def close(self, reason: str) -> None:
        """End the stream. A dropped client's socket is aborted, not flushed: a client that
        does not read would otherwise keep the kernel and transport buffers forever."""
        if self.closed is not None:
            return
        self.closed = reason
        self.chunks.clear()
        self.size = 0
        self.wake.set()
        if reason != "shutdown" and self.transport is not None:
            self.transport.abort()


@dataclass
class _Ring:
    #: ``(seq, event, data)``, formatted only when replayed: most events reach no one.
    events: deque[tuple[int, str, dict[str, Any]]]
    #: The seq of the newest event pushed out of the ring (0: none yet).
    evicted: int = 0


def _chunk(event: str, event_id: str, data: Any) -> bytes:
    # orjson never emits a newline, so the data is one ``data:`` line.
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        event_id.encode(),
        event.encode(),
        orjson.dumps(data),
    )


class EventHub:
    """The process's one ``LISTEN`` connection and the streams it feeds."""

    def __init__(self, services: Services, settings: EventSettings) -> None:
        self.services = services
        self.settings = settings
        self.epoch = secrets.token_hex(4)
        self.seq = 0
        self.rings: dict[str, _Ring] = {}
        self.subscribers: dict[str, set[Subscriber]] = {}
        #: Set while a ``LISTEN`` connection is up (tests wait on it).
        self.listening = asyncio.Event()
        self.listener_pid: int | None = None
        self.metrics = EventMetrics(self)
        self._task: asyncio.Task[None] | None = None
        self._listened = False
        self._retries = Retries("event listener", log, base=0.1, cap=10.0)
        #: Other channels heard on the same connection: channel -> callback(payload).
        #: A callback is also called with ``None`` after a reconnect (it may have missed
        #: notifications in between).
        self._channels: dict[str, Callable[[str | None], None]] = {}

    def listen_also(self, channel: str, callback: Callable[[str | None], None]) -> None:
        """Hear ``channel`` too (before :meth:`start`)."""
        self._channels[channel] = callback

    # -- state --------------------------------------------------------------------

    @property
    def last_id(self) -> str:
        """The id of the newest event of this process (what a fresh stream starts at)."""
        return self._event_id(self.seq)

    def _event_id(self, seq: int) -> str:
        return f"{self.epoch}-{seq}"

    def client_count(self) -> int:
        return sum(len(s) for s in self.subscribers.values())

    def buffered_bytes(self) -> int:
        """Bytes held by all stream buffers right now."""
        return sum(sub.size for subs in self.subscribers.values() for sub in subs)

    # -- fan-out ------------------------------------------------------------------

    def dispatch(self, payload: str) -> None:
        """Deliver the events of one notification payload to the streams of their canvas."""
        try:
            messages = orjson.loads(payload)
        except orjson.JSONDecodeError:
            messages = None
        if not isinstance(messages, list):
            log.warning("ignoring a malformed notification: %.200s", payload)
            return
        for message in messages:
            try:
                canvas, event, data = message["canvas"], message["event"], message["data"]
            except (KeyError, TypeError):
                log.warning("ignoring a malformed event: %.200s", message)
                continue
            if event not in notify.EVENTS or not isinstance(data, dict):
                log.warning("ignoring an unknown event: %.200s", message)
                continue
            self.metrics.received.inc()
            if canvas in self.services.canvases:  # else another process serves it
                self._deliver(canvas, event, data)

    def _deliver(self, canvas: str, event: str, data: dict[str, Any]) -> None:
        self.seq += 1
        ring = self.rings.setdefault(canvas, _Ring(deque()))
        if self.settings.ring_size:
            if len(ring.events) >= self.settings.ring_size:
                ring.evicted = ring.events.popleft()[0]
            ring.events.append((self.seq, event, data))
        else:
            ring.evicted = self.seq
        subs = self.subscribers.get(canvas)
        if subs:
            chunk = _chunk(event, self.last_id, data)
            for sub in list(subs):
                if not sub.offer(chunk):
                    self.drop(sub)

    def drop(self, sub: Subscriber) -> None:
        """Forget a closed stream, counting it when the server dropped it."""
        if sub.closed in ("slow", "write_timeout"):
            self.metrics.dropped.labels(sub.closed).inc()
        self.unsubscribe(sub)

    def _gap(self, reason: str) -> None:
        """Events may have been lost: new epoch, empty rings, and every stream resyncs."""
        self.epoch = secrets.token_hex(4)
        self.rings.clear()
        for subs in self.subscribers.values():
            for sub in list(subs):
                if not sub.offer(_chunk(RESYNC, self.last_id, {"reason": reason})):
                    self.drop(sub)

    def subscribe(
        self, canvas: str, last_event_id: str | None, transport: asyncio.Transport | None
    ) -> tuple[Subscriber, list[bytes]]:
        """Open a stream; returns it and what to send first (replay or ``resync``).

        Synchronous on purpose: the replay snapshot and the registration happen with no
        await between them, so no event falls between the two.
        """
        sub = Subscriber(canvas, self.settings.client_events, self.settings.client_bytes, transport)
        first = [b"retry: %d\nid: %s\n\n" % (self.settings.retry_ms, self.last_id.encode())]
        if last_event_id:
            first.extend(self._replay(canvas, last_event_id))
        self.subscribers.setdefault(canvas, set()).add(sub)
        self.metrics.clients.set(self.client_count())
        return sub, first

    def _replay(self, canvas: str, last_event_id: str) -> list[bytes]:
        epoch, _, raw_seq = last_event_id.strip().partition("-")
        ring = self.rings.get(canvas, _Ring(deque()))
        # A seq of this process fits in 20 digits; anything longer is not one of ours.
        seq = ascii_uint(raw_seq, 20)
        if epoch == self.epoch and seq is not None and seq <= self.seq:
            if seq >= ring.evicted:
                return [
                    _chunk(event, self._event_id(s), data)
                    for s, event, data in ring.events
                    if s > seq
                ]
            reason = "the events after Last-Event-ID are no longer buffered"
        else:
            reason = "Last-Event-ID is from another process or connection epoch"
        return [_chunk(RESYNC, self.last_id, {"reason": reason})]

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self.subscribers.get(sub.canvas)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.subscribers[sub.canvas]
        self.metrics.clients.set(self.client_count())

    def close_all(self, reason: str) -> None:
        """End every stream (at shutdown, so the server need not wait for them)."""
        for subs in list(self.subscribers.values()):
            for sub in list(subs):
                sub.close(reason)

    # -- the LISTEN connection ----------------------------------------------------

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        if channel == notify.CHANNEL:
            self.dispatch(str(payload))
        elif callback := self._channels.get(channel):
            callback(str(payload))

    async def _listen_once(self) -> bool:
        """Hold one ``LISTEN`` connection until it is lost; ``True`` if it listened."""
        lost = asyncio.Event()
        async with self.services.pool.acquire() as conn:
            conn.add_termination_listener(lambda _conn: lost.set())
            for channel in (notify.CHANNEL, *self._channels):
                await conn.add_listener(channel, self._on_notify)
            try:
                self.listener_pid = conn.get_server_pid()
                if self._listened:
                    # Listening again: whatever was published in between is lost.
                    self._gap("the server's event listener reconnected to Postgres")
                    for callback in self._channels.values():
                        callback(None)
                self._listened = True
                self.listening.set()
                self._retries.succeeded()
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self.settings.keepalive)
                        break
                    # A peer that vanished without a reset is only noticed by talking.
                    await _ping(conn, self.settings.keepalive)
            finally:
                self.listening.clear()
                # A lost connection may already be released back to the pool, where
                # even is_closed() raises: whatever fails here is that loss, seen again.
                with contextlib.suppress(Exception):
                    if not conn.is_closed():
                        for channel in (notify.CHANNEL, *self._channels):
                            await conn.remove_listener(channel, self._on_notify)
        return True

    async def _run(self) -> None:
        while True:
            delay = 0.1  # the connection was lost after listening: try again at once
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one line when an outage starts, one when it ends
                delay = self._retries.failed(exc)
            self.metrics.reconnects.inc()
            await asyncio.sleep(delay)

    async def start(self) -> None:
        """Start listening; waits (bounded) for the first ``LISTEN`` to be in place."""
        self._task = asyncio.create_task(self._run(), name="strata-events-listener")
        try:
            await asyncio.wait_for(self.listening.wait(), START_TIMEOUT)
        except TimeoutError:
            log.warning(
                "event listener not ready after %.0fs; retrying in background", START_TIMEOUT
            )

    async def stop(self) -> None:
        """Close every stream and the ``LISTEN`` connection."""
        self.close_all("shutdown")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def _ping(conn: Connection, seconds: float) -> None:
    await conn.fetchval("SELECT 1", timeout=seconds)

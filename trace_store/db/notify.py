"""Cross-process events through Postgres ``NOTIFY``.

Writers publish inside the transaction that makes the change visible, so a listener
never hears of a trace, patch or unmatched request before it can read it, and every
``serve`` process sharing the database hears every event. The payload stays small
(ids and summary fields, never trace bodies): NOTIFY payloads are limited to 8000 bytes.
A payload is a JSON array of ``{canvas, event, data}`` objects, so that a writer batch
packs its events into a few notifications.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

if TYPE_CHECKING:
    from collections.abc import Iterable

    from trace_store.db import Connection

CHANNEL: Final = "strata_events"
MAX_PAYLOAD: Final = 7900
EVENTS: Final = frozenset({"trace", "patch", "unmatched", "canvas"})


async def publish(conn: Connection, canvas: str, event: str, data: dict[str, Any]) -> None:
    """Queue ``event`` for ``canvas``; delivered when the surrounding transaction commits."""
    await publish_many(conn, [(canvas, event, data)])


def _encoded(canvas: str, event: str, data: dict[str, Any]) -> bytes:
    if event not in EVENTS:
        raise ValueError(f"unknown event kind {event!r}")
    encoded = orjson.dumps({"canvas": canvas, "event": event, "data": data})
    if len(encoded) + 2 > MAX_PAYLOAD:
        raise ValueError(f"{event} event payload of {len(encoded)} bytes is too large")
    return encoded


def pack(events: Iterable[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """``(canvas, event, data)`` events as few payloads as fit: JSON arrays of event
    objects, in order, each under the 8000-byte limit."""
    payloads: list[str] = []
    group: list[bytes] = []
    size = 2  # the brackets
    for canvas, event, data in events:
        encoded = _encoded(canvas, event, data)
        if group and size + 1 + len(encoded) > MAX_PAYLOAD:
            payloads.append((b"[" + b",".join(group) + b"]").decode())
            group, size = [], 2
        group.append(encoded)
        size += len(encoded) + 1
    if group:
        payloads.append((b"[" + b",".join(group) + b"]").decode())
    return payloads


async def publish_many(conn: Connection, events: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
    """Queue ``(canvas, event, data)`` events in one round trip, packed (:func:`pack`).

    A writer batch of a few hundred traces is a handful of notifications instead of one
    each: every listening ``serve`` process wakes once per payload, not once per trace.
    Postgres delivers them in this order when the transaction commits.
    """
    payloads = pack(events)
    if payloads:
        await conn.execute(
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS u(p, n) ORDER BY n",
            CHANNEL,
            payloads,
        )

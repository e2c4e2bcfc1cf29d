"""Cross-process events through Postgres ``NOTIFY``.

Writers publish inside the transaction that makes the change visible, so a listener
never hears of a trace, patch or unmatched request before it can read it, and every
``serve`` process sharing the database hears every event. The payload stays small
(ids and summary fields, never trace bodies): NOTIFY payloads are limited to 8000 bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

if TYPE_CHECKING:
    from collections.abc import Iterable

    from trace_store.db import Connection
    from trace_store.index import IndexRow

CHANNEL: Final = "strata_events"
MAX_PAYLOAD: Final = 7900
EVENTS: Final = frozenset({"trace", "patch", "unmatched"})


async def publish(conn: Connection, canvas: str, event: str, data: dict[str, Any]) -> None:
    """Queue ``event`` for ``canvas``; delivered when the surrounding transaction commits."""
    if event not in EVENTS:
        raise ValueError(f"unknown event kind {event!r}")
    payload = orjson.dumps({"canvas": canvas, "event": event, "data": data})
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"{event} event payload of {len(payload)} bytes is too large")
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload.decode())


def _payload(canvas: str, event: str, data: dict[str, Any]) -> str:
    if event not in EVENTS:
        raise ValueError(f"unknown event kind {event!r}")
    payload = orjson.dumps({"canvas": canvas, "event": event, "data": data})
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"{event} event payload of {len(payload)} bytes is too large")
    return payload.decode()


async def publish_many(conn: Connection, events: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
    """Queue ``(canvas, event, data)`` events in one round trip, one NOTIFY each.

    One notification per event keeps every payload far below the 8000-byte limit
    whatever the batch size; a single statement keeps a writer batch one round trip.
    Postgres delivers them in this order when the transaction commits.
    """
    payloads = [_payload(canvas, event, data) for canvas, event, data in events]
    if payloads:
        await conn.execute(
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS u(p, n) ORDER BY n",
            CHANNEL,
            payloads,
        )


def trace_event(row: IndexRow) -> dict[str, Any]:
    """The ``trace`` event of one new index row: the fields of a trace-list entry."""
    return {
        "trace_id": row.trace_id,
        "handler_id": row.handler_id,
        "started_at": row.started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "status": row.status,
        "duration_ms": round(row.duration_ms, 3),
    }

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
    from trace_store.db import Connection

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

"""The durable queue of workers (SPEC §15) and the claim that runs a cron tick once.

Chosen over PgQueuer and procrastinate (measured in issue 17's note): a table on the
Postgres strata already has, one migration, asyncpg like the rest, every attempt a
trace. Messages are taken with ``FOR UPDATE SKIP LOCKED`` (many processes, no
double delivery); a taken message is leased (``locked_until``) and its lease renewed
while it runs, so a process that dies lets its messages come back after the
visibility timeout, and that counts as an attempt. A finished message is deleted; one
out of attempts stays, ``dead``. Wake-ups are a ``NOTIFY`` on :data:`CHANNEL`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import orjson

from trace_store.document.ids import uuid7
from trace_store.errors import InvalidInput, PayloadTooLarge

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trace_store.db import Connection, Pool

#: ``NOTIFY`` channel: the payload is ``<canvas>/<queue>`` of a new message.
CHANNEL: Final = "strata_queue"
#: The largest enqueued value, as tagged JSON.
MAX_EVENT_BYTES: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Message:
    """A message a worker took: its value (tagged JSON) and which attempt this is."""

    id: int
    message_id: str
    canvas: str
    queue: str
    event: Any
    enqueued_at: datetime
    attempt: int


async def enqueue(pool: Pool | Connection, canvas: str, queue: str, event: Any) -> str:
    """Queue ``event`` (tagged JSON) on ``canvas``'s ``queue``; returns its message id."""
    try:
        text = orjson.dumps(event).decode()
    except TypeError as exc:  # a string that is not UTF-8 (a lone surrogate)
        raise InvalidInput(f"the value enqueued on {queue!r} cannot be stored: {exc}") from None
    if len(text) > MAX_EVENT_BYTES:
        raise PayloadTooLarge(
            f"the value enqueued on {queue!r} is {len(text):,} bytes as JSON,"
            f" over {MAX_EVENT_BYTES:,}"
        )
    message_id = uuid7(time.time_ns())
    await pool.execute(
        "WITH m AS (INSERT INTO queue_messages (message_id, canvas, queue, event)"
        " VALUES ($1, $2, $3, $4::json) RETURNING 1)"
        " SELECT pg_notify($5, $2 || '/' || $3) FROM m",
        uuid.UUID(message_id),
        canvas,
        queue,
        text,
        CHANNEL,
    )
    return message_id


#: Take due messages: ready ones whose time has come, and running ones whose lease ran
#: out (their process died) with attempts left. Oldest first, skipping rows other
#: takers hold.
_TAKE = """
WITH due AS (
    SELECT m.id FROM queue_messages m
    JOIN unnest($2::text[], $6::int[]) AS w(queue, max_attempts) ON m.queue = w.queue
    WHERE m.canvas = $1 AND m.state <> 'dead'
      AND ((m.state = 'ready' AND m.run_at <= now())
           OR (m.state = 'running' AND m.locked_until < now() AND m.attempts < w.max_attempts))
    ORDER BY m.run_at, m.id
    LIMIT $3
    FOR UPDATE OF m SKIP LOCKED
)
UPDATE queue_messages m
SET state = 'running', attempts = m.attempts + 1, locked_until = now() + $4::interval,
    locked_by = $5
FROM due WHERE m.id = due.id
RETURNING m.id, m.message_id::text, m.canvas, m.queue, m.event::text, m.enqueued_at, m.attempts
"""


async def take(
    pool: Pool,
    canvas: str,
    queues: dict[str, int],
    limit: int,
    lease: timedelta,
    taker: str,
) -> list[Message]:
    """Up to ``limit`` due messages of ``canvas``'s ``queues`` (name -> the worker's
    ``max_attempts``), leased to ``taker``."""
    if limit <= 0 or not queues:
        return []
    records = await pool.fetch(
        _TAKE, canvas, list(queues), limit, lease, taker, list(queues.values())
    )
    return [
        Message(
            r["id"],
            r["message_id"],
            r["canvas"],
            r["queue"],
            orjson.loads(r["event"]),
            r["enqueued_at"],
            r["attempts"],
        )
        for r in sorted(records, key=lambda r: r["id"])
    ]


async def finish(pool: Pool, messages: Sequence[Message], taker: str) -> None:
    """Their workers succeeded: the messages are done (and gone), in one statement."""
    if messages:
        await pool.execute(
            "DELETE FROM queue_messages WHERE id = ANY($1::bigint[]) AND locked_by = $2",
            [m.id for m in messages],
            taker,
        )


async def fail(
    pool: Pool, message: Message, taker: str, error: str, *, max_attempts: int, backoff: float
) -> bool:
    """The worker raised: retry after ``backoff`` seconds, or keep the message as dead
    once it has had ``max_attempts``; returns whether it is dead now."""
    dead = message.attempt >= max_attempts
    await pool.execute(
        "UPDATE queue_messages SET state = $3, run_at = now() + $4::interval,"
        " locked_until = NULL, locked_by = NULL, last_error = $5"
        " WHERE id = $1 AND locked_by = $2",
        message.id,
        taker,
        "dead" if dead else "ready",
        timedelta(seconds=backoff),
        error[:2000],
    )
    return dead


async def release(pool: Pool, messages: Sequence[Message], taker: str) -> None:
    """Give messages back untried (a shutdown): ready now, the attempt not counted."""
    if messages:
        await pool.execute(
            "UPDATE queue_messages SET state = 'ready', attempts = attempts - 1,"
            " locked_until = NULL, locked_by = NULL"
            " WHERE id = ANY($1::bigint[]) AND locked_by = $2",
            [m.id for m in messages],
            taker,
        )


async def renew(pool: Pool, messages: Sequence[Message], lease: timedelta, taker: str) -> None:
    """Extend the lease of messages still running."""
    if messages:
        await pool.execute(
            "UPDATE queue_messages SET locked_until = now() + $2::interval"
            " WHERE id = ANY($1::bigint[]) AND locked_by = $3",
            [m.id for m in messages],
            lease,
            taker,
        )


async def expire_dead(pool: Pool, attempts_of: dict[tuple[str, str], int]) -> int:
    """Mark dead the messages whose lease ran out on their last attempt (:func:`take`
    never takes them again; this makes them listed as dead). ``attempts_of``: the
    ``max_attempts`` of each loaded (canvas, queue)."""
    if not attempts_of:
        return 0
    result = await pool.execute(
        "UPDATE queue_messages m SET state = 'dead', locked_until = NULL, locked_by = NULL,"
        " last_error = coalesce(last_error, 'the process running it stopped (lease expired)')"
        " FROM unnest($1::text[], $2::text[], $3::int[]) AS w(canvas, queue, max_attempts)"
        " WHERE m.canvas = w.canvas AND m.queue = w.queue AND m.state = 'running'"
        " AND m.locked_until < now() AND m.attempts >= w.max_attempts",
        [c for c, _ in attempts_of],
        [q for _, q in attempts_of],
        list(attempts_of.values()),
    )
    return int(result.rsplit(" ", 1)[-1])


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One queue of a canvas as ``GET .../queues`` shows it."""

    name: str
    ready: int
    running: int
    dead: int
    oldest_ready_at: datetime | None


async def stats(pool: Pool, canvas: str) -> list[QueueStats]:
    """Every queue of ``canvas`` that holds a message, by name."""
    records = await pool.fetch(
        "SELECT queue, count(*) FILTER (WHERE state = 'ready') AS ready,"
        " count(*) FILTER (WHERE state = 'running') AS running,"
        " count(*) FILTER (WHERE state = 'dead') AS dead,"
        " min(enqueued_at) FILTER (WHERE state = 'ready') AS oldest"
        " FROM queue_messages WHERE canvas = $1 GROUP BY queue ORDER BY queue",
        canvas,
    )
    return [
        QueueStats(r["queue"], r["ready"], r["running"], r["dead"], r["oldest"]) for r in records
    ]


@dataclass(frozen=True, slots=True)
class Waiting:
    """A message as the editor lists it (waiting for a worker, or dead)."""

    message_id: str
    state: str
    enqueued_at: datetime
    attempts: int
    event: Any
    last_error: str | None


async def messages(pool: Pool, canvas: str, queue: str, *, state: str, limit: int) -> list[Waiting]:
    """The oldest messages of one queue in ``state`` (``ready`` or ``dead``)."""
    records = await pool.fetch(
        "SELECT message_id::text, state, enqueued_at, attempts, event::text, last_error"
        " FROM queue_messages WHERE canvas = $1 AND queue = $2 AND state = $3"
        " ORDER BY id LIMIT $4",
        canvas,
        queue,
        state,
        limit,
    )
    return [
        Waiting(
            r["message_id"],
            r["state"],
            r["enqueued_at"],
            r["attempts"],
            orjson.loads(r["event"]),
            r["last_error"],
        )
        for r in records
    ]


async def claim_tick(pool: Pool, canvas: str, handler_id: str, tick: datetime, taker: str) -> bool:
    """Claim one cron tick; ``True`` for exactly one claimant across every process."""
    claimed = await pool.fetchval(
        "INSERT INTO cron_runs (canvas, handler_id, tick, claimed_by) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING RETURNING true",
        canvas,
        handler_id,
        tick,
        taker,
    )
    return bool(claimed)

"""Pins (the latest ``keep_latest`` traces of each handler) and the policy they follow
(SPEC §10); :mod:`trace_store.db.outbox` carries them to the store.

Postgres is the truth about what is pinned; the object store follows it through an
outbox:

1. Objects are always written *expirable* (S3 tag, GCS ``customTime`` = creation,
   no local marker). An object whose index row never commits expires on its own.
2. :func:`update_pins` runs inside the writer's batch transaction
   (:func:`trace_store.writer.commit.commit_batch`): per handler the batch touched, the new
   latest N are the latest N of (current pins + the batch's rows). An object (a
   segment may hold several of a handler's traces) is pinned while any of its traces
   is; objects that gain their first pin or lose their last get one outbox entry each.
3. :class:`~trace_store.db.outbox.PinOutbox` applies entries. An entry names an
   object, not a direction: applying it sets the object to what ``pins`` says *at
   that moment*, so a retry, a duplicate or a stale entry can never pin an object the
   database no longer pins.
   An entry leaves the outbox only after the store call succeeded; a crash anywhere
   leaves it to be applied again (idempotent). One worker at a time across processes
   (an advisory lock), so two workers cannot apply stale reads out of order.
4. Where pins are leases (GCS, ``ObjectStore.pins_are_leases``), unpinning writes
   nothing: the lease lapses. :func:`~trace_store.db.outbox.renew_leases` moves
   ``customTime`` of pinned objects forward before it runs out. ``pins.leased_at``
   records the last lease write (the trace's start time for a new object, a lower
   bound of its ``customTime``), so a fresh object needs no pin request at all.

Expiry bounds (``R`` = ``traces.retain_days``, ``U`` = the commit that unpins a trace,
``L`` = the outbox's lag): S3 — eligible from ``max(ceil_midnight(created + R), U + L)``;
GCS — at most ``R`` after its last lease write, which is at most ``U`` plus the length
of one in-flight renewal or outbox pass, so by ``U + R`` (+ that pass); local — from
``max(created + R, U + L)``, then deleted at the next expirer run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from trace_store.db import LONG_QUERY, index

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trace_store.db import Connection, Pool
    from trace_store.db.index import IndexRow

log = logging.getLogger("strata.pins")

#: Pin updates of one handler are serialised: lock key = hash of "canvas/handler".
_HANDLER_LOCK_SEED = 0x5354

_PIN_COLUMNS = index.COLUMNS


@dataclass(frozen=True, slots=True)
class PinChanges:
    """The objects one :func:`update_pins` call pinned and unpinned (keys)."""

    pinned: tuple[str, ...] = ()
    unpinned: tuple[str, ...] = ()


async def update_pins(conn: Connection, rows: Sequence[IndexRow]) -> PinChanges:
    """Move the pins of every handler in ``rows`` to its latest ``keep_latest`` traces
    and queue an outbox entry per change. Call inside the batch's transaction, after
    the index rows are inserted; idempotent when the batch is committed again."""
    if not rows:
        return PinChanges()
    # FOR SHARE: a policy change (store_policy) waits for in-flight batches and vice versa.
    keep = int(await conn.fetchval("SELECT keep_latest FROM retention_policy FOR SHARE") or 10)
    handlers = sorted({(r.canvas, r.handler_id) for r in rows})
    # Volatile target-list functions run after ORDER BY: locks are taken in one global
    # order, so two writers touching the same handlers cannot deadlock.
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(h, $2))"
        " FROM unnest($1::text[]) AS h ORDER BY h",
        [f"{canvas}/{handler}" for canvas, handler in handlers],
        _HANDLER_LOCK_SEED,
    )
    current = await conn.fetch(
        "SELECT p.canvas, p.handler_id, p.trace_id::text AS trace_id, p.object_key FROM pins p"
        " JOIN unnest($1::text[], $2::text[]) AS h(canvas, handler_id)"
        " ON p.canvas = h.canvas AND p.handler_id = h.handler_id",
        [canvas for canvas, _ in handlers],
        [handler for _, handler in handlers],
    )
    pinned: dict[tuple[str, str], dict[str, str]] = {h: {} for h in handlers}
    for record in current:
        pinned[(record["canvas"], record["handler_id"])][record["trace_id"]] = record["object_key"]
    arriving: dict[tuple[str, str], dict[str, IndexRow]] = {h: {} for h in handlers}
    for row in rows:
        arriving[(row.canvas, row.handler_id)][row.trace_id] = row

    to_pin: list[IndexRow] = []
    to_unpin: list[tuple[str, str]] = []  # canvas, trace_id
    keys_before: set[str] = set()
    keys_after: set[str] = set()
    for handler in handlers:
        old, new = pinned[handler], arriving[handler]
        # Canonical UUID strings sort like the UUIDs (and like Postgres's uuid order).
        latest = set(sorted(old.keys() | new.keys(), reverse=True)[:keep])
        to_pin.extend(
            row for trace_id, row in new.items() if trace_id in latest and trace_id not in old
        )
        to_unpin.extend((handler[0], trace_id) for trace_id in old if trace_id not in latest)
        keys_before.update(old.values())
        keys_after.update(old[t] if t in old else new[t].object_key for t in latest)
    if to_unpin:
        await conn.execute(
            "DELETE FROM pins p USING unnest($1::text[], $2::uuid[]) AS d(canvas, trace_id)"
            " WHERE p.canvas = d.canvas AND p.trace_id = d.trace_id",
            [canvas for canvas, _ in to_unpin],
            [trace_id for _, trace_id in to_unpin],
        )
    if to_pin:
        await _insert_pins(conn, to_pin)
    # An object is pinned while any of its traces is (a segment holds several): only
    # objects that gain their first pin or lose their last one change in the store.
    changes = PinChanges(
        tuple(sorted(keys_after - keys_before)), tuple(sorted(keys_before - keys_after))
    )
    await queue(conn, changes)
    return changes


async def _insert_pins(conn: Connection, rows: Sequence[IndexRow]) -> None:
    # leased_at = the trace's start: never later than the object's creation, so never
    # later than the customTime a GCS object was written with (a safe lower bound).
    await conn.execute(
        f"INSERT INTO pins ({_PIN_COLUMNS}, leased_at)"
        f" SELECT {index.ROWS_COLUMNS}, u.started_at FROM {index.ROWS_RECORDSET}"
        " ON CONFLICT DO NOTHING",
        index.rows_json(rows),
    )


async def queue(conn: Connection, changes: PinChanges) -> None:
    """Queue one outbox entry per changed key (in the caller's transaction)."""
    keys = [*changes.pinned, *changes.unpinned]
    if keys:
        await conn.execute(
            "INSERT INTO pin_outbox (object_key, pinned)"
            " SELECT * FROM unnest($1::text[], $2::bool[])",
            keys,
            [True] * len(changes.pinned) + [False] * len(changes.unpinned),
        )


class RetentionDays(Protocol):
    """The numbers of a retention policy strata's storage code needs (the policy
    itself, with its file format and rendering, is ``lifecycle_policies``')."""

    @property
    def traces_retain_days(self) -> int: ...
    @property
    def keep_latest(self) -> int: ...
    @property
    def unmatched_retain_days(self) -> int: ...


async def store_policy(pool: Pool, policy: RetentionDays) -> bool:
    """Make ``policy`` the one in effect for this database; when ``keep_latest``
    changed, rebuild every handler's pins (and queue the changes). Returns whether
    the pins were rebuilt."""
    async with pool.acquire() as conn, conn.transaction():
        old = await conn.fetchval("SELECT keep_latest FROM retention_policy FOR UPDATE")
        await conn.execute(
            "UPDATE retention_policy SET traces_retain_days = $1, keep_latest = $2,"
            " unmatched_retain_days = $3, updated_at = now()",
            policy.traces_retain_days,
            policy.keep_latest,
            policy.unmatched_retain_days,
        )
        if old == policy.keep_latest:
            return False
        await rebuild_pins(conn, policy.keep_latest)
        return True


async def rebuild_pins(conn: Connection, keep_latest: int) -> PinChanges:
    """Recompute every handler's pins from the index and the current pins (a policy
    change); queue an outbox entry per change. Runs in the caller's transaction."""
    await conn.execute("LOCK TABLE pins IN SHARE ROW EXCLUSIVE MODE", timeout=LONG_QUERY)
    await conn.execute(
        "CREATE TEMP TABLE strata_wanted ON COMMIT DROP AS"
        f" SELECT {_PIN_COLUMNS}, leased_at FROM ("
        f"  SELECT *, row_number() OVER (PARTITION BY canvas, handler_id"
        "   ORDER BY trace_id DESC) AS rank FROM ("
        f"   SELECT {_PIN_COLUMNS}, leased_at FROM pins"
        "    UNION ALL"
        f"   SELECT {_PIN_COLUMNS}, started_at FROM traces t WHERE NOT EXISTS"
        "    (SELECT 1 FROM pins p WHERE p.canvas = t.canvas AND p.trace_id = t.trace_id)"
        "  ) AS candidates"
        " ) AS ranked WHERE rank <= $1",
        keep_latest,
        timeout=LONG_QUERY,
    )
    before = await pinned_keys(conn)
    await conn.execute(
        "DELETE FROM pins p WHERE NOT EXISTS (SELECT 1 FROM strata_wanted w"
        " WHERE w.canvas = p.canvas AND w.trace_id = p.trace_id)",
        timeout=LONG_QUERY,
    )
    await conn.execute(
        f"INSERT INTO pins ({_PIN_COLUMNS}, leased_at) SELECT {_PIN_COLUMNS}, leased_at"
        " FROM strata_wanted ON CONFLICT DO NOTHING",
        timeout=LONG_QUERY,
    )
    after = await pinned_keys(conn)
    changes = PinChanges(tuple(sorted(after - before)), tuple(sorted(before - after)))
    await queue(conn, changes)
    return changes


async def pinned_keys(pool: Pool | Connection) -> set[str]:
    """Every object key the database pins."""
    return {r["object_key"] for r in await pool.fetch("SELECT DISTINCT object_key FROM pins")}

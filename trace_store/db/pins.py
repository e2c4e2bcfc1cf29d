"""Pins (the latest ``keep_latest`` traces of each handler) and their outbox (SPEC §10).

Postgres is the truth about what is pinned; the object store follows it through an
outbox:

1. Objects are always written *expirable* (S3 tag, GCS ``customTime`` = creation,
   no local marker). An object whose index row never commits expires on its own.
2. :func:`update_pins` runs inside the writer's batch transaction
   (:func:`trace_store.writer.commit.commit_batch`): per handler the batch touched, the new
   latest N are the latest N of (current pins + the batch's rows). Rows that enter or
   leave the pins get one outbox entry each. Only the batch's *survivors* are pinned,
   so a busy handler costs about one extra request per displaced trace, not per trace.
3. :class:`PinOutbox` applies entries. An entry names an object, not a direction:
   applying it sets the object to what ``pins`` says *at that moment*, so a retry, a
   duplicate or a stale entry can never pin an object the database no longer pins.
   An entry leaves the outbox only after the store call succeeded; a crash anywhere
   leaves it to be applied again (idempotent). One worker at a time across processes
   (an advisory lock), so two workers cannot apply stale reads out of order.
4. Where pins are leases (GCS, ``ObjectStore.pins_are_leases``), unpinning writes
   nothing: the lease lapses. :func:`renew_leases` moves ``customTime`` of pinned
   objects forward before it runs out. ``pins.leased_at`` records the last lease
   write (the trace's start time for a new object, a lower bound of its
   ``customTime``), so a fresh object needs no pin request at all.

Expiry bounds (``R`` = ``traces.retain_days``, ``U`` = the commit that unpins a trace,
``L`` = the outbox's lag): S3 — eligible from ``max(ceil_midnight(created + R), U + L)``;
GCS — at most ``R`` after its last lease write, which is at most ``U`` plus the length
of one in-flight renewal or outbox pass, so by ``U + R`` (+ that pass); local — from
``max(created + R, U + L)``, then deleted at the next expirer run.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from trace_store.background import Retries
from trace_store.db import LONG_QUERY, index
from trace_store.errors import ObjectNotFound, describe

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trace_store.backends.base import ObjectStore
    from trace_store.db import Connection, Pool
    from trace_store.db.index import IndexRow

log = logging.getLogger("strata.pins")

#: Advisory-lock keys (fixed, distinct from db._MIGRATION_LOCK).
OUTBOX_LOCK = 0x5354524F42  # one outbox worker at a time, across processes
RENEW_LOCK = 0x535452524C  # one lease renewal pass at a time
#: Pin updates of one handler are serialised: lock key = hash of "canvas/handler".
_HANDLER_LOCK_SEED = 0x5354

_PIN_COLUMNS = (
    "canvas, handler_id, trace_id, started_at, object_key, size_bytes, sha256, status, "
    "duration_ms, functions, has_error"
)


@dataclass(frozen=True, slots=True)
class PinChanges:
    """What one :func:`update_pins` call changed (object keys)."""

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
    to_unpin: list[tuple[str, str, str]] = []  # canvas, trace_id, object_key
    for handler in handlers:
        old, new = pinned[handler], arriving[handler]
        # Canonical UUID strings sort like the UUIDs (and like Postgres's uuid order).
        latest = set(sorted(old.keys() | new.keys(), reverse=True)[:keep])
        to_pin.extend(
            row for trace_id, row in new.items() if trace_id in latest and trace_id not in old
        )
        to_unpin.extend(
            (handler[0], trace_id, key) for trace_id, key in old.items() if trace_id not in latest
        )
    if to_unpin:
        await conn.execute(
            "DELETE FROM pins p USING unnest($1::text[], $2::uuid[]) AS d(canvas, trace_id)"
            " WHERE p.canvas = d.canvas AND p.trace_id = d.trace_id",
            [canvas for canvas, _, _ in to_unpin],
            [trace_id for _, trace_id, _ in to_unpin],
        )
    if to_pin:
        await _insert_pins(conn, to_pin)
    changes = PinChanges(tuple(row.object_key for row in to_pin), tuple(k for _, _, k in to_unpin))
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
    unpinned = await conn.fetch(
        "DELETE FROM pins p WHERE NOT EXISTS (SELECT 1 FROM strata_wanted w"
        " WHERE w.canvas = p.canvas AND w.trace_id = p.trace_id) RETURNING object_key",
        timeout=LONG_QUERY,
    )
    pinned = await conn.fetch(
        f"INSERT INTO pins ({_PIN_COLUMNS}, leased_at) SELECT {_PIN_COLUMNS}, leased_at"
        " FROM strata_wanted ON CONFLICT DO NOTHING RETURNING object_key",
        timeout=LONG_QUERY,
    )
    changes = PinChanges(
        tuple(r["object_key"] for r in pinned), tuple(r["object_key"] for r in unpinned)
    )
    await queue(conn, changes)
    return changes


async def pinned_keys(pool: Pool | Connection) -> set[str]:
    """Every object key the database pins."""
    return {r["object_key"] for r in await pool.fetch("SELECT object_key FROM pins")}


#: Move pins' leases forward, skipping rows another transaction holds. A writer's
#: batch moves a handler's pins under its advisory lock, deleting rows in its own order;
#: waiting here for such a row while holding others (or the reverse) was a deadlock.
#: A skipped row keeps its older lease: still a lower bound of the store's, renewed
#: again by the next pass at worst.
_MOVE_LEASES = """
WITH free AS (
    SELECT object_key FROM pins WHERE object_key = ANY($1::text[])
    FOR UPDATE SKIP LOCKED
)
UPDATE pins p SET leased_at = v.moment
FROM unnest($1::text[], $2::timestamptz[]) AS v(object_key, moment), free
WHERE p.object_key = v.object_key AND free.object_key = v.object_key AND p.leased_at < v.moment
RETURNING p.object_key
"""


# -- the outbox worker -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxPass:
    """The outcome of one :meth:`PinOutbox.run_once`."""

    entries: int = 0
    requests: int = 0
    failed: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    #: Keys whose pin was withdrawn before the store saw it: acknowledged, no request.
    never_applied: int = 0


class PinOutbox:
    """Applies queued pin changes to the store, with retries and backoff.

    ``lease_fresh_for``: on a lease store, a pinned object whose lease was written
    less than this long ago needs no request (the renewal task will get to it).
    """

    def __init__(
        self,
        pool: Pool,
        store: ObjectStore,
        *,
        batch_size: int = 512,
        concurrency: int = 16,
        retry_delay: timedelta = timedelta(seconds=1),
        max_retry_delay: timedelta = timedelta(minutes=5),
        lease_fresh_for: timedelta = timedelta(hours=1),
    ) -> None:
        self.pool = pool
        self.store = store
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.lease_fresh_for = lease_fresh_for

    async def run_once(self) -> OutboxPass:
        """Apply up to ``batch_size`` due entries. Entries whose store call failed stay
        queued with a later ``next_attempt_at``; nothing is ever dropped."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", OUTBOX_LOCK):
                return OutboxPass()  # another process's worker is on it
            entries = await conn.fetch(
                "SELECT id, object_key, attempts FROM pin_outbox"
                " WHERE next_attempt_at <= clock_timestamp() ORDER BY id LIMIT $1",
                self.batch_size,
            )
            if not entries:
                return OutboxPass()
            keys = sorted({e["object_key"] for e in entries})
            # Read the pin state only now, after claiming: a pin change committed after
            # this read queued an entry of its own, which a later pass applies.
            state = {
                r["object_key"]: r["leased_at"]
                for r in await conn.fetch(
                    "SELECT object_key, leased_at FROM pins WHERE object_key = ANY($1::text[])",
                    keys,
                )
            }
            unseen = await self._never_applied(conn, keys, state)
            calls = [key for key in keys if key not in unseen]
            if calls:
                # Committed before the store hears of them: if this pass then fails to
                # commit, the next one knows these keys may have been pinned.
                await self.pool.execute(
                    "UPDATE pin_outbox SET tried = true"
                    " WHERE object_key = ANY($1::text[]) AND NOT tried",
                    calls,
                )
            errors, requests, leased = await self._apply_all(calls, state)
            done = [e["id"] for e in entries if e["object_key"] not in errors]
            failed = [e for e in entries if e["object_key"] in errors]
            if done:
                await conn.execute("DELETE FROM pin_outbox WHERE id = ANY($1::bigint[])", done)
            for entry in failed:
                delay = min(
                    self.retry_delay * (2 ** min(entry["attempts"], 20)), self.max_retry_delay
                )
                await conn.execute(
                    "UPDATE pin_outbox SET attempts = attempts + 1, last_error = $2,"
                    " next_attempt_at = clock_timestamp() + $3::interval WHERE id = $1",
                    entry["id"],
                    errors[entry["object_key"]][:500],
                    delay,
                )
            if leased:
                await conn.fetch(_MOVE_LEASES, list(leased), [leased[key] for key in leased])
        return OutboxPass(len(entries), requests, len(failed), errors, len(unseen))

    @staticmethod
    async def _never_applied(
        conn: Connection, keys: Sequence[str], state: dict[str, datetime]
    ) -> set[str]:
        """Unpinned keys the store never saw pinned: their oldest queued entry is a pin
        (everything before it was applied, and ended unpinned) and no pass has called
        the store for them since. Unpinning them would be a request for nothing."""
        unpinned = [key for key in keys if key not in state]
        if not unpinned:
            return set()
        rows = await conn.fetch(
            "SELECT object_key FROM pin_outbox WHERE object_key = ANY($1::text[])"
            " GROUP BY object_key"
            " HAVING NOT bool_or(tried) AND (array_agg(pinned ORDER BY id))[1]",
            unpinned,
        )
        return {r["object_key"] for r in rows}

    async def _apply_all(
        self, keys: Sequence[str], state: dict[str, datetime]
    ) -> tuple[dict[str, str], int, dict[str, datetime]]:
        semaphore = asyncio.Semaphore(self.concurrency)
        errors: dict[str, str] = {}
        leased: dict[str, datetime] = {}
        requests = 0

        async def apply(key: str) -> None:
            nonlocal requests
            pinned = key in state
            now = datetime.now(UTC)
            if self.store.pins_are_leases and (
                not pinned or state[key] > now - self.lease_fresh_for
            ):
                return  # a lapsing lease needs no write; a fresh one needs no renewal
            async with semaphore:
                try:
                    requests += 1
                    if pinned:
                        await self.store.pin(key)
                        leased[key] = now
                    else:
                        await self.store.unpin(key)
                except ObjectNotFound:
                    log.info("outbox: object %s no longer exists; nothing to apply", key)
                except Exception as exc:
                    errors[key] = describe(exc)

        await asyncio.gather(*(apply(key) for key in keys))
        return errors, requests, leased

    async def drain(self, *, max_passes: int = 1000) -> int:
        """Run passes until no entry is due (entries waiting for a retry are left);
        returns how many entries were applied or retried."""
        total = 0
        for _ in range(max_passes):
            result = await self.run_once()
            total += result.entries
            if result.entries == 0:
                break
        return total

    async def pending(self) -> int:
        """Entries still queued, due or waiting for a retry."""
        return int(await self.pool.fetchval("SELECT count(*) FROM pin_outbox"))

    async def run(self, *, poll_interval: float = 1.0) -> None:
        """Apply entries until cancelled; a failing pass is retried with backoff (an
        outage logs one line when it starts and one when it ends)."""
        retries = Retries("pin outbox", log, base=poll_interval)
        while True:
            try:
                result = await self.run_once()
            except Exception as exc:
                await asyncio.sleep(retries.failed(exc))
                continue
            retries.succeeded()
            if result.entries < self.batch_size or result.failed:
                await asyncio.sleep(poll_interval)


async def renew_leases(
    pool: Pool,
    store: ObjectStore,
    *,
    older_than: timedelta,
    batch_size: int = 500,
    concurrency: int = 16,
) -> int:
    """Move the lease (GCS ``customTime``) of every pinned object whose lease is older
    than ``older_than`` forward to now; returns how many objects were renewed.

    A renewal that read a pin just before it was removed may still write its lease,
    so an unpinned object's last lease is at most one pass after its unpin."""
    renewed = 0
    semaphore = asyncio.Semaphore(concurrency)
    while True:
        async with pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RENEW_LOCK):
                return renewed
            due = await conn.fetch(
                "SELECT object_key FROM pins WHERE leased_at < clock_timestamp() - $1::interval"
                " ORDER BY leased_at LIMIT $2",
                older_than,
                batch_size,
            )
            if not due:
                return renewed
            now = datetime.now(UTC)

            async def renew(key: str) -> None:
                async with semaphore:
                    try:
                        await store.pin(key)
                    except ObjectNotFound:
                        log.warning("pinned object %s is missing; not renewing it", key)

            keys = [r["object_key"] for r in due]
            # One failure aborts the batch: its leases stay old, so the next pass retries.
            await asyncio.gather(*(renew(key) for key in keys))
            moved = await conn.fetch(_MOVE_LEASES, keys, [now] * len(keys))
            if not moved:
                return renewed  # every due row is being changed right now: next pass
            renewed += len(moved)

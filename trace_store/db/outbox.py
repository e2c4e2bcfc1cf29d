"""The pin outbox worker and lease renewal: how the store follows the database's pins.

:mod:`trace_store.db.pins` decides what is pinned and queues one ``pin_outbox`` entry
per change, in the writer's transaction; :class:`PinOutbox` applies the entries to the
store (steps 3 and 4 of that module's protocol), and :func:`renew_leases` keeps the
leases of pinned objects alive where pins are leases (GCS ``customTime``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from trace_store.background import Retries
from trace_store.errors import ObjectNotFound, describe

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from asyncpg import Record

    from trace_store.backends.base import ObjectStore
    from trace_store.db import Connection, Pool

log = logging.getLogger("strata.pins")


@contextlib.asynccontextmanager
async def _exclusive(pool: Pool, key: int) -> AsyncIterator[Connection | None]:
    """A connection holding the session advisory lock ``key``, or ``None`` when another
    process holds it. A session lock, not a transaction's: the store calls made under
    it must not keep a transaction open (a hung store would hold its snapshot and
    locks for the store's timeouts, for every call of the pass)."""
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            yield None
            return
        try:
            yield conn
        finally:
            # Also released if the connection breaks; the pool's reset unlocks all.
            await conn.execute("SELECT pg_advisory_unlock($1)", key)


#: Advisory-lock keys (fixed, distinct from db._MIGRATION_LOCK).
OUTBOX_LOCK = 0x5354524F42  # one outbox worker at a time, across processes
RENEW_LOCK = 0x535452524C  # one lease renewal pass at a time

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
    ``settle``: an entry is applied once it is that old, with every later entry of its
    object. A busy handler's newest segment is superseded by the next batch's within a
    second; seen together, its pin and unpin cost no request. An object waits that
    long in its expirable state, which matters only if ``settle`` came near the
    retention window (``serve`` bounds it to minutes).
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
        settle: timedelta = timedelta(0),
    ) -> None:
        self.pool = pool
        self.store = store
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.lease_fresh_for = lease_fresh_for
        self.settle = settle

    async def run_once(self) -> OutboxPass:
        """Apply up to ``batch_size`` due entries. Entries whose store call failed stay
        queued with a later ``next_attempt_at``; nothing is ever dropped."""
        async with _exclusive(self.pool, OUTBOX_LOCK) as conn:
            if conn is None:
                return OutboxPass()  # another process's worker is on it
            return await self._pass(conn)

    async def _pass(self, conn: Connection) -> OutboxPass:
        # Short statements only: no transaction stays open while the store is called.
        # The keys of the oldest due entries that have settled, then every entry of
        # those keys: a pin withdrawn within ``settle`` (a busy handler's segment,
        # superseded by the next batch's) is seen with its withdrawal and costs nothing.
        keys = sorted(
            r["object_key"]
            for r in await conn.fetch(
                "SELECT DISTINCT object_key FROM (SELECT object_key FROM pin_outbox"
                " WHERE next_attempt_at <= clock_timestamp()"
                " AND queued_at <= clock_timestamp() - $2::interval ORDER BY id LIMIT $1) AS due",
                self.batch_size,
                self.settle,
            )
        )
        if not keys:
            return OutboxPass()
        entries = await conn.fetch(
            "SELECT id, object_key, attempts, pinned, tried FROM pin_outbox"
            " WHERE object_key = ANY($1::text[]) ORDER BY id",
            keys,
        )
        # Read the pin state only now, after the entries: a pin change committed after
        # this read queued an entry of its own, which a later pass applies. A segment
        # is pinned while any of its traces is; its lease is its oldest trace's.
        state = {
            r["object_key"]: r["leased_at"]
            for r in await conn.fetch(
                "SELECT object_key, min(leased_at) AS leased_at FROM pins"
                " WHERE object_key = ANY($1::text[]) GROUP BY object_key",
                keys,
            )
        }
        unseen = self._never_applied(entries, state)
        calls = [key for key in keys if key not in unseen]
        if calls:
            # Committed before the store hears of them: if this pass then fails to
            # commit, the next one knows these keys may have been pinned.
            await conn.execute(
                "UPDATE pin_outbox SET tried = true"
                " WHERE object_key = ANY($1::text[]) AND NOT tried",
                calls,
            )
        errors, requests, leased = await self._apply_all(calls, state)
        # A failed key keeps one entry (its oldest) for the retry; the rest are done.
        oldest = {e["object_key"]: e for e in reversed(entries)}
        failed = [oldest[key] for key in errors]
        retried = {e["id"] for e in failed}
        done = [e["id"] for e in entries if e["id"] not in retried]
        async with conn.transaction():
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
    def _never_applied(entries: Sequence[Record], state: dict[str, datetime]) -> set[str]:
        """Unpinned keys the store never saw pinned: their oldest queued entry is a pin
        (everything before it was applied, and ended unpinned) and no pass has called
        the store for them since. Unpinning them would be a request for nothing."""
        first: dict[str, Record] = {}
        tried: set[str] = set()
        for entry in entries:  # in id order
            first.setdefault(entry["object_key"], entry)
            if entry["tried"]:
                tried.add(entry["object_key"])
        return {
            key
            for key, entry in first.items()
            if key not in state and key not in tried and entry["pinned"] is True
        }

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
    than ``older_than`` forward to now; returns how many objects were renewed (a
    segment is one object, however many of its traces are pinned).

    A renewal that read a pin just before it was removed may still write its lease,
    so an unpinned object's last lease is at most one pass after its unpin."""
    renewed = 0
    semaphore = asyncio.Semaphore(concurrency)
    async with _exclusive(pool, RENEW_LOCK) as conn:
        while conn is not None:
            # One renewal per object: a segment's pinned traces share it.
            due = await conn.fetch(
                "SELECT object_key FROM pins WHERE leased_at < clock_timestamp() - $1::interval"
                " GROUP BY object_key ORDER BY min(leased_at) LIMIT $2",
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
            renewed += len({r["object_key"] for r in moved})
    return renewed  # another process's renewal is on it

"""Retention work that runs next to the writer (SPEC §7, §10).

* **Index retention without DELETE:** :func:`maintain_index` creates the coming days'
  partitions of ``traces`` and drops every daily partition whose rows are all older
  than the window: O(1) per day, whatever the number of rows. Pinned traces stay
  listable from the ``pins`` table (see :mod:`trace_store.db.index`).
* **Local expiry:** :func:`expire_local` gives ``file:`` stores the semantics the
  bucket rules give S3/GCS. It is the only code that deletes trace objects.
* :func:`start_tasks`: the periodic tasks ``serve`` runs (outbox worker, lease
  renewal on lease stores, index maintenance, the local expirer).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from trace_store import db
from trace_store.background import Retries
from trace_store.db import pins
from trace_store.db.outbox import PinOutbox, renew_leases
from trace_store.keys import TRACES, UNMATCHED

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection

    from trace_store.backends.base import ObjectStore
    from trace_store.db import Connection, Pool
    from trace_store.db.pins import RetentionDays

log = logging.getLogger("strata.retention")

_PARTITION = re.compile(r"traces_p(\d{8})")


@dataclass(frozen=True, slots=True)
class Timings:
    """How often the periodic tasks run."""

    outbox_poll: float = 1.0
    #: How old a pin change is before the outbox applies it (``PinOutbox.settle``).
    pin_settle: timedelta = timedelta(seconds=5)
    index_every: timedelta = timedelta(hours=1)
    expire_every: timedelta = timedelta(hours=1)
    renew_check_every: timedelta = timedelta(hours=1)


def renew_interval(policy: RetentionDays) -> timedelta:
    """Leases older than this are renewed: a quarter of the window, at most a day, so a
    pinned object's lease is renewed several times before it could run out."""
    return min(timedelta(days=policy.traces_retain_days) / 4, timedelta(days=1))


# -- the index ---------------------------------------------------------------------------


async def drop_old_partitions(conn: Connection, retain_days: int, now: datetime) -> list[str]:
    """Drop each daily ``traces`` partition whose whole day is older than the window;
    returns the dropped names. The default partition is emptied (TRUNCATE) once every
    row in it is older than the window."""
    cutoff = now - timedelta(days=retain_days)
    names = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'traces'::regclass ORDER BY c.relname"
    )
    dropped: list[str] = []
    for record in names:
        name = str(record["relname"])
        match = _PARTITION.fullmatch(name)
        if match is None:
            continue
        day = date(int(match[1][:4]), int(match[1][4:6]), int(match[1][6:]))
        day_end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        if day_end <= cutoff:
            async with conn.transaction():
                # A short lock wait: writers are never held up long; the next run retries.
                await conn.execute("SET LOCAL lock_timeout = '5s'")
                # The name matched our own pattern: safe to interpolate.
                await conn.execute(f"DROP TABLE IF EXISTS {name}")
            dropped.append(name)
    stale = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM traces_default)"
        " AND NOT EXISTS (SELECT 1 FROM traces_default WHERE started_at >= $1)",
        cutoff,
    )
    if stale:
        async with conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '5s'")
            await conn.execute("TRUNCATE traces_default")
        dropped.append("traces_default (truncated)")
    return dropped


async def maintain_index(
    pool: Pool,
    policy: RetentionDays,
    now: datetime | None = None,
    *,
    patch_batch: int | None = None,
) -> list[str]:
    """Create the coming days' partitions, drop those past the window, and retire the
    patches of the traces that left with them (``patch_batch`` at a time, default
    :data:`PATCH_BATCH`)."""
    now = now or datetime.now(UTC)
    async with pool.acquire() as conn:
        await db.ensure_partitions(conn)
        done = await drop_old_partitions(conn, policy.traces_retain_days, now)
        cutoff = now - timedelta(days=policy.traces_retain_days)
        retired = await retire_patches(conn, cutoff, batch=patch_batch or PATCH_BATCH)
    if retired:
        done.append(f"patches ({retired} retired)")
    return done


#: Patches deleted per statement: each batch is a short transaction.
PATCH_BATCH = 1000

_RETIRE_PATCHES = """
WITH doomed AS (
    SELECT p.ctid FROM patches p
    WHERE p.trace_started_at < $1
      AND NOT EXISTS (SELECT 1 FROM pins x WHERE x.canvas = p.canvas AND x.trace_id = p.trace_id)
      AND NOT EXISTS (SELECT 1 FROM traces t WHERE t.canvas = p.canvas
                      AND t.trace_id = p.trace_id AND t.started_at = p.trace_started_at)
    LIMIT $2
), gone AS (
    DELETE FROM patches p USING doomed d WHERE p.ctid = d.ctid RETURNING p.canvas, p.trace_id
), counters AS (
    DELETE FROM patch_seqs s USING (SELECT DISTINCT canvas, trace_id FROM gone) g
    WHERE s.canvas = g.canvas AND s.trace_id = g.trace_id
)
SELECT count(*) FROM gone
"""


async def retire_patches(conn: Connection, cutoff: datetime, *, batch: int = PATCH_BATCH) -> int:
    """Delete the patches (and seq counters) of traces that can no longer be read: older
    than ``cutoff``, not pinned, and gone from the index (their partition was dropped).
    Returns how many patches went.

    Unlike index rows, patches are not retired by dropping partitions: a pinned trace
    keeps its patches past the window, so they cannot share a day's fate. They are
    written by developers (reruns, function runs), orders of magnitude fewer than
    traces, so a bounded, indexed DELETE in short batches is cheap and locks nothing
    for long."""
    total = 0
    while True:
        async with conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '5s'")
            count = int(await conn.fetchval(_RETIRE_PATCHES, cutoff, batch))
        total += count
        if count < batch:
            return total


# -- the local expirer -------------------------------------------------------------------


async def expire_local(
    store: ObjectStore,
    policy: RetentionDays,
    *,
    now: datetime | None = None,
    pinned: Collection[str] = (),
    dry_run: bool = False,
) -> list[str]:
    """Delete the local store's objects that the bucket rules would expire by ``now``;
    returns their keys.

    Same semantics as the cloud rules: a trace object goes once it is older than
    ``traces.retain_days`` and not pinned (its pin marker, or ``pinned`` — the
    database's pins, so an outbox still catching up cannot cost a pinned trace); an
    unmatched object goes once older than ``unmatched.retain_days``. Age counts from
    the object's creation, in exact days (no rounding to midnight). ``dry_run`` only
    lists them (``strata lifecycle simulate``)."""
    now = now or datetime.now(UTC)
    deleted: list[str] = []
    for prefix, days, may_pin in (
        (f"{TRACES}/", policy.traces_retain_days, True),
        (f"{UNMATCHED}/", policy.unmatched_retain_days, False),
    ):
        for info in await store.list_objects(prefix):
            if info.created is None or info.created + timedelta(days=days) > now:
                continue
            if may_pin and (info.metadata.get("pinned") == "true" or info.key in pinned):
                continue
            if not dry_run:
                await asyncio.to_thread(store.delete_expired, info.key)
            deleted.append(info.key)
    return deleted


# -- the periodic tasks of serve ---------------------------------------------------------


async def _every(period: float, name: str, work: Callable[[], Awaitable[object]]) -> None:
    # A failed pass is tried again sooner than the next period, backing off up to it.
    retries = Retries(name, log, base=min(1.0, period), cap=period)
    while True:
        try:
            await work()
        except Exception as exc:
            await asyncio.sleep(retries.failed(exc))
            continue
        retries.succeeded()
        await asyncio.sleep(period)


async def start_tasks(
    store: ObjectStore, pool: Pool, policy: RetentionDays, timings: Timings | None = None
) -> list[asyncio.Task[None]]:
    """Store ``policy`` as the one in effect, then start the retention tasks; the caller
    cancels them on shutdown."""
    timings = timings or Timings()
    await pins.store_policy(pool, policy)
    outbox = PinOutbox(
        pool, store, lease_fresh_for=renew_interval(policy), settle=timings.pin_settle
    )
    loop = asyncio.get_running_loop()
    tasks = [
        loop.create_task(outbox.run(poll_interval=timings.outbox_poll), name="pin-outbox"),
        loop.create_task(
            _every(
                timings.index_every.total_seconds(),
                "index retention",
                lambda: maintain_index(pool, policy),
            ),
            name="index-retention",
        ),
    ]
    if store.pins_are_leases:
        older_than = renew_interval(policy)
        tasks.append(
            loop.create_task(
                _every(
                    timings.renew_check_every.total_seconds(),
                    "lease renewal",
                    lambda: renew_leases(pool, store, older_than=older_than),
                ),
                name="lease-renewal",
            )
        )
    if store.expires_by_strata:
        local = store

        async def expire() -> None:
            removed = await expire_local(local, policy, pinned=await pins.pinned_keys(pool))
            if removed:
                log.info("local expirer removed %d objects", len(removed))

        tasks.append(
            loop.create_task(
                _every(timings.expire_every.total_seconds(), "local expirer", expire),
                name="local-expirer",
            )
        )
    return tasks

"""Rebuild the index from the bucket: the objects are the record (``strata index rebuild``).

When Postgres is lost (or an object was uploaded and never indexed), every index row can
be derived again from its object: the key names canvas and handler (and the trace, or a
segment's newest trace); the document holds the trace id, start time, status, duration,
user functions and error; offset, size and sha256 are its frame's. :func:`rebuild` lists
the store's ``traces/`` and ``unmatched/`` prefixes, skips what the index already has,
downloads the rest with bounded concurrency and commits them in batches through the
writer's own commit (so pins move to each handler's latest N and their outbox entries
are queued, as for fresh traces).

Idempotent: a second run finds every row present and downloads nothing. Unmatched
objects rebuild the summary only of paths the database has no row for (counting a
path's objects again would double its count). ``since`` skips traces older than a
moment by the time in their UUIDv7 id, without downloading them.

Nothing from an object reaches a key or a query unchecked: the key must be one strata
writes (:mod:`trace_store.keys`), and each document must name the same canvas and handler
as its key (and the same trace, or for a segment its newest).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trace_store import keys
from trace_store.db.index import indexed_keys, trace_time_window
from trace_store.db.unmatched import MAX_METHOD_BYTES, MAX_PATH_BYTES, StoredRequest, safe_text
from trace_store.document import codec
from trace_store.errors import InvalidInput
from trace_store.timestamps import unix_ns
from trace_store.writer.commit import Batch, commit_batch
from trace_store.writer.segments import rows_of, started_at

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from trace_store.backends.base import ObjectStore
    from trace_store.db import Pool

log = logging.getLogger("strata.rebuild")

BATCH = 256
ROWS_PER_COMMIT = 2_000
CONCURRENCY = 16


@dataclass
class Progress:
    """What a rebuild has done so far (also its final report)."""

    listed: int = 0
    present: int = 0
    skipped_old: int = 0
    indexed: int = 0
    unmatched: int = 0
    invalid: list[str] = field(default_factory=list)
    done: int = 0
    total: int = 0


def unmatched_from_object(key: str, data: bytes) -> StoredRequest:
    """The few fields of a stored unmatched request its summary row needs."""
    parsed = keys.parse_key(key)
    canvas, trace_id = parsed.canvas, parsed.trace_id
    doc = codec.decode(data)
    if (
        parsed.kind != keys.UNMATCHED
        or doc.get("canvas") != canvas
        or doc.get("trace_id") != trace_id
    ):
        raise InvalidInput(f"{key}: the document does not match its key")
    request = doc["input"]
    return StoredRequest(
        canvas=canvas,
        method=str(request["method"]),
        path=str(request["path"]),
        started_ns=unix_ns(started_at(doc)),
        trace_id=trace_id,
        object_key=key,
    )


async def rebuild(
    store: ObjectStore,
    pool: Pool,
    *,
    since: datetime | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Progress:
    """Index every object of the store the index lacks (see the module docstring)."""
    progress = Progress()
    wanted: list[str] = []
    unmatched_keys: list[str] = []
    for prefix, into in ((keys.TRACES + "/", wanted), (keys.UNMATCHED + "/", unmatched_keys)):
        for info in await store.list_objects(prefix):
            progress.listed += 1
            try:
                trace_id = keys.parse_key(info.key).trace_id
            except InvalidInput as exc:
                progress.invalid.append(str(exc))
                continue
            window = trace_time_window(trace_id)  # None: a time no trace can have
            if since is not None and (window is None or window[1] < since):
                progress.skipped_old += 1
                continue
            into.append(info.key)
    missing: list[str] = []
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start : start + 1000]
        have = await indexed_keys(pool, chunk)
        found = [key for key in chunk if key not in have]
        progress.present += len(chunk) - len(found)
        missing += found
    progress.total = len(missing) + len(unmatched_keys)
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def fetch(key: str) -> tuple[str, bytes | BaseException]:
        async with semaphore:
            try:
                return key, await store.get(key)
            except Exception as exc:  # reported per object; the rest goes on
                return key, exc

    for start in range(0, len(missing), BATCH):
        rows = []
        for key, data in await asyncio.gather(*(fetch(k) for k in missing[start : start + BATCH])):
            try:
                if isinstance(data, BaseException):
                    raise data
                rows.extend(rows_of(key, data))
            except Exception as exc:
                progress.invalid.append(f"{key}: {exc}")
        for first in range(0, len(rows), ROWS_PER_COMMIT):  # segments hold many rows
            await commit_batch(pool, Batch(rows=rows[first : first + ROWS_PER_COMMIT]))
        progress.indexed += len(rows)
        progress.done += min(BATCH, len(missing) - start)
        if on_progress is not None:
            on_progress(progress)
    await _rebuild_unmatched(store, pool, unmatched_keys, progress, fetch, on_progress)
    return progress


async def _rebuild_unmatched(
    store: ObjectStore,
    pool: Pool,
    candidates: list[str],
    progress: Progress,
    fetch: Callable[[str], Any],
    on_progress: Callable[[Progress], None] | None,
) -> None:
    known = {
        (r["canvas"], r["method"], r["path"])
        for r in await pool.fetch("SELECT canvas, method, path FROM unmatched")
    }
    items: list[StoredRequest] = []
    for start in range(0, len(candidates), BATCH):
        for key, data in await asyncio.gather(
            *(fetch(k) for k in candidates[start : start + BATCH])
        ):
            try:
                if isinstance(data, BaseException):
                    raise data
                request = unmatched_from_object(key, data)
            except Exception as exc:
                progress.invalid.append(f"{key}: {exc}")
                continue
            method = safe_text(request.method, MAX_METHOD_BYTES)[0]
            if (request.canvas, method, safe_text(request.path, MAX_PATH_BYTES)[0]) not in known:
                items.append(request)
        progress.done += min(BATCH, len(candidates) - start)
        if on_progress is not None:
            on_progress(progress)
    items.sort(key=lambda item: item.started_ns)
    for start in range(0, len(items), BATCH):
        await commit_batch(pool, Batch(unmatched=items[start : start + BATCH]))
    progress.unmatched = len(items)

"""Adoption: unmatched requests become the first traces of the handler that now matches.

``serve`` calls :func:`adopt_unmatched` once at start-up, after registering the loaded
handlers. For every summary row that a loaded handler's route matches, each remembered
stored request (``unmatched/<canvas>/<trace_id>.json.zst``) is copied server-side,
create-only, to ``traces/<canvas>/<handler_id>/<trace_id>.json.zst`` (same trace id), and
gets an index row with ``status`` null and ``adopted`` true, committed through
:func:`trace_store.writer.commit.commit_batch` like any writer batch (so pins and ``trace``
events follow). Then the samples leave their summary rows.

The adopted document is the unmatched document itself, byte for byte: ``handler`` is
null, ``result`` is null and ``calls`` is empty (input only). The index row is what ties
it to the handler, and its ``adopted`` flag is what says so.

Idempotent and crash-safe: a restart finds no samples left to adopt. A crash after the
copy and before the index commit is retried on the next start: the copy then finds
the destination holding the same bytes, which counts as success (the pattern of
:meth:`ObjectStore.put_or_verify`), and the index insert ignores rows already present.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from trace_store import keys
from trace_store.db import unmatched
from trace_store.db.index import IndexRow
from trace_store.document import codec
from trace_store.errors import AlreadyExists, ObjectNotFound
from trace_store.writer.commit import Batch, commit_batch

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runtime.canvas import Canvas, Handler
    from trace_store.backends.base import ObjectStore
    from trace_store.db import Pool

log = logging.getLogger("strata.adoption")

CONCURRENCY: Final = 16


@dataclass(slots=True)
class AdoptionReport:
    """What one adoption pass did, summed over canvases."""

    #: Index rows committed (a handler trace each).
    adopted: int = 0
    #: Samples dropped without a trace: object expired, path no longer matching, or a
    #: different object already under the destination key.
    skipped: int = 0
    #: Samples left for the next start after an error (store or database trouble).
    failed: int = 0
    by_handler: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Outcome:
    row: IndexRow | None
    consumed: bool  # False: keep the sample, try again at the next start


async def adopt_unmatched(
    pool: Pool, store: ObjectStore, canvases: Mapping[str, Canvas]
) -> AdoptionReport:
    """Adopt every stored unmatched request that a loaded handler now matches.

    Never raises for a store or database failure: start-up goes on and what failed is
    tried again at the next start.
    """
    report = AdoptionReport()
    for canvas in canvases.values():
        try:
            await _adopt_canvas(pool, store, canvas, report)
        except Exception:
            log.exception("adoption of unmatched requests for canvas %r failed", canvas.name)
            report.failed += 1
    if report.adopted or report.skipped or report.failed:
        log.info(
            "adoption: %d unmatched requests adopted %s, %d skipped, %d failed",
            report.adopted,
            report.by_handler,
            report.skipped,
            report.failed,
        )
    return report


async def _adopt_canvas(
    pool: Pool, store: ObjectStore, canvas: Canvas, report: AdoptionReport
) -> None:
    work: list[tuple[unmatched.Entry, Handler, str]] = []
    for entry in await unmatched.adoptable(pool, canvas.name):
        match = canvas.match(entry.method, entry.path)
        if match is not None:
            work.extend((entry, match[0], trace_id) for trace_id in entry.samples)
    if not work:
        return
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(handler: Handler, trace_id: str) -> _Outcome:
        async with semaphore:
            try:
                return await _adopt_one(store, canvas, handler, trace_id)
            except Exception as exc:
                log.warning("adopting unmatched request %s failed: %s", trace_id, exc)
                return _Outcome(None, consumed=False)

    outcomes = await asyncio.gather(*(one(handler, tid) for _, handler, tid in work))
    rows = [o.row for o in outcomes if o.row is not None]
    # Index rows first: a crash before the samples are marked re-adopts the same ids at
    # the next start, which finds the objects and rows already there.
    if rows:
        await commit_batch(pool, Batch(rows=rows))
    consumed: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for (entry, handler, trace_id), outcome in zip(work, outcomes, strict=True):
        if outcome.consumed:
            consumed.setdefault((entry.method, entry.path), (handler.id, []))[1].append(trace_id)
    async with pool.acquire() as conn, conn.transaction():
        await unmatched.mark_adopted(
            conn, canvas.name, [(m, p, h, ids) for (m, p), (h, ids) in consumed.items()]
        )
    report.adopted += len(rows)
    report.skipped += sum(1 for o in outcomes if o.consumed and o.row is None)
    report.failed += sum(1 for o in outcomes if not o.consumed)
    for row in rows:
        report.by_handler[row.handler_id] = report.by_handler.get(row.handler_id, 0) + 1


async def _adopt_one(
    store: ObjectStore, canvas: Canvas, handler: Handler, trace_id: str
) -> _Outcome:
    src = keys.unmatched_key(canvas.name, trace_id)
    dst = keys.trace_key(canvas.name, handler.id, trace_id)
    try:
        data = await store.get(src)
    except ObjectNotFound:
        # Expired by the unmatched lifecycle rule, possibly after an earlier start
        # copied it and crashed before the index commit: the copy is then what counts.
        try:
            data = await store.get(dst)
        except ObjectNotFound:
            return _Outcome(None, consumed=True)
        return _Outcome(_row(canvas, handler, dst, data), consumed=True)
    doc = codec.decode(data)
    # The summary keeps a cleaned, bounded path; the document has the real one.
    request = doc["input"]
    match = canvas.match(request["method"], request["path"])
    if match is None or match[0] is not handler:
        return _Outcome(None, consumed=True)
    try:
        await store.copy(src, dst)
    except AlreadyExists:
        stored = await store.get(dst)
        if hashlib.sha256(stored).digest() != hashlib.sha256(data).digest():
            log.error("not adopting %s: %s holds different bytes", src, dst)
            return _Outcome(None, consumed=True)
    return _Outcome(_row(canvas, handler, dst, data, doc), consumed=True)


def _row(
    canvas: Canvas, handler: Handler, key: str, data: bytes, doc: dict[str, Any] | None = None
) -> IndexRow:
    if doc is None:
        doc = codec.decode(data)
    return IndexRow(
        canvas=canvas.name,
        handler_id=handler.id,
        trace_id=keys.check_trace_id(doc["trace_id"]),
        # The request's own time (not the adoption's): the manifest finds a trace by
        # the time its UUIDv7 encodes.
        started_at=datetime.strptime(doc["started_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=UTC
        ),
        object_key=key,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).digest(),
        status=None,
        duration_ms=float(doc["duration_ms"]),
        functions=(),
        has_error=False,
        adopted=True,
    )

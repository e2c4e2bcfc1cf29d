"""The unmatched (404) summary: one bounded row per (canvas, method, path).

The request path hands every unmatched request to the writer, which stores its input
under ``unmatched/<canvas>/<trace_id>.json.zst`` and then calls :func:`record` inside
the batch's transaction. :func:`record` folds the whole batch into one multi-row upsert
(aggregated per (canvas, method, path) here first), trims each touched canvas back to
its most recent :data:`PATHS_PER_CANVAS` paths, and publishes one ``unmatched`` event
per canvas. So a scanner sending 100 000 random paths costs a few statements per batch
and never more than :data:`PATHS_PER_CANVAS` rows per canvas.

What a row keeps: the count, first and last time seen, the latest stored request, and
the ids of the latest :data:`SAMPLES_PER_PATH` stored requests not yet adopted (what
:mod:`gateway.adoption` turns into a handler's first traces). Rows pushed out of
the bound are forgotten; their objects stay until the ``unmatched/`` lifecycle rule
expires them.

Paths are client input. They never reach a key (keys are built from the canvas name
and the trace id); here they only fill a text column, so they are made safe for
Postgres text (no NUL, valid UTF-8) and cut to :data:`MAX_PATH_BYTES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from trace_store.db import notify
from trace_store.timestamps import rfc3339, utc_datetime

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    import asyncpg

    from trace_store.db import Connection, Pool

#: Summary rows kept per canvas, most recently seen first.
PATHS_PER_CANVAS: Final = 1000
#: Stored requests remembered per row for adoption (the latest ones).
SAMPLES_PER_PATH: Final = 5
#: Longest path kept in the summary, in UTF-8 bytes (btree keys must stay < 2700 bytes).
MAX_PATH_BYTES: Final = 1024
MAX_METHOD_BYTES: Final = 32
#: Entries listed in one ``unmatched`` event (the payload must stay under 8000 bytes).
EVENT_ENTRIES: Final = 10
EVENT_PATH_CHARS: Final = 200


def safe_text(value: str, max_bytes: int) -> tuple[str, bool]:
    """``value`` as Postgres text accepts it, at most ``max_bytes``; and whether it was cut.

    NUL becomes U+FFFD (Postgres text cannot hold it) and anything that is not valid
    UTF-8 (lone surrogates) becomes ``?``. The exact path stays in the stored object.
    """
    cleaned = value.replace("\x00", "\ufffd")
    data = cleaned.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return data.decode("utf-8"), False
    return data[:max_bytes].decode("utf-8", "ignore"), True


@dataclass(frozen=True, slots=True)
class StoredRequest:
    """One stored unmatched request, as its summary row reads it (the counterpart of a
    handler trace's :class:`~trace_store.db.index.IndexRow`)."""

    canvas: str
    method: str
    path: str
    started_ns: int
    trace_id: str
    object_key: str


@dataclass(slots=True)
class Sighting:
    """What one batch adds to one summary row."""

    canvas: str
    method: str
    path: str
    path_truncated: bool
    count: int
    first_ns: int
    last_ns: int
    trace_id: str
    object_key: str
    samples: list[str]


def aggregate(items: Sequence[StoredRequest]) -> list[Sighting]:
    """Fold a batch's stored unmatched requests into one sighting per row, in key order.

    Key order gives every writer the same lock order on the rows it upserts.
    """
    found: dict[tuple[str, str, str], Sighting] = {}
    for request in sorted(items, key=lambda item: item.started_ns):
        method, _ = safe_text(request.method, MAX_METHOD_BYTES)
        path, cut = safe_text(request.path, MAX_PATH_BYTES)
        trace_id, key = request.trace_id, request.object_key
        seen = found.get((request.canvas, method, path))
        if seen is None:
            found[(request.canvas, method, path)] = Sighting(
                request.canvas,
                method,
                path,
                cut,
                1,
                request.started_ns,
                request.started_ns,
                trace_id,
                key,
                [trace_id],
            )
            continue
        seen.count += 1
        seen.path_truncated = seen.path_truncated or cut
        seen.last_ns = request.started_ns
        seen.trace_id, seen.object_key = trace_id, key
        seen.samples.append(trace_id)
        del seen.samples[:-SAMPLES_PER_PATH]
    return [found[k] for k in sorted(found)]


# A retry of a batch whose commit acknowledgement was lost must not count twice: the
# batch's latest id is then already the row's latest or one of its samples.
_UPSERT = f"""
INSERT INTO unmatched AS u (canvas, method, path, path_truncated, count, first_seen,
                            last_seen, trace_id, object_key, samples)
SELECT s.canvas, s.method, s.path, s.path_truncated, s.count, s.first_seen, s.last_seen,
       s.trace_id, s.object_key, string_to_array(s.samples, ',')::uuid[]
FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::bigint[],
            $6::timestamptz[], $7::timestamptz[], $8::uuid[], $9::text[], $10::text[])
     AS s(canvas, method, path, path_truncated, count, first_seen, last_seen, trace_id,
          object_key, samples)
ON CONFLICT (canvas, method, path) DO UPDATE SET
    count = u.count + EXCLUDED.count,
    path_truncated = u.path_truncated OR EXCLUDED.path_truncated,
    first_seen = least(u.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(u.last_seen, EXCLUDED.last_seen),
    trace_id = CASE WHEN EXCLUDED.last_seen >= u.last_seen
                    THEN EXCLUDED.trace_id ELSE u.trace_id END,
    object_key = CASE WHEN EXCLUDED.last_seen >= u.last_seen
                      THEN EXCLUDED.object_key ELSE u.object_key END,
    samples = (u.samples || EXCLUDED.samples)[
        greatest(1, cardinality(u.samples) + cardinality(EXCLUDED.samples)
                    - {SAMPLES_PER_PATH} + 1):],
    adopted_by = NULL,
    adopted_at = NULL
WHERE NOT (EXCLUDED.trace_id = u.trace_id OR EXCLUDED.trace_id = ANY(u.samples))
"""

# Keeps each touched canvas at its most recent rows. It deletes at most what the batch
# added beyond the bound: summary rows, not trace index rows.
_TRIM = """
DELETE FROM unmatched AS u
USING (
    SELECT canvas, method, path FROM (
        SELECT canvas, method, path,
               row_number() OVER (PARTITION BY canvas
                                  ORDER BY last_seen DESC, method, path) AS rank
        FROM unmatched WHERE canvas = ANY($1::text[])
    ) AS ranked
    WHERE rank > $2
) AS old
WHERE u.canvas = old.canvas AND u.method = old.method AND u.path = old.path
"""


async def record(
    conn: Connection, items: Sequence[StoredRequest], *, bound: int = PATHS_PER_CANVAS
) -> int:
    """Fold a batch of stored unmatched requests into the summary (inside the caller's
    transaction) and publish ``unmatched`` events. Returns the rows touched."""
    sightings = aggregate(items)
    if not sightings:
        return 0
    await conn.execute(
        _UPSERT,
        [s.canvas for s in sightings],
        [s.method for s in sightings],
        [s.path for s in sightings],
        [s.path_truncated for s in sightings],
        [s.count for s in sightings],
        [utc_datetime(s.first_ns) for s in sightings],
        [utc_datetime(s.last_ns) for s in sightings],
        [s.trace_id for s in sightings],
        [s.object_key for s in sightings],
        [",".join(s.samples) for s in sightings],
    )
    canvases = sorted({s.canvas for s in sightings})
    await conn.execute(_TRIM, canvases, bound)
    for canvas in canvases:
        await notify.publish(conn, canvas, "unmatched", event_data(sightings, canvas))
    return len(sightings)


def event_data(sightings: Sequence[Sighting], canvas: str) -> dict[str, Any]:
    """The ``unmatched`` event of one canvas for one batch: totals and the latest paths."""
    mine = [s for s in sightings if s.canvas == canvas]
    latest = sorted(mine, key=lambda s: s.last_ns, reverse=True)[:EVENT_ENTRIES]
    return {
        "requests": sum(s.count for s in mine),
        "paths": len(mine),
        "latest": [
            {
                "method": s.method,
                "path": s.path[:EVENT_PATH_CHARS],
                "count": s.count,
                "last_seen": rfc3339(s.last_ns),
                "trace_id": s.trace_id,
            }
            for s in latest
        ],
    }


@dataclass(frozen=True, slots=True)
class Entry:
    """One summary row as stored."""

    method: str
    path: str
    path_truncated: bool
    count: int
    first_seen: datetime
    last_seen: datetime
    trace_id: str
    object_key: str
    samples: tuple[str, ...]
    adopted_by: str | None

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Entry:
        return cls(
            r["method"],
            r["path"],
            r["path_truncated"],
            r["count"],
            r["first_seen"],
            r["last_seen"],
            str(r["trace_id"]),
            r["object_key"],
            tuple(str(s) for s in r["samples"]),
            r["adopted_by"],
        )


_SELECT = (
    "SELECT method, path, path_truncated, count, first_seen, last_seen, trace_id, object_key,"
    " samples, adopted_by FROM unmatched WHERE canvas = $1"
)


async def list_entries(pool: Pool, canvas: str, *, limit: int = PATHS_PER_CANVAS) -> list[Entry]:
    """A canvas's summary rows, most recently seen first (all of them, up to ``limit``)."""
    records = await pool.fetch(
        _SELECT + " ORDER BY last_seen DESC, method, path LIMIT $2", canvas, limit
    )
    return [Entry.from_record(r) for r in records]


async def adoptable(pool: Pool, canvas: str) -> list[Entry]:
    """Rows that still remember stored requests nobody adopted."""
    records = await pool.fetch(_SELECT + " AND cardinality(samples) > 0", canvas)
    return [Entry.from_record(r) for r in records]


async def find_sample(pool: Pool, canvas: str, trace_id: str) -> Entry | None:
    """The row whose latest request or samples include ``trace_id``, if any."""
    record = await pool.fetchrow(
        _SELECT + " AND (trace_id = $2 OR $2 = ANY(samples)) LIMIT 1", canvas, trace_id
    )
    return None if record is None else Entry.from_record(record)


async def mark_adopted(
    conn: Connection, canvas: str, consumed: Sequence[tuple[str, str, str, Sequence[str]]]
) -> None:
    """Drop ``(method, path, handler_id, trace_ids)`` samples from their rows (one
    statement) and say which handler took them. The rows stay: the API hides them while
    a handler matches, and shows them again if that handler goes away."""
    if not consumed:
        return
    await conn.execute(
        """
        UPDATE unmatched AS u
        SET samples = ARRAY(SELECT s FROM unnest(u.samples) AS s
                            WHERE NOT s = ANY(string_to_array(c.ids, ',')::uuid[])),
            adopted_by = c.handler_id,
            adopted_at = now()
        FROM unnest($2::text[], $3::text[], $4::text[], $5::text[])
             AS c(method, path, handler_id, ids)
        WHERE u.canvas = $1 AND u.method = c.method AND u.path = c.path
        """,
        canvas,
        [c[0] for c in consumed],
        [c[1] for c in consumed],
        [c[2] for c in consumed],
        [",".join(c[3]) for c in consumed],
    )

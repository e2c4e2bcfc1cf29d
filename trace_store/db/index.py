"""The Postgres trace index: one compact row per stored base object.

An index row is written only after its object exists, so a visible row is the commit
marker of a trace. Rows arrive in batches from the writer: by binary ``COPY`` straight
into ``traces`` (:func:`copy_rows`, what :func:`~trace_store.writer.commit.commit_batch`
tries first), or as one idempotent multi-row statement (:func:`insert_rows`, one JSON
parameter read by ``json_to_recordset``) when some of them are already there.
"""

from __future__ import annotations

import operator
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

from trace_store.timestamps import EPOCH, rfc3339_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trace_store.db import Connection, Pool


@dataclass(slots=True)
class IndexRow:
    """What the index keeps about one stored trace.

    Plain data, not frozen: the writer makes one per trace and fills in where its frame
    went (:func:`trace_store.writer.segments.pack`), and a frozen dataclass costs
    eight times as much to build (``object.__setattr__`` per field), once per trace.
    """

    canvas: str
    handler_id: str
    trace_id: str
    started_at: datetime
    object_key: str
    size_bytes: int
    sha256: bytes
    status: int | None
    duration_ms: float
    functions: tuple[str, ...]
    has_error: bool
    #: Adopted from an unmatched request: the object is that request (input only).
    adopted: bool = False
    #: Among the latest ``keep_latest`` of its handler (read from the pins table).
    pinned: bool = False
    #: Where the trace's frame starts in a segment holding several traces (its length
    #: is ``size_bytes``, its hash ``sha256``); ``None`` when the object is the trace.
    offset: int | None = None

    @property
    def byte_range(self) -> tuple[int, int] | None:
        """The frame's bytes in the object, inclusive (``None``: the whole object)."""
        if self.offset is None:
            return None
        return self.offset, self.offset + self.size_bytes - 1

    def summary(self) -> dict[str, Any]:
        """What a trace list and a ``trace`` event show of the trace."""
        return {
            "trace_id": self.trace_id,
            "handler_id": self.handler_id,
            "started_at": rfc3339_of(self.started_at),
            "status": self.status,
            "duration_ms": round(self.duration_ms, 3),
        }

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> IndexRow:
        return cls(
            r["canvas"],
            r["handler_id"],
            str(r["trace_id"]),
            r["started_at"],
            r["object_key"],
            r["size_bytes"],
            bytes(r["sha256"]),
            r["status"],
            r["duration_ms"],
            tuple(r["functions"]),
            r["has_error"],
            # Lists and lookups leave ``adopted`` out (pins copy rows without it).
            bool(r.get("adopted", False)),
            bool(r.get("pinned", False)),
            r["object_offset"],
        )


#: The index columns an :class:`IndexRow` is read from (the pins table has them too).
COLUMNS = (
    "canvas, handler_id, trace_id, started_at, object_key, size_bytes, sha256, status, "
    "duration_ms, functions, has_error, object_offset"
)

#: Index rows as a relation, from the one JSON parameter of :func:`rows_json`. asyncpg
#: encodes an ``unnest`` of one array per column element by element, with type checks
#: that cost several µs of client CPU a row; one orjson string costs about one, and
#: Postgres parses it in C.
ROWS_RECORDSET = """json_to_recordset($1::json) AS u(
    canvas text, handler_id text, trace_id uuid, started_at timestamptz, object_key text,
    size_bytes int, sha256 text, status smallint, duration_ms real, functions text[],
    has_error bool, adopted bool, "offset" bigint)"""
#: The index columns of ``ROWS_RECORDSET``, in ``COLUMNS`` order.
ROWS_COLUMNS = (
    "u.canvas, u.handler_id, u.trace_id, u.started_at, u.object_key, u.size_bytes,"
    " decode(u.sha256, 'hex'), u.status, u.duration_ms, u.functions, u.has_error,"
    " u.offset"
)

# ``adopted`` is written but not read back with ``COLUMNS``: other tables holding
# copies of index rows (pins) need not carry it.
_INSERT = f"""
INSERT INTO traces ({COLUMNS}, adopted)
SELECT {ROWS_COLUMNS}, u.adopted FROM {ROWS_RECORDSET}
ON CONFLICT DO NOTHING
"""


async def insert_rows(pool: Pool | Connection, rows: Sequence[IndexRow]) -> int:
    """Insert a batch in one statement; rows already present are left as they are
    (``commit_batch`` uses it when :func:`copy_rows` met one)."""
    if not rows:
        return 0
    result = await pool.execute(_INSERT, rows_json(rows))
    return int(result.rsplit(" ", 1)[-1])


class AlreadyIndexed(Exception):
    """:func:`copy_rows` met a row the index already holds (its transaction is aborted)."""


#: The ``traces`` columns :func:`copy_rows` fills, and the ``IndexRow`` fields they take,
#: in the same order (``attrgetter`` builds each row's tuple in C).
_COPY_COLUMNS = (
    "canvas", "handler_id", "trace_id", "started_at", "object_key", "size_bytes", "sha256",
    "status", "duration_ms", "functions", "has_error", "adopted", "object_offset",
)  # fmt: skip
_COPY_FIELDS = operator.attrgetter(*_COPY_COLUMNS[:-1], "offset")


async def copy_rows(conn: Connection, rows: Sequence[IndexRow]) -> int:
    """Insert a batch by binary ``COPY`` straight into ``traces``; the number of rows.

    Not idempotent: a row already present (a batch committed again after a lost
    acknowledgement, a rebuild racing the writer) raises :class:`AlreadyIndexed`, and
    the caller's transaction is then aborted: it must roll back and use
    :func:`insert_rows`. ``COPY`` has no ``ON CONFLICT``. A staging table that would
    give it one (``COPY`` into it, ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``
    from it) is slower than this at every batch size, and than :func:`insert_rows` up
    to a few hundred rows: its ``ON COMMIT DELETE ROWS`` truncation alone costs about
    300 µs of server CPU a commit. A savepoint would add two round trips and a
    subtransaction to every batch, to spare the rare retry one.

    Why ``COPY``: values travel in binary, so Postgres parses no JSON, timestamps or
    UUIDs, and a partitioned table takes ``COPY`` rows through buffered multi-inserts
    where ``INSERT ... SELECT`` inserts them one by one. ``bench.index_commit``, whole
    batches through ``commit_batch`` against :func:`insert_rows`, four runs on a shared
    2-core machine: Postgres CPU a row 14-18 → 6-9 µs at 500 rows (rows/s x1.0-1.3),
    29-36 → 22-28 µs at 50 (x1.1-1.2). One path for every size: at one row asyncpg's
    ``COPY`` costs 20-60 µs more client CPU a commit (three socket writes instead of
    one) and saves 20-35 µs of server CPU, and commits/s differ by -4 % to +2 %: no case
    for a second statement kept for small batches (small when the writer is idle).
    """
    if not rows:
        return 0
    try:
        result = await conn.copy_records_to_table(
            "traces", records=map(_COPY_FIELDS, rows), columns=_COPY_COLUMNS
        )
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyIndexed(str(exc)) from exc
    return int(result.rsplit(" ", 1)[-1])


async def indexed_keys(pool: Pool | Connection, keys: Sequence[str]) -> set[str]:
    """Which of the object keys ``keys`` have at least one index row."""
    records = await pool.fetch(
        "SELECT DISTINCT object_key FROM traces WHERE object_key = ANY($1::text[])", list(keys)
    )
    return {r["object_key"] for r in records}


def rows_json(rows: Sequence[IndexRow]) -> str:
    """``rows`` as the JSON array ``ROWS_RECORDSET`` reads (field names are its columns)."""
    return orjson.dumps(rows, default=_hex).decode()


def _hex(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot encode {type(value).__name__} in an index row")


def trace_time_window(trace_id: str) -> tuple[datetime, datetime] | None:
    """The ``started_at`` range a UUIDv7 implies, so lookups prune to one partition.

    ``None`` when the id's 48-bit time field lies outside what a datetime can hold
    (years 1 to 9999): no trace can have started then.
    """
    ms = uuid.UUID(trace_id).int >> 80
    try:
        start = EPOCH + timedelta(milliseconds=ms)
        return start - timedelta(milliseconds=1), start + timedelta(milliseconds=2)
    except OverflowError:
        return None


#: Unpinned traces older than the policy's window are hidden (SPEC §10), even while
#: their rows and objects still exist; the window is the one ``serve`` stored.
_IN_WINDOW = (
    "started_at >= now() - make_interval(days => (SELECT traces_retain_days FROM retention_policy))"
)
_NOT_PINNED = (
    "NOT EXISTS (SELECT 1 FROM pins p WHERE p.canvas = t.canvas AND p.trace_id = t.trace_id)"
)


async def get_trace(pool: Pool, canvas: str, trace_id: str) -> IndexRow | None:
    """The index row of one visible trace (pinned, or within the window), or ``None``.
    A pinned trace is found even after its daily partition was dropped."""
    record = await pool.fetchrow(
        f"SELECT {COLUMNS}, true AS pinned FROM pins WHERE canvas = $1 AND trace_id = $2",
        canvas,
        trace_id,
    )
    if record is not None:
        return IndexRow.from_record(record)
    window = trace_time_window(trace_id)
    if window is None:
        return None
    low, high = window
    record = await pool.fetchrow(
        f"SELECT {COLUMNS} FROM traces WHERE canvas = $1 AND trace_id = $2"
        f" AND started_at >= $3 AND started_at < $4 AND {_IN_WINDOW}",
        canvas,
        trace_id,
        low,
        high,
    )
    return None if record is None else IndexRow.from_record(record)


#: ``status=`` of a trace list (SPEC §14): an HTTP status class, or "raised an error".
STATUS_FILTERS = ("2xx", "3xx", "4xx", "5xx", "error")


@dataclass(frozen=True, slots=True)
class TraceFilter:
    """What a trace list keeps (SPEC §14); every field ``None`` keeps everything."""

    status: str | None = None  # one of STATUS_FILTERS
    since: datetime | None = None  # started at or after
    until: datetime | None = None  # started before
    function: str | None = None  # called this user function

    def where(self, args: list[Any]) -> str:
        """The SQL conditions (each starting with `` AND``), their values appended to
        ``args`` as numbered parameters."""

        def param(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        sql = ""
        if self.status == "error":
            sql += " AND has_error"
        elif self.status is not None:
            low = int(self.status[0]) * 100
            sql += f" AND status >= {param(low)} AND status < {param(low + 100)}"
        if self.since is not None:
            sql += f" AND started_at >= {param(self.since)}"
        if self.until is not None:
            sql += f" AND started_at < {param(self.until)}"
        if self.function is not None:
            sql += f" AND functions @> ARRAY[{param(self.function)}::text]"
        return sql


async def list_traces(
    pool: Pool,
    canvas: str,
    handler_id: str,
    *,
    limit: int,
    before: str | None = None,
    keep: TraceFilter | None = None,
) -> list[IndexRow]:
    """A handler's visible traces that ``keep`` keeps, newest first, strictly older than
    ``before`` when given: its pinned traces (from the pins table, so they outlive their
    partition) and its unpinned traces within the retention window."""
    args: list[Any] = [canvas, handler_id, limit]
    cursor = "" if before is None else f" AND trace_id < ${len(args) + 1}::uuid"
    if before is not None:
        args.append(before)
    wanted = cursor + (keep or TraceFilter()).where(args)
    records = await pool.fetch(
        f"SELECT * FROM (SELECT {COLUMNS}, true AS pinned FROM pins"
        f" WHERE canvas = $1 AND handler_id = $2{wanted}"
        f" UNION ALL SELECT {COLUMNS}, false FROM traces t"
        f" WHERE canvas = $1 AND handler_id = $2{wanted} AND {_IN_WINDOW} AND {_NOT_PINNED}"
        ") AS visible ORDER BY trace_id DESC LIMIT $3",
        *args,
    )
    return [IndexRow.from_record(r) for r in records]

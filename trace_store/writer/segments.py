"""Segments: a writer batch's traces of one handler, stored as one object (SPEC §8).

Object storage charges per request, so a handler's traces of one batch go into one
object: their zstd frames back to back. Concatenated frames are a valid zstd stream
and each frame alone is a valid document, so a reader fetches one trace with a byte
range; each index row records its frame's offset, length and sha256. A handler with
one trace in the batch (a quiet one) gets a single-trace object under its own key,
exactly as before segments.

Pure: bytes and rows in, objects out (:func:`pack`), and back (:func:`rows_of`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from trace_store import keys
from trace_store.db.index import IndexRow
from trace_store.document import codec
from trace_store.document.compact import call_objects
from trace_store.errors import InvalidInput

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from trace_store.db.unmatched import StoredRequest


@dataclass(slots=True)
class Encoded:
    """One object ready to store: its key, its bytes, and the rows that commit it (the
    index rows of its handler traces, or one unmatched request's summary input)."""

    key: str
    data: bytes
    rows: list[IndexRow] | list[StoredRequest]

    @property
    def kind(self) -> str:
        """``keys.TRACES`` or ``keys.UNMATCHED``."""
        return keys.TRACES if isinstance(self.rows[0], IndexRow) else keys.UNMATCHED


def pack(traces: Sequence[tuple[bytes, IndexRow]], *, max_bytes: int) -> list[Encoded]:
    """The objects for a batch's handler traces, in batch order: traces of one handler
    are packed into segments of at most ``max_bytes``, a trace alone (or larger) gets
    its single-trace key. Sets each row's ``object_key`` and ``offset``."""
    groups: dict[tuple[str, str], list[tuple[bytes, IndexRow]]] = {}
    for frame, row in traces:
        groups.setdefault((row.canvas, row.handler_id), []).append((frame, row))
    objects = []
    for group in groups.values():
        for chunk in _chunks(group, max_bytes):
            if len(chunk) == 1:
                frame, row = chunk[0]
                row.object_key = keys.trace_key(row.canvas, row.handler_id, row.trace_id)
                objects.append(Encoded(row.object_key, frame, [row]))
            else:
                objects.append(_segment(chunk))
    return objects


def _chunks(
    group: list[tuple[bytes, IndexRow]], max_bytes: int
) -> Iterator[list[tuple[bytes, IndexRow]]]:
    chunk: list[tuple[bytes, IndexRow]] = []
    size = 0
    for item in group:
        if chunk and size + len(item[0]) > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += len(item[0])
    if chunk:
        yield chunk


def _segment(chunk: list[tuple[bytes, IndexRow]]) -> Encoded:
    first = chunk[0][1]
    # The frames' own hashes name the segment: the same traces give the same key and
    # bytes (a retried put finds its own object), any other set gives another key.
    digest = hashlib.sha256(b"".join(row.sha256 for _, row in chunk)).hexdigest()[:16]
    newest = max(row.trace_id for _, row in chunk)
    key = keys.segment_key(first.canvas, first.handler_id, newest, digest)
    rows = []
    offset = 0
    for frame, row in chunk:
        row.object_key, row.offset = key, offset
        rows.append(row)
        offset += len(frame)
    return Encoded(key, b"".join(frame for frame, _ in chunk), rows)


def started_at(doc: dict[str, Any]) -> datetime:
    """A trace document's ``started_at``."""
    return datetime.fromisoformat(str(doc["started_at"]).replace("Z", "+00:00"))


def rows_of(key: str, data: bytes) -> list[IndexRow]:
    """The index rows of the handler traces stored as ``data`` under ``key`` (the
    inverse of :func:`pack`): one for a single-trace object, one per frame of a segment.
    :class:`InvalidInput` unless the documents match the key."""
    parsed = keys.parse_key(key)
    if parsed.kind != keys.TRACES:
        raise InvalidInput(f"{key}: not a handler trace object")
    if not parsed.segment:
        return [_row(parsed, key, data, codec.decode(data), None)]
    rows = []
    for offset, length, raw in codec.frames(data):
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"{key}: frame at byte {offset} is not valid JSON: {exc}") from None
        rows.append(_row(parsed, key, data[offset : offset + length], doc, offset))
    if max((row.trace_id for row in rows), default=None) != parsed.trace_id:
        raise InvalidInput(f"{key}: the segment's newest trace is not the one its key names")
    return rows


def _row(parsed: keys.ParsedKey, key: str, frame: bytes, doc: Any, offset: int | None) -> IndexRow:
    handler = doc.get("handler") if isinstance(doc, dict) else None
    if not isinstance(handler, dict) or (doc.get("canvas"), handler.get("id")) != (
        parsed.canvas,
        parsed.handler_id,
    ):
        raise InvalidInput(f"{key}: the document does not match its key")
    trace_id = keys.check_trace_id(str(doc.get("trace_id")))
    if offset is None and trace_id != parsed.trace_id:
        raise InvalidInput(f"{key}: the document does not match its key")
    assert parsed.handler_id is not None
    result = doc.get("result")
    calls = call_objects(doc, hashes=False)
    return IndexRow(
        canvas=parsed.canvas,
        handler_id=parsed.handler_id,
        trace_id=trace_id,
        started_at=started_at(doc),
        object_key=key,
        size_bytes=len(frame),
        sha256=hashlib.sha256(frame).digest(),
        status=int(result["status"]) if isinstance(result, dict) else None,
        duration_ms=float(doc["duration_ms"]),
        functions=tuple(sorted({c["function"] for c in calls if c.get("kind") == "user"})),
        has_error=doc.get("error") is not None,
        adopted="adopted_from" in doc,
        offset=offset,
    )

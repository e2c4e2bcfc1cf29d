"""Segments (SPEC §8): a batch's traces of one handler in one object, each its own zstd
frame; index rows name their frame; pins follow segments; readers fetch one frame."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import zstandard

from tests.pin_support import CANVAS, FaultyStore, pending, series, write_traces
from trace_store import keys, stored_trace
from trace_store.backends.memory import MemoryStore
from trace_store.db import index, pins
from trace_store.db.outbox import PinOutbox
from trace_store.document import codec, compact
from trace_store.errors import IntegrityError, InvalidInput
from trace_store.metrics import Metrics
from trace_store.rebuild import rebuild
from trace_store.writer.batch_writer import TraceWriter
from trace_store.writer.segments import pack, rows_of

if TYPE_CHECKING:
    from trace_store.db import Pool


def _encoded(traces: list[object]) -> list[object]:
    writer = TraceWriter(MemoryStore(), None, Metrics())
    return writer._encode_batch(traces)  # type: ignore[arg-type]


def test_a_batch_packs_one_segment_per_handler_and_rows_of_inverts_it() -> None:
    now = datetime.now(UTC)
    batch = [pending(CANVAS, "busy", now + timedelta(milliseconds=i)) for i in range(5)]
    batch.insert(2, pending(CANVAS, "quiet", now))
    objects = _encoded(batch)
    by_handler = {obj.rows[0].handler_id: obj for obj in objects}  # type: ignore[attr-defined]
    busy, quiet = by_handler["busy"], by_handler["quiet"]
    assert len(objects) == 2
    assert len(busy.rows) == 5
    assert len(quiet.rows) == 1
    # A quiet handler's trace is a single-trace object under its own key, as before.
    assert quiet.key == keys.trace_key(CANVAS, "quiet", quiet.rows[0].trace_id)
    assert quiet.rows[0].offset is None
    parsed = keys.parse_key(busy.key)
    assert parsed.segment
    assert parsed.trace_id == max(r.trace_id for r in busy.rows)
    # Each row names its own frame: a valid document alone; the whole is one zstd stream.
    for row in busy.rows:
        start, end = row.byte_range
        frame = busy.data[start : end + 1]
        assert hashlib.sha256(frame).digest() == row.sha256
        assert len(frame) == row.size_bytes
        assert codec.decode(frame)["trace_id"] == row.trace_id
    stream = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True)
    assert stream.decompress(busy.data).count(b'"trace_id"') == 5
    assert rows_of(busy.key, busy.data) == busy.rows
    assert rows_of(quiet.key, quiet.data) == quiet.rows


def test_the_same_traces_give_the_same_segment_and_others_another() -> None:
    traces = series("busy", 4)
    (single,) = _encoded(traces[:1])
    assert pack([(single.data, single.rows[0])], max_bytes=1 << 20)[0].key.endswith(keys.SUFFIX)  # type: ignore[attr-defined]
    a = _encoded(traces)
    b = _encoded(traces)
    c = _encoded(traces[:3])
    assert a[0].key == b[0].key
    assert a[0].data == b[0].data
    assert c[0].key != a[0].key  # type: ignore[attr-defined]


def test_segment_keys_are_checked_like_every_key() -> None:
    trace_id = series("h", 1)[0].ensure_id()
    key = keys.segment_key(CANVAS, "h", trace_id, "0123456789abcdef")
    assert keys.parse_key(key) == keys.ParsedKey(keys.TRACES, CANVAS, "h", trace_id, True)
    for bad in ("0123", "0123456789ABCDEF", "../../../etc/pas"):
        with pytest.raises(InvalidInput):
            keys.segment_key(CANVAS, "h", trace_id, bad)
    for other in (
        key.replace(".seg.zst", ".json.zst"),
        key.replace(trace_id, trace_id.upper()),
        f"traces/{CANVAS}/h/../{trace_id}.0123456789abcdef.seg.zst",
        f"traces/{CANVAS}/{trace_id}.0123456789abcdef.seg.zst",
    ):
        with pytest.raises(InvalidInput):
            keys.parse_key(other)


def test_frames_reject_what_is_not_whole_sized_frames() -> None:
    one, two = codec.encode({"a": 1}), codec.encode({"b": [2] * 100})
    assert [(o, n) for o, n, _ in codec.frames(one + two)] == [(0, len(one)), (len(one), len(two))]
    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(b"{}")
    for bad in (one + two[:-2], one + b"garbage!", unsized, b"\x28\xb5\x2f\xfd"):
        with pytest.raises(InvalidInput):
            list(codec.frames(bad))
    with pytest.raises(InvalidInput):
        list(codec.frames(two, max_bytes=10))


async def test_every_trace_of_a_segment_reads_back_and_tampering_is_detected(pool: Pool) -> None:
    store = MemoryStore()
    await write_traces(store, pool, series("busy", 20))
    rows = await index.list_traces(pool, CANVAS, "busy", limit=50)
    assert len(rows) == 20
    assert len({r.object_key for r in rows}) == 1
    for row in rows:
        assert (await stored_trace.load(store, row))["trace_id"] == row.trace_id
    segment = store.objects[rows[0].object_key]
    start, _ = rows[3].byte_range  # type: ignore[misc]
    segment.data = (
        segment.data[:start] + bytes([segment.data[start] ^ 1]) + segment.data[start + 1 :]
    )
    with pytest.raises(IntegrityError):
        await stored_trace.load(store, rows[3])
    shifted = dataclasses.replace(rows[4], offset=(rows[4].offset or 0) + 1)
    with pytest.raises(IntegrityError):
        await stored_trace.load(store, shifted)


async def test_a_segment_is_pinned_while_any_of_its_traces_is(pool: Pool) -> None:
    store = MemoryStore()
    await write_traces(store, pool, series("h", 12, start=datetime.now(UTC) - timedelta(hours=3)))
    (first,) = await pins.pinned_keys(pool)
    queued = [r["object_key"] for r in await pool.fetch("SELECT object_key FROM pin_outbox")]
    assert queued == [first]  # one pin for the segment, not ten for its traces

    await pool.execute("DELETE FROM pin_outbox")
    await write_traces(store, pool, series("h", 3, start=datetime.now(UTC) - timedelta(hours=2)))
    assert len(await pins.pinned_keys(pool)) == 2  # 7 of the first segment's traces remain
    queued = [r["object_key"] for r in await pool.fetch("SELECT object_key FROM pin_outbox")]
    assert first not in queued
    assert len(queued) == 1

    await pool.execute("DELETE FROM pin_outbox")
    await write_traces(store, pool, series("h", 10, start=datetime.now(UTC) - timedelta(hours=1)))
    (last,) = await pins.pinned_keys(pool)
    entries = await pool.fetch("SELECT object_key, pinned FROM pin_outbox ORDER BY object_key")
    assert {(r["object_key"], r["pinned"]) for r in entries} == {
        (last, True),
        (first, False),
        *((key, False) for key in {r["object_key"] for r in entries} - {first, last}),
    }
    assert len(entries) == 3  # the newest pinned, both older segments unpinned


async def test_a_busy_handlers_superseded_segments_cost_no_tag_request(pool: Pool) -> None:
    store = FaultyStore()  # counts pin and unpin calls
    outbox = PinOutbox(pool, store, settle=timedelta(seconds=30))
    start = datetime.now(UTC) - timedelta(hours=3)
    for i in range(5):  # five batches of a busy handler, each one segment, each newer
        await write_traces(store, pool, series("busy", 20, start=start + timedelta(minutes=30 * i)))
    assert (await outbox.run_once()).entries == 0  # nothing has settled yet
    await pool.execute("UPDATE pin_outbox SET queued_at = queued_at - interval '1 minute'")
    result = await outbox.run_once()
    assert store.calls == 1  # only the segment still pinned; four pins withdrawn unseen
    assert result.never_applied == 4
    assert {k for k, o in store.objects.items() if o.pinned} == await pins.pinned_keys(pool)
    assert await outbox.pending() == 0


async def test_rebuild_indexes_every_trace_of_every_segment(pool: Pool) -> None:
    store = MemoryStore()
    await write_traces(store, pool, [*series("a", 15), *series("b", 1), *series("a", 3)])
    before = {
        r.trace_id: r
        for h in ("a", "b")
        for r in await index.list_traces(pool, CANVAS, h, limit=50)
    }
    await pool.execute("TRUNCATE traces, pins, pin_outbox")
    progress = await rebuild(store, pool)
    assert progress.indexed == 19
    assert not progress.invalid
    after = {
        r.trace_id: r
        for h in ("a", "b")
        for r in await index.list_traces(pool, CANVAS, h, limit=50)
    }
    assert after.keys() == before.keys()
    for trace_id, row in after.items():
        assert (row.object_key, row.offset, row.sha256) == (
            before[trace_id].object_key,
            before[trace_id].offset,
            before[trace_id].sha256,
        )
    assert (await rebuild(store, pool)).indexed == 0  # idempotent


def test_a_string_that_is_not_utf8_does_not_cost_its_trace() -> None:
    # A lone surrogate ("\ud800", made by the handler's own code) cannot be JSON: the
    # trace is kept with U+FFFD in its place, not dropped.
    trace = pending(CANVAS, "h", datetime.now(UTC))
    trace.calls = [[1, None, "f", "user", ("\ud800",), {}, {"k": "x\udfff"}, None, 1, 2]]
    (obj,) = _encoded([trace])
    doc = compact.expanded(codec.decode(obj.data))  # type: ignore[attr-defined]
    assert doc["calls"][0]["args"] == ["\ufffd"]
    assert doc["calls"][0]["result"] == {"k": "x\ufffd"}

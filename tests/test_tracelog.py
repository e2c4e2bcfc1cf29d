"""The trace log on its own: appends, reads, commits, restarts, torn and full logs.

Real files in a temporary directory; a full disk is ``/dev/full`` (every write fails
with ``ENOSPC``), behind a segment's name.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from pathlib import Path

import pytest

from trace_store.errors import ConfigError
from trace_store.writer.log import (
    RECORD,
    LogFull,
    LogReader,
    Position,
    TraceLog,
    read_committed,
    segment_path,
    segments,
)


def _opened(directory: Path, max_bytes: int = 1 << 30, segment_bytes: int = 1 << 20) -> TraceLog:
    tracelog = TraceLog(directory, max_bytes, segment_bytes)
    tracelog.open()
    return tracelog


def _read_all(reader: LogReader, limit: Position) -> list[bytes]:
    out = []
    while records := reader.read(limit, 1 << 20):
        out += [r.payload for r in records]
    return out


def test_frames_come_back_in_order_across_segments_and_commits_delete_segments(
    tmp_path: Path,
) -> None:
    tracelog = _opened(tmp_path, segment_bytes=1000)
    payloads = [f"frame {i}".encode() * 20 for i in range(30)]
    for p in payloads:
        end = tracelog.append(p, 2)
    assert len(segments(tmp_path)) > 3
    held = sum(RECORD.size + len(p) for p in payloads)
    assert (tracelog.held_traces, tracelog.held_bytes) == (60, held)
    reader = LogReader(tmp_path)
    assert _read_all(reader, end) == payloads
    assert reader.position == end
    reader.commit(end)
    assert read_committed(tmp_path) == end
    assert segments(tmp_path) == [end.segment]  # the ones wholly before it are gone
    tracelog.committed_to(end)
    assert (tracelog.held_traces, tracelog.held_bytes) == (0, 0)


def test_a_reader_stops_at_the_announced_end(tmp_path: Path) -> None:
    tracelog = _opened(tmp_path)
    first = tracelog.append(b"one", 1)
    tracelog.append(b"two", 1)
    reader = LogReader(tmp_path)
    assert _read_all(reader, first) == [b"one"]  # "two" was not announced yet
    assert _read_all(reader, tracelog.end) == [b"two"]


def test_a_restart_resumes_after_the_committed_position(tmp_path: Path) -> None:
    tracelog = _opened(tmp_path)
    ends = [tracelog.append(f"t{i}".encode(), 1) for i in range(5)]
    LogReader(tmp_path).commit(ends[1])
    tracelog.close()
    again = _opened(tmp_path)  # a new start: a new segment, the old frames accounted
    assert again.end.segment == ends[-1].segment + 1
    assert again.held_traces == 3
    again.append(b"t5", 1)
    assert _read_all(LogReader(tmp_path), again.end) == [b"t2", b"t3", b"t4", b"t5"]


def test_a_record_torn_by_a_crash_is_skipped(tmp_path: Path) -> None:
    tracelog = _opened(tmp_path)
    tracelog.append(b"whole", 1)
    cut = tracelog.append(b"cut short" * 100, 1)
    tracelog.close()
    path = segment_path(tmp_path, cut.segment)
    os.truncate(path, cut.offset - 50)  # the process died inside the write
    again = _opened(tmp_path)
    assert again.held_traces == 1  # the torn one is not counted as held
    again.append(b"after", 1)
    assert _read_all(LogReader(tmp_path), again.end) == [b"whole", b"after"]


def test_a_second_appender_is_refused(tmp_path: Path) -> None:
    _opened(tmp_path)
    with pytest.raises(ConfigError, match="in use by another strata process"):
        _opened(tmp_path)


def test_a_full_log_refuses_a_frame_and_keeps_the_rest(tmp_path: Path) -> None:
    tracelog = _opened(tmp_path, max_bytes=100)
    end = tracelog.append(b"x" * 50, 1)
    with pytest.raises(LogFull, match="holds 62 of 100 bytes"):
        tracelog.append(b"y" * 50, 1)
    assert tracelog.end == end
    tracelog.committed_to(end)  # the reader caught up: room again
    tracelog.append(b"y" * 50, 1)


def test_a_full_disk_fails_the_append_and_the_next_segment_takes_over(tmp_path: Path) -> None:
    tracelog = _opened(tmp_path)
    first = tracelog.append(b"before", 1)
    tracelog.close()
    again = _opened(tmp_path)
    full = segment_path(tmp_path, again.end.segment)
    full.symlink_to("/dev/full")  # the next segment is on a full disk
    with pytest.raises(OSError, match="No space left") as failed:
        again.append(b"lost", 1)
    assert failed.value.errno == errno.ENOSPC
    assert again.error is not None
    full.unlink()  # space again
    again.append(b"after", 1)
    assert again.error is None
    assert _read_all(LogReader(tmp_path), again.end) == [b"before", b"after"]
    assert first.segment < again.end.segment


def test_an_unreadable_committed_file_is_a_start_up_error(tmp_path: Path) -> None:
    (tmp_path / "committed").write_text("{not json")
    with pytest.raises(ConfigError, match=r"STRATA_DATA_DIR: .*committed is unreadable"):
        _opened(tmp_path)


def _frame(n: int) -> bytes:
    from trace_store.record import PendingTrace
    from trace_store.writer import wire

    traces = [
        PendingTrace(
            canvas="shop",
            kind="unmatched",
            handler=None,
            started_ns=time.time_ns(),
            duration_ns=0,
            method="GET",
            path=f"/nowhere/{i}",
            query_string="",
            params={},
            raw_headers=(),
            body=b"",
        )
        for i in range(n)
    ]
    return wire.dumps(("batch", [wire.prepare(p) for p in traces]))


async def test_a_segment_read_to_its_end_is_committed_past_and_deleted(tmp_path: Path) -> None:
    # A full disk: the gateway's last segment is closed after a failed append and no
    # record can follow it. Its traces stored, the reader must still move past it and
    # delete it, or the disk stays full for good.
    from trace_store.backends.memory import MemoryStore
    from trace_store.metrics import Metrics
    from trace_store.writer.batch_writer import TraceWriter
    from trace_store.writer.consumer import LogConsumer

    tracelog = _opened(tmp_path)
    for _ in range(3):
        tracelog.append(_frame(4), 4)
    tracelog.close()  # closed: what a failed append (or a restart) does
    again = _opened(tmp_path)
    store = MemoryStore()
    writer = TraceWriter(store, None, Metrics())
    consumer = LogConsumer(LogReader(tmp_path), writer)
    writer.start()
    reading = asyncio.create_task(consumer.run())
    consumer.extend(again.end)
    await asyncio.wait_for(consumer.wait_caught_up(again.end), 10)
    consumer.stop()
    await reading
    await writer.stop()
    assert len(store.objects) == 12
    assert read_committed(tmp_path) == again.end  # the start of the next segment
    assert segments(tmp_path) == []  # the full segment is gone


async def test_caught_up_waits_for_frames_still_being_decoded(tmp_path: Path) -> None:
    # The reader's position runs ahead while a load decodes the frames it read. A flush
    # that arrived then was answered at once, before those traces were stored: the
    # writer process's flush() returned with traces missing.
    from trace_store.backends.memory import MemoryStore
    from trace_store.metrics import Metrics
    from trace_store.writer.batch_writer import TraceWriter
    from trace_store.writer.consumer import LogConsumer
    from trace_store.writer.queue import WriterConfig

    tracelog = _opened(tmp_path)
    traces = 20_000  # one frame that takes a while to unpickle
    tracelog.append(_frame(traces), traces)
    store = MemoryStore()
    writer = TraceWriter(store, None, Metrics(), config=WriterConfig(queue_traces=traces))
    consumer = LogConsumer(LogReader(tmp_path), writer)
    writer.start()
    reading = asyncio.create_task(consumer.run())
    consumer.extend(tracelog.end)
    while consumer.reader.position < tracelog.end:  # read, and still being decoded
        await asyncio.sleep(0)
    await asyncio.wait_for(consumer.wait_caught_up(tracelog.end), 60)
    stored = len(store.objects)
    consumer.stop()
    await reading
    await writer.stop()
    assert stored == traces


def test_a_restart_after_a_run_that_logged_nothing_still_reads_what_comes_next(
    tmp_path: Path,
) -> None:
    # Run 1 logs a frame and commits past it to the start of the next segment (where the
    # reader stood); run 2 logs nothing, and its empty segment is deleted by that commit.
    first = _opened(tmp_path)
    end = first.append(b"run 1", 1)
    reader = LogReader(tmp_path)
    assert _read_all(reader, end) == [b"run 1"]
    first.close()
    second = _opened(tmp_path)
    reader = LogReader(tmp_path)
    reader.commit(Position(second.end.segment, 0))  # all read: the reader's position
    second.close()
    assert segments(tmp_path) == []
    # Run 3 must append after the committed position, or its frames are never read.
    third = _opened(tmp_path)
    end = third.append(b"run 3", 1)
    assert _read_all(LogReader(tmp_path), end) == [b"run 3"]
    third.close()

"""The local trace log: every finished trace is appended here before anything else.

The gateway appends each frame of finished traces (a pickle, :mod:`trace_store.writer.wire`)
to the active segment file under ``<data-dir>/log/``; the writer reads the log from its
committed position, stores and indexes what it reads, and only then moves the committed
position on (the ``committed`` file). So one path carries every trace, healthy or not:
an outage of the store or of Postgres only lets the log grow, recovery reads it at full
batch speed, and a restart resumes from the committed position (a re-read trace is a
create-only put that finds the same bytes, and an index row that already exists).

Durability: appends are plain ``write`` calls without ``fsync``, so a killed process
(``kill -9``, the OOM killer) loses nothing the kernel has accepted; a machine that
loses power may lose the last seconds. A record is ``length, crc32, traces`` and the
payload; a record cut short by a crash fails its length or checksum and is skipped.

Layout: segments ``<20-digit number>.log``, a new one at every start of the appender
and whenever the active one passes :data:`SEGMENT_BYTES`; a segment wholly before the
committed position is deleted by the reader. One process appends (it holds ``lock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, NamedTuple

import orjson

from trace_store.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger("strata.log")

RECORD: Final = struct.Struct(">III")  # payload length, crc32 of the payload, traces
#: Small, so that a full disk frees up a segment at a time as the writer catches up
#: (a 1 GiB log is ~1,000 files; the directory is listed only when a segment is left).
SEGMENT_BYTES: Final = 1024 * 1024
SUFFIX: Final = ".log"
COMMITTED: Final = "committed"
LOCK: Final = "lock"


class Position(NamedTuple):
    """A place in the log: a segment number and a byte offset in it."""

    segment: int
    offset: int


START: Final = Position(0, 0)


class LogFull(Exception):
    """The log holds its bound of bytes; the frame was not appended."""


def segment_path(directory: Path, number: int) -> Path:
    """The file of segment ``number``."""
    return directory / f"{number:020d}{SUFFIX}"


def segments(directory: Path) -> list[int]:
    """The segment numbers present, in order."""
    found = []
    for name in os.listdir(directory):
        stem, dot, ext = name.partition(".")
        if dot and "." + ext == SUFFIX and len(stem) == 20 and stem.isascii() and stem.isdigit():
            found.append(int(stem))
    return sorted(found)


def read_committed(directory: Path) -> Position:
    """The committed position (the start when nothing was ever committed)."""
    try:
        raw = orjson.loads((directory / COMMITTED).read_bytes())
        return Position(int(raw["segment"]), int(raw["offset"]))
    except FileNotFoundError:
        return START
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"STRATA_DATA_DIR: {directory / COMMITTED} is unreadable: {exc}"
        ) from None


def write_committed(directory: Path, position: Position) -> None:
    """Move the committed position (atomically: a temporary file renamed over it)."""
    tmp = directory / f"{COMMITTED}.tmp"
    tmp.write_bytes(orjson.dumps({"segment": position.segment, "offset": position.offset}))
    os.replace(tmp, directory / COMMITTED)


class Record(NamedTuple):
    """One frame read back: where it ends, how many traces it holds, its payload."""

    end: Position
    traces: int
    payload: bytes


def scan(
    path: Path, start: int, stop: int | None, max_bytes: int
) -> tuple[list[Record], int, bool]:
    """Records of one segment from byte ``start``: up to ``stop`` (the appender's
    announced end) or, with ``stop=None`` (a closed segment), to its end.

    Returns the records (at least one if any is there, then up to ``max_bytes`` of
    payload), the offset after the last one, and whether the segment is exhausted (a
    closed one read to its end, or to a torn or corrupt record, which ends it).
    """
    number = int(path.name[:20])
    records: list[Record] = []
    taken = 0
    offset = start
    with open(path, "rb") as handle:
        handle.seek(start)
        while stop is None or offset < stop:
            if records and taken >= max_bytes:
                return records, offset, False
            header = handle.read(RECORD.size)
            if not header and stop is None:
                return records, offset, True
            if len(header) < RECORD.size:
                return _torn(path, offset, records, stop)
            length, crc, traces = RECORD.unpack(header)
            payload = handle.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                return _torn(path, offset, records, stop)
            offset += RECORD.size + length
            taken += length
            records.append(Record(Position(number, offset), traces, payload))
    return records, offset, False


def _torn(
    path: Path, offset: int, records: list[Record], stop: int | None
) -> tuple[list[Record], int, bool]:
    if stop is not None:  # the appender said these bytes were written: a real fault
        log.error("trace log %s: record at byte %d is corrupt; skipping the segment", path, offset)
    else:
        log.warning(
            "trace log %s: a record cut short at byte %d (a crash or a full disk); skipped",
            path,
            offset,
        )
    return records, offset, True


@dataclass
class _Held:
    """The appender's account of the log: frames not yet known to be committed."""

    frames: deque[tuple[Position, int, int]] = field(default_factory=deque)  # end, traces, bytes
    traces: int = 0
    bytes: int = 0


class TraceLog:
    """The appending side, in the gateway: one process at a time (a lock file)."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._active = Position(0, 0)
        self._held = _Held()
        # append runs in a worker thread, committed_to on the event loop.
        self._held_lock = threading.Lock()
        self.committed = START
        #: The last append's failure (``None`` once one succeeds again).
        self.error: OSError | None = None

    def open(self) -> None:
        """Take the lock, account for what a previous run left, pick the next segment."""
        where = f"STRATA_DATA_DIR: the trace log {self.directory}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(f"{where} cannot be created: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError(f"{where} is in use by another strata process") from None
        self._lock_fd = fd
        self.committed = read_committed(self.directory)
        present = segments(self.directory)
        for number in present:
            if number >= self.committed.segment:
                self._account_existing(number)
        # After the last present segment, and after the committed position: a run that
        # logged nothing may have committed to the start of a segment it then deleted,
        # and a segment numbered before the committed position would never be read.
        last = max(present[-1] if present else 0, self.committed.segment)
        self._active = Position(last + 1, 0)

    def _account_existing(self, number: int) -> None:
        start = self.committed.offset if number == self.committed.segment else 0
        path = segment_path(self.directory, number)
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(start)
            offset = start
            while len(header := handle.read(RECORD.size)) == RECORD.size:
                length, _, traces = RECORD.unpack(header)
                offset += RECORD.size + length
                if offset > size:
                    break  # torn: the reader skips it too
                handle.seek(offset)
                self._remember(Position(number, offset), traces, RECORD.size + length)

    def _remember(self, end: Position, traces: int, size: int) -> None:
        held = self._held
        with self._held_lock:
            held.frames.append((end, traces, size))
            held.traces += traces
            held.bytes += size

    def close(self) -> None:
        """Close the active segment and release the lock."""
        if self._fd is not None:
            self._close_active()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def end(self) -> Position:
        """Where the next record will start: everything before it is in the log."""
        return self._active

    @property
    def held_traces(self) -> int:
        """Traces appended and not yet committed by the reader."""
        return self._held.traces

    @property
    def held_bytes(self) -> int:
        """Bytes appended and not yet committed by the reader."""
        return self._held.bytes

    def append(self, payload: bytes, traces: int) -> Position:
        """Append one frame; returns the log's new end. Raises :class:`LogFull` when
        the frame does not fit in the bound, ``OSError`` when it cannot be written."""
        size = RECORD.size + len(payload)
        if self._held.bytes + size > self.max_bytes:
            raise LogFull(f"the trace log holds {self._held.bytes} of {self.max_bytes} bytes")
        fd = self._open_active()
        data = RECORD.pack(len(payload), zlib.crc32(payload), traces) + payload
        try:
            written = os.write(fd, data)
            while written < len(data):  # a short write (a signal, a nearly full disk)
                written += os.write(fd, data[written:])
        except OSError as exc:
            self.error = exc
            # Whatever part of the record reached the file is torn; the next records
            # go to a fresh segment, and the reader skips the torn tail. A segment that
            # got no byte at all is kept for the next try (no empty file per failure).
            empty = os.fstat(fd).st_size == 0
            self._close_active()
            if empty:
                self._active = Position(self._active.segment - 1, 0)
            raise
        self.error = None
        self._active = Position(self._active.segment, self._active.offset + size)
        self._remember(self._active, traces, size)
        return self._active

    def _open_active(self) -> int:
        if self._fd is not None and self._active.offset < self.segment_bytes:
            return self._fd
        if self._fd is not None:
            self._close_active()
        number = self._active.segment
        try:
            fd = os.open(segment_path(self.directory, number), os.O_WRONLY | os.O_CREAT, 0o600)
            self._active = Position(number, os.lseek(fd, 0, os.SEEK_END))
        except OSError as exc:
            self.error = exc
            raise
        self._fd = fd
        return fd

    def _close_active(self) -> None:
        """Close the active segment; the next append starts the following one."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        self._active = Position(self._active.segment + 1, 0)

    def committed_to(self, position: Position) -> None:
        """The reader has committed up to ``position``: forget the frames before it."""
        if position <= self.committed:
            return
        self.committed = position
        held = self._held
        with self._held_lock:
            while held.frames and held.frames[0][0] <= position:
                _, traces, size = held.frames.popleft()
                held.traces -= traces
                held.bytes -= size


class LogReader:
    """The reading side, in the writer: reads from the committed position, commits,
    and deletes the segments it has wholly committed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.committed = read_committed(directory)
        self.position = self.committed

    def read(self, limit: Position, max_bytes: int) -> list[Record]:
        """The next records before ``limit`` (the appender's end), up to about
        ``max_bytes`` of payload; empty when there are none yet."""
        while self.position < limit:
            number, offset = self.position
            path = segment_path(self.directory, number)
            closed = number < limit.segment
            if not path.exists():
                if not closed:
                    return []
                self.position = self._next_segment(number, limit)
                continue
            records, offset, exhausted = scan(
                path, offset, None if closed else limit.offset, max_bytes
            )
            self.position = Position(number, offset)
            if exhausted and closed:
                self.position = self._next_segment(number, limit)
            if records:
                return records
        return []

    def _next_segment(self, number: int, limit: Position) -> Position:
        later = [n for n in segments(self.directory) if number < n <= limit.segment]
        return Position(later[0] if later else limit.segment, 0)

    def commit(self, position: Position) -> None:
        """Record that everything before ``position`` is stored and indexed.

        Segments wholly before it are deleted first: on a full disk that is what makes
        room for the committed file (a restart before it is written finds their number
        gone and reads on from the next segment, stored traces again at worst)."""
        if position <= self.committed:
            return
        if position.segment > self.committed.segment:
            for number in segments(self.directory):
                if number >= position.segment:
                    break
                with contextlib.suppress(FileNotFoundError):
                    segment_path(self.directory, number).unlink()
        write_committed(self.directory, position)
        self.committed = position

"""The writer's side of the trace log: read frames, hand their traces to the writer,
commit the log past every frame whose traces are all finished.

Frames finish out of order (the writer stores one batch while it encodes the next), so
the committed position moves only over a run of finished frames from the oldest one:
a restart re-reads at most the frames that were in the writer's hands. Before each
batch's segments are uploaded their intent is recorded (:mod:`trace_store.writer.intents`):
at start-up, what an earlier run uploaded is indexed and not read again. Reading waits
for room in the writer's queue, so while the store or Postgres is down the writer
takes nothing more and the traces wait in the log, not in memory.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections import deque
from typing import TYPE_CHECKING, Final

from trace_store.errors import describe
from trace_store.logs import RateLimitedLog
from trace_store.record import PendingTrace
from trace_store.writer import wire
from trace_store.writer.intents import Intents, recover
from trace_store.writer.log import START, LogReader, Position
from trace_store.writer.queue import weight

if TYPE_CHECKING:
    from trace_store.writer.batch_writer import TraceWriter
    from trace_store.writer.segments import Encoded

log = logging.getLogger("strata.log")

#: Payload bytes read from the log in one go (a few writer batches).
READ_BYTES: Final = 4 * 1024 * 1024
#: How often to look for room in the writer's queue while it is full.
ROOM_POLL: Final = 0.002


class _Frame:
    __slots__ = ("end", "remaining")

    def __init__(self, end: Position, remaining: int) -> None:
        self.end = end
        self.remaining = remaining


def _load(
    reader: LogReader, limit: Position
) -> list[tuple[Position, int, list[PendingTrace] | None]]:
    """Read and unpickle the next frames (in a worker thread: both can be large)."""
    out: list[tuple[Position, int, list[PendingTrace] | None]] = []
    for record in reader.read(limit, READ_BYTES):
        traces: list[PendingTrace] | None
        try:
            kind, traces = wire.loads(record.payload)
            if kind != "batch" or not all(isinstance(p, PendingTrace) for p in traces):
                raise ValueError("not a batch of traces")
        except (pickle.UnpicklingError, ValueError, TypeError, EOFError) as exc:
            log.error("trace log: a frame of %d traces does not decode (%s)", record.traces, exc)
            traces = None
        out.append((record.end, record.traces, traces))
    return out


class LogConsumer:
    """Feeds ``writer`` from ``reader`` up to the end the appender announces."""

    def __init__(self, reader: LogReader, writer: TraceWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.limit = START
        self._more = asyncio.Event()
        self._progress = asyncio.Event()
        self._frames: deque[_Frame] = deque()
        self._owner: dict[int, _Frame] = {}
        self._stopping = False
        self._loading = False
        self._commit_errors = RateLimitedLog(log, per_minute=2)
        self._intent_errors = RateLimitedLog(log, per_minute=2)
        #: Traces read from the log, over this process's life.
        self.read_traces = 0
        self.intents = Intents(reader.directory)
        #: Trace ids an earlier run stored and indexed but did not commit in the log.
        self._skip: set[str] = set()
        writer.on_done = self._done
        writer.on_upload = self._intend

    def extend(self, limit: Position) -> None:
        """The appender's log now ends at ``limit``."""
        if limit > self.limit:
            self.limit = limit
            self._more.set()

    def stop(self) -> None:
        """Read no more (what was read is still finished and committed)."""
        self._stopping = True
        self._more.set()

    @property
    def committed(self) -> Position:
        """Everything before this is stored and indexed."""
        return self.reader.committed

    def caught_up(self, position: Position) -> bool:
        """Whether everything the log held before ``position`` is finished."""
        # While a load runs, the reader is past frames not yet submitted.
        return self.reader.position >= position and not self._frames and not self._loading

    async def wait_caught_up(self, position: Position) -> None:
        """Wait until :meth:`caught_up` (or the consumer stops)."""
        while not self.caught_up(position) and not self._stopping:
            self._progress.clear()
            await self._progress.wait()

    async def run(self) -> None:
        """Index what an earlier run left uploaded, then read and submit until
        :meth:`stop`."""
        writer = self.writer
        self._skip = await recover(self.intents, writer.store, writer.pool, self.committed)
        while not self._stopping:
            if self.reader.position >= self.limit:
                self._more.clear()
                self._progress.set()
                await self._more.wait()
                continue
            # While loading, the reader's position runs ahead of the frames submitted.
            self._loading = True
            try:
                loaded = await asyncio.to_thread(_load, self.reader, self.limit)
                for end, count, traces in loaded:
                    if not await self._submit(end, count, traces):
                        break
            finally:
                self._loading = False
            self._advance()
            self._progress.set()

    async def _submit(self, end: Position, count: int, traces: list[PendingTrace] | None) -> bool:
        """Hand one frame's traces to the writer; ``False`` when stopped first (the
        frame is then left for the next start)."""
        writer = self.writer
        if traces is None:
            writer.metrics.traces_dropped.labels("log_corrupt").inc(count)
            traces = []
        weights = [weight(p) for p in traces]
        calls, size = sum(w[0] for w in weights), sum(w[1] for w in weights)
        # A short poll (the writer has no "room" event); it runs only while it is behind.
        while not writer.has_room(len(traces), calls, size):
            if self._stopping:
                return False
            await asyncio.sleep(ROOM_POLL)
        frame = _Frame(end, 0)
        self._frames.append(frame)
        for pending in traces:
            if self._skip and pending.trace_id in self._skip:
                self._skip.discard(pending.trace_id)  # stored and indexed before a restart
                continue
            if writer.submit(pending):  # else dropped and counted (larger than the queue)
                frame.remaining += 1
                self._owner[id(pending)] = frame
        self.read_traces += len(traces)
        self._advance()
        return True

    def _intend(self, batch: list[PendingTrace], items: list[Encoded]) -> None:
        # Single-trace objects need no intent: their key names the trace and their
        # bytes are the same when the trace is written again.
        segments = [item for item in items if len(item.rows) > 1]
        ends = [self._owner[id(p)].end for p in batch if id(p) in self._owner]
        if not segments or not ends:
            return
        try:
            self.intents.record(max(ends), segments)
        except OSError as exc:  # uploaded anyway: a crash now may leave an unindexed object
            self._intent_errors.warning(
                "trace log: cannot record an upload intent (%s)", describe(exc)
            )

    def _done(self, batch: list[PendingTrace], finished: bool) -> None:
        if not finished:
            return  # left at stop: those frames stay uncommitted, re-read at the next start
        for pending in batch:
            frame = self._owner.pop(id(pending), None)
            if frame is not None:
                frame.remaining -= 1
        self._advance()

    def _advance(self) -> None:
        frames = self._frames
        end = None
        while frames and frames[0].remaining == 0:
            end = frames.popleft().end
        if not frames and not self._loading and self.reader.position > self.reader.committed:
            # All read is finished: commit where the reader stands, which may be the start
            # of the next segment. Else a segment read to its end would wait for a record
            # in the next one before it could be deleted (forever, on a full disk).
            end = self.reader.position
        if end is not None:
            try:
                self.reader.commit(end)
                self.intents.release(end)
            except OSError as exc:  # retried with the next frame; a restart re-reads more
                self._commit_errors.warning(
                    "trace log: cannot record the committed position (%s)", describe(exc)
                )
            self._progress.set()

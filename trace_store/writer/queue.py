"""What a writer holds in memory: its bounds (:class:`WriterConfig`) and a FIFO of
finished traces within them (:class:`TraceQueue`), shared by the inline writer and the
gateway's side of the writer process."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trace_store.record import PendingTrace


@dataclass(frozen=True, slots=True)
class WriterConfig:
    """Bounds and pacing of the writer."""

    #: Traces held in memory per queue (the gateway's and the writer's). 2,000 keeps
    #: RSS under 2x its sustainable value at 10x overload; the trace log, not memory,
    #: absorbs outages.
    queue_traces: int = 2_000
    queue_bytes: int = 256 * 1024 * 1024
    #: Call records held per queue. Each is a few live container objects that the
    #: garbage collector walks while they wait, so this bounds the pauses of a process
    #: that falls behind as well as its memory (2,000 traces at the call limit would
    #: hold 20 million).
    queue_calls: int = 100_000
    #: A batch is taken when this many traces wait, or when the oldest has waited
    #: ``batch_wait`` seconds. Each handler's traces of a batch are one object: a
    #: longer wait means fewer, larger objects (fewer requests to pay for) and a later
    #: live dot. 0.4 s keeps a dot within half a second at low load and gives a
    #: handler at 20 requests/s 8 traces an object, a busy one hundreds. Up to four
    #: batches are in the writer's hands at once (one encoding, two encoded, one being
    #: stored): 500 keeps the inline writer's RSS at 10x overload under 2x.
    batch_size: int = 500
    batch_wait: float = 0.4
    #: The most bytes of one handler's traces one object holds (a larger trace goes
    #: alone); 0 stores every trace as its own object, as before segments.
    segment_bytes: int = 16 * 1024 * 1024
    upload_concurrency: int = 16
    max_backoff: float = 5.0
    #: A store or Postgres call that has not answered by then counts as failed (a hung
    #: dependency must lead to retries, not to a writer stuck forever).
    io_timeout: float = 10.0


def weight(p: PendingTrace) -> tuple[int, int]:
    """What a queued trace counts against the queue's bounds: call records, body bytes."""
    return len(p.calls or ()), len(p.body) + len(p.response_body)


class TraceQueue:
    """A FIFO of finished traces within :class:`WriterConfig`'s bounds: traces, call
    records and body bytes."""

    def __init__(self, config: WriterConfig) -> None:
        self.config = config
        self._items: deque[PendingTrace] = deque()
        self.calls = 0
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def fits(self, traces: int, calls: int, size: int) -> bool:
        """Whether that much more fits (an empty queue takes anything: one trace over a
        bound must still be able to pass, alone)."""
        cfg = self.config
        return not self._items or (
            len(self._items) + traces <= cfg.queue_traces
            and self.calls + calls <= cfg.queue_calls
            and self.bytes + size <= cfg.queue_bytes
        )

    def push(self, p: PendingTrace) -> bool:
        """Append ``p``; ``False`` when it does not fit."""
        calls, size = weight(p)
        if not self.fits(1, calls, size):
            return False
        self._items.append(p)
        self.calls += calls
        self.bytes += size
        return True

    def pop(self) -> PendingTrace:
        """Take the oldest trace."""
        p = self._items.popleft()
        calls, size = weight(p)
        self.calls -= calls
        self.bytes -= size
        return p

    def take(self, traces: int, calls: int, size: int) -> list[PendingTrace]:
        """The oldest traces up to ``traces`` of them, ``calls`` call records and
        ``size`` body bytes, and at least one (a trace over a bound goes alone)."""
        batch: list[PendingTrace] = []
        taken_calls = taken_size = 0
        while self._items and len(batch) < traces:
            more_calls, more_size = weight(self._items[0])
            if batch and (taken_calls + more_calls > calls or taken_size + more_size > size):
                break
            batch.append(self.pop())
            taken_calls, taken_size = taken_calls + more_calls, taken_size + more_size
        return batch

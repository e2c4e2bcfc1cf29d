"""A bounded local spool for encoded batches while the store or Postgres is down.

SPEC §12: with the store or Postgres down, requests keep being served and traces wait,
in memory and then in a bounded local spool, to be written when it comes back. A
spooled batch is one file holding what the writer had already encoded: object keys and
bytes, index rows, and the few fields of an unmatched request its summary needs. Files
are written atomically (temporary file, fsync, rename), so a batch survives a restart
of the process; a reader claims a file by renaming it, so two writers sharing a data dir
never replay the same batch at once (and replaying twice would be harmless anyway:
puts and commits are idempotent). The files are pickles: the spool directory lives in
the data dir, which is as trusted as the secret and the database kept there.
"""

from __future__ import annotations

import os
import pickle
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from trace_store.document import PendingTrace
    from trace_store.index import IndexRow

SUFFIX = ".batch"


@dataclass(slots=True)
class SpooledItem:
    """One trace of a spooled batch: where it goes, its bytes, and what Postgres gets."""

    kind: str
    key: str
    data: bytes
    row: IndexRow | None
    unmatched: PendingTrace | None


class Spool:
    """Batch files under ``directory``, at most ``max_bytes`` in all."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        # A claim left by a process that died is a batch like any other: take it back.
        # (Were the claimant alive and sharing the data dir, the batch would be replayed
        # twice, which the idempotent puts and commits make harmless.)
        for claimed in directory.glob(f"*{SUFFIX}.claimed-*"):
            claimed.rename(claimed.with_name(claimed.name.split(".claimed-")[0]))
        self.bytes_used = sum(p.stat().st_size for p in directory.glob(f"*{SUFFIX}"))

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob(f"*{SUFFIX}"))

    def put(self, items: list[SpooledItem]) -> bool:
        """Park a batch durably; ``False`` when the spool is full (nothing written)."""
        blob = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
        if self.bytes_used + len(blob) > self.max_bytes:
            return False
        # Names sort by time, so the oldest batch is replayed first.
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}{SUFFIX}"
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.directory / name)
        self.bytes_used += len(blob)
        return True

    def claim_oldest(self) -> tuple[Path, list[SpooledItem]] | None:
        """Take the oldest batch for replay, or ``None`` when the spool is empty."""
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            claimed = path.with_name(f"{path.name}.claimed-{os.getpid()}")
            try:
                path.rename(claimed)
            except FileNotFoundError:
                continue  # another writer took it
            items: list[SpooledItem] = pickle.loads(claimed.read_bytes())
            return claimed, items
        return None

    def release(self, claimed: Path) -> None:
        """Give a claimed batch back (its replay failed; it will be tried again)."""
        claimed.rename(claimed.with_name(claimed.name.split(".claimed-")[0]))

    def done(self, claimed: Path) -> None:
        """Forget a batch whose replay was stored and committed."""
        size = claimed.stat().st_size
        claimed.unlink()
        self.bytes_used = max(0, self.bytes_used - size)

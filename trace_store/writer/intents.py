"""Upload intents: which objects a batch is about to upload, kept until the log is
committed past the batch, so that a restart finds objects it uploaded but never indexed.

A segment's contents depend on how the traces were batched, and a batch re-read after
a crash is batched anew. Without a record of the first attempt, its segments would be
objects no index row names, and their traces would be stored twice. So before the
writer uploads a batch, the consumer writes one small file under ``<log>/intents/``:
the batch's end in the log and, per object, its key and trace ids (a plain ``write``
like the log's: ``kill -9`` loses nothing the kernel accepted). The file is deleted once
the committed position passes that end. At start-up (:func:`recover`) every file left
is read back: an object that exists is indexed from its own bytes (as ``strata index
rebuild`` would), and its traces are skipped when the log is read again.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Final

import orjson

from trace_store import keys
from trace_store.background import Retries, until_done
from trace_store.db.index import indexed_keys
from trace_store.errors import InvalidInput, ObjectNotFound, describe
from trace_store.writer.commit import Batch, commit_batch
from trace_store.writer.log import Position
from trace_store.writer.segments import rows_of

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from trace_store.backends.base import ObjectStore
    from trace_store.db import Pool
    from trace_store.writer.segments import Encoded

log = logging.getLogger("strata.log")

DIRECTORY: Final = "intents"


class Intents:
    """The intent files of one log directory, oldest first."""

    def __init__(self, log_dir: Path) -> None:
        self.directory = log_dir / DIRECTORY
        names: list[str] = []
        try:  # an unwritable log directory is reported by the log itself
            self.directory.mkdir(exist_ok=True)
            names = os.listdir(self.directory)
        except OSError as exc:
            log.warning("trace log: no upload intents in %s (%s)", self.directory, describe(exc))
        self._held: list[tuple[Position, str]] = sorted(
            (_position_of(name), name) for name in names if _is_intent(name)
        )
        self._next = 1 + max((int(name.split("-")[2][:8]) for _, name in self._held), default=0)

    def left(self) -> list[tuple[Position, list[tuple[str, list[str]]]]]:
        """The intents a previous run left: end position, and (key, trace ids) per object.
        Unreadable files (cut short by a crash) are left out: their upload never began."""
        found = []
        for end, name in self._held:
            try:
                objects = orjson.loads((self.directory / name).read_bytes())
                found.append((end, [(str(key), [str(t) for t in ids]) for key, ids in objects]))
            except (OSError, orjson.JSONDecodeError, ValueError, TypeError) as exc:
                log.warning("trace log: intent %s is unreadable (%s); ignored", name, exc)
        return found

    def record(self, end: Position, objects: Sequence[Encoded]) -> None:
        """Note that ``objects`` (a batch ending at ``end`` in the log) are being uploaded."""
        name = f"{end.segment:020d}-{end.offset:012d}-{self._next:08d}.json"
        self._next += 1
        body = orjson.dumps([[item.key, [row.trace_id for row in item.rows]] for item in objects])
        fd = os.open(self.directory / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, body)
        finally:
            os.close(fd)
        self._held.append((end, name))
        self._held.sort()

    def release(self, committed: Position) -> None:
        """Delete the intents of batches wholly before ``committed``."""
        while self._held and self._held[0][0] <= committed:
            _, name = self._held.pop(0)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.directory / name)


def _is_intent(name: str) -> bool:
    parts = name.removesuffix(".json").split("-")
    return name.endswith(".json") and len(parts) == 3 and all(p.isdigit() for p in parts)


def _position_of(name: str) -> Position:
    segment, offset, _ = name.removesuffix(".json").split("-")
    return Position(int(segment), int(offset))


async def recover(
    intents: Intents, store: ObjectStore, pool: Pool | None, committed: Position
) -> set[str]:
    """Index every object a previous run uploaded and did not index; returns the trace
    ids that are stored and indexed already, to skip when the log is read again.
    Retries (with backoff) while the store or Postgres is unreachable."""
    left = [objects for end, objects in intents.left() if end > committed]
    intents.release(committed)
    if not left or pool is None:
        return set()
    objects = [item for entries in left for item in entries]
    return await until_done(
        lambda: _recover(store, pool, objects), Retries("writer recovery", log, base=0.2, cap=5.0)
    )


async def _recover(
    store: ObjectStore, pool: Pool, objects: list[tuple[str, list[str]]]
) -> set[str]:
    indexed = await indexed_keys(pool, [key for key, _ in objects])
    done: set[str] = set()
    batch = Batch()
    for key, trace_ids in objects:
        if key in indexed:
            done.update(trace_ids)
            continue
        try:
            keys.check_key(key)
            data = await store.get(key)
        except (ObjectNotFound, InvalidInput):
            continue  # never uploaded: the traces are written again from the log
        try:
            rows = rows_of(key, data)
        except InvalidInput as exc:  # a local file torn by the crash: written anew
            log.warning(
                "trace log: %s does not decode (%s); its traces are written again",
                key,
                describe(exc),
            )
            continue
        batch.rows.extend(rows)
        done.update(row.trace_id for row in rows)
    if batch.rows:
        await commit_batch(pool, batch)
        log.info("trace log: indexed %d traces uploaded before a restart", len(batch.rows))
    return done

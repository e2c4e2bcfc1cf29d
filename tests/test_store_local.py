"""The local-directory store against the conformance suite; the backdoor is the disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import orjson
import pytest

from tests.store_conformance import KEYS, SelfServedSignedUrls, StoreFactory, StoreTests
from trace_store.backends.base import ObjectStore
from trace_store.backends.local import LocalStore
from trace_store.backends.signing import UrlSigner


def _root(store: ObjectStore) -> Path:
    assert isinstance(store, LocalStore)
    return store.root


class TestLocalStore(SelfServedSignedUrls, StoreTests):
    machine_examples: ClassVar[int] = 30
    signer = UrlSigner(b"local-store-test-secret-32-bytes", "http://127.0.0.1:8001")

    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        return lambda prefix: LocalStore(tmp_path / prefix, self.signer)

    def raw_get(self, store: ObjectStore, key: str) -> bytes | None:
        path = _root(store) / key
        return path.read_bytes() if path.is_file() else None

    def raw_keys(self, store: ObjectStore) -> set[str]:
        root = _root(store)
        found = set()
        for dirpath, dirnames, filenames in os.walk(root):
            if Path(dirpath) == root:
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            found.update(Path(dirpath, n).relative_to(root).as_posix() for n in filenames)
        return found

    def raw_content_headers(self, store: ObjectStore, key: str) -> tuple[str | None, str | None]:
        sidecar = _root(store) / ".meta" / (key + ".json")
        if not sidecar.exists():  # no sidecar: a trace's own headers
            return "application/json", "zstd"
        meta = orjson.loads(sidecar.read_bytes())
        return meta["type"], meta["encoding"]

    def raw_is_pinned(self, store: ObjectStore, key: str) -> bool:
        return (_root(store) / ".pins" / key).is_file()

    async def test_no_temporary_files_are_left_behind(self, store: ObjectStore) -> None:
        await store.put_new(KEYS[0], b"a")
        with pytest.raises(FileExistsError):
            await store.put_new(KEYS[0], b"b")
        assert list((_root(store) / ".tmp").iterdir()) == []

    async def test_a_batch_write_that_fails_leaves_no_file(
        self, store: ObjectStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Batch puts create files in place; a write that fails (a full disk) must not
        # leave a torn object behind, and the key must stay free for the retry.
        def disk_full(fd: int, data: bytes) -> int:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("trace_store.backends.local.os.write", disk_full)
        results = await store.put_many([(KEYS[0], b"object")])
        assert isinstance(results[0], OSError)
        assert self.raw_get(store, KEYS[0]) is None
        monkeypatch.undo()
        assert await store.put_many([(KEYS[0], b"object")]) == [None]
        assert self.raw_get(store, KEYS[0]) == b"object"

    async def test_a_batch_write_torn_by_a_crash_is_completed_by_the_repeated_put(
        self, store: ObjectStore
    ) -> None:
        # kill -9 inside a write leaves a prefix of the object's bytes; the writer
        # repeats the put after its restart (the trace log re-reads the frame).
        path = _root(store) / KEYS[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"obj")
        assert await store.put_many([(KEYS[0], b"object")]) == [None]
        assert self.raw_get(store, KEYS[0]) == b"object"
        path.write_bytes(b"other")  # not a prefix: other bytes, refused as before
        (result,) = await store.put_many([(KEYS[0], b"object")])
        assert isinstance(result, FileExistsError)

"""The in-memory store against the conformance suite; the backdoor is its dict."""

from __future__ import annotations

from typing import ClassVar

import pytest

from tests.store_conformance import SelfServedSignedUrls, StoreFactory, StoreTests
from trace_store.backends.base import ObjectStore
from trace_store.backends.memory import MemoryStore
from trace_store.backends.signing import UrlSigner


def _objects(store: ObjectStore) -> MemoryStore:
    assert isinstance(store, MemoryStore)
    return store


class TestMemoryStore(SelfServedSignedUrls, StoreTests):
    machine_examples: ClassVar[int] = 60
    signer = UrlSigner(b"memory-store-test-secret-32bytes", "http://127.0.0.1:8001")

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        return lambda prefix: MemoryStore(self.signer)

    def raw_get(self, store: ObjectStore, key: str) -> bytes | None:
        stored = _objects(store).objects.get(key)
        return None if stored is None else stored.data

    def raw_keys(self, store: ObjectStore) -> set[str]:
        return set(_objects(store).objects)

    def raw_content_headers(self, store: ObjectStore, key: str) -> tuple[str | None, str | None]:
        stored = _objects(store).objects[key]
        return stored.content_type, stored.content_encoding

    def raw_is_pinned(self, store: ObjectStore, key: str) -> bool:
        return _objects(store).objects[key].pinned

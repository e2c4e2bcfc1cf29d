"""One conformance suite for every object-store backend (after zarr's ``testing/store.py``).

A backend's test module subclasses :class:`StoreTests`, provides a ``store_factory``
fixture and the *backdoor* helpers, which read the raw medium (the dict, the files, the
bucket through a plain SDK client) rather than trusting the store under test. The
suite asks the store's capability ClassVars what to expect, and a Hypothesis state
machine runs random operations against the store and a dict.

A few expectations depend on the *server* a test runs against, not on the backend:
``server_enforces_create_only`` is false for gcp-storage-emulator, which ignores
``ifGenerationMatch``. There the suite checks the request the client sent instead
(:meth:`StoreTests.assert_sent_create_only`).
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from trace_store.backends.base import ObjectStore
from trace_store.backends.signing import UrlSigner
from trace_store.errors import AlreadyExists, Forbidden, InvalidInput, ObjectNotFound

#: A factory for a store on a fresh, empty key prefix of the test's medium.
StoreFactory = Callable[[str], ObjectStore]

KEYS = (
    "traces/shop/get_user/a.json.zst",
    "traces/shop/get_user/b.json.zst",
    "traces/shop/create-order/a.json.zst",
    "unmatched/shop/c.json.zst",
)
PREFIXES = ("", "traces/", "traces/shop/get_user/", "traces/shop/get", "unmatched/")
BAD_KEYS = ("../escape", "a/../../b", "/etc/passwd", "a\x00b", "", "a//b", ".hidden", "a/./b")


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    """A plain, credential-less GET: status, headers (lower-cased) and the raw body."""
    request = urllib.request.Request(url, headers={"Accept-Encoding": "identity"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return response.status, headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


class StoreTests:
    """Behaviour every backend shares. Subclasses supply the medium."""

    #: The test server refuses a create-only write to an existing key by itself.
    server_enforces_create_only: ClassVar[bool] = True
    #: The test server answers a signed GET with the stored Content-Encoding.
    server_sends_content_encoding: ClassVar[bool] = True
    #: Hypothesis examples for the state machine (keep modest for network servers).
    machine_examples: ClassVar[int] = 10

    # -- what a subclass provides -----------------------------------------------------

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        """A factory making a store on a fresh prefix of a fresh medium."""
        raise NotImplementedError

    def raw_get(self, store: ObjectStore, key: str) -> bytes | None:
        """The bytes stored under ``key``, read from the medium; ``None`` if absent."""
        raise NotImplementedError

    def raw_keys(self, store: ObjectStore) -> set[str]:
        """Every key present in the medium under the store's prefix."""
        raise NotImplementedError

    def raw_content_headers(self, store: ObjectStore, key: str) -> tuple[str | None, str | None]:
        """(Content-Type, Content-Encoding) as recorded by the medium."""
        raise NotImplementedError

    def raw_is_pinned(self, store: ObjectStore, key: str) -> bool:
        """Whether the medium marks ``key`` pinned (flag backends only)."""
        raise NotImplementedError

    def raw_lease_time(self, store: ObjectStore, key: str) -> datetime:
        """When the object's lease was last renewed (lease backends only)."""
        raise NotImplementedError

    def assert_sent_create_only(self, store: ObjectStore, key: str) -> None:
        """For servers that do not enforce create-only: check the request asked for it."""
        raise NotImplementedError

    async def assert_signed_url_serves(self, store: ObjectStore, key: str, data: bytes) -> None:
        """Check a signed URL for ``key``: fetched over HTTP, or verified by the signer."""
        signed = await store.sign_get(key, timedelta(minutes=15))
        assert signed.expires_at > datetime.now(UTC) + timedelta(minutes=14)
        status, headers, body = await asyncio.to_thread(fetch, signed.url)
        assert status == 200, body[:300]
        assert body == data
        if store.supports_content_encoding and self.server_sends_content_encoding:
            assert headers.get("content-encoding") == "zstd"

    # -- fixtures built on the above --------------------------------------------------

    @pytest.fixture
    async def store(self, store_factory: StoreFactory) -> AsyncIterator[ObjectStore]:
        """A store on a fresh prefix, closed after the test."""
        made = store_factory(f"p-{uuid.uuid4().hex[:8]}")
        yield made
        await made.close()

    # -- create-only put, get, head ---------------------------------------------------

    async def test_put_new_stores_exact_bytes(self, store: ObjectStore) -> None:
        data = bytes(range(256)) * 3 + b"\x00\xff"
        await store.put_new(KEYS[0], data)
        assert self.raw_get(store, KEYS[0]) == data
        assert await store.get(KEYS[0]) == data

    async def test_second_put_new_fails_and_keeps_original_bytes(self, store: ObjectStore) -> None:
        await store.put_new(KEYS[0], b"original")
        if not self.server_enforces_create_only:
            self.assert_sent_create_only(store, KEYS[0])
            return
        with pytest.raises(AlreadyExists):
            await store.put_new(KEYS[0], b"intruder")
        assert self.raw_get(store, KEYS[0]) == b"original"
        assert await store.get(KEYS[0]) == b"original"

    async def test_put_or_verify_accepts_a_retry_of_the_same_bytes(
        self, store: ObjectStore
    ) -> None:
        await store.put_or_verify(KEYS[0], b"same")
        if self.server_enforces_create_only:
            await store.put_or_verify(KEYS[0], b"same")
            with pytest.raises(AlreadyExists):
                await store.put_or_verify(KEYS[0], b"different")
        assert self.raw_get(store, KEYS[0]) == b"same"

    async def test_put_many_stores_a_batch_and_reports_each_failure(
        self, store: ObjectStore
    ) -> None:
        await store.put_new(KEYS[1], b"already there")
        results = await store.put_many(
            [(KEYS[0], b"zero"), (KEYS[1], b"already there"), (KEYS[2], b"two")]
        )
        assert results == [None, None, None]  # a retry of identical bytes is success
        if self.server_enforces_create_only:
            results = await store.put_many([(KEYS[0], b"different"), (KEYS[3], b"three")])
            assert isinstance(results[0], AlreadyExists)
            assert results[1] is None
        else:
            assert await store.put_many([(KEYS[3], b"three")]) == [None]
        assert self.raw_get(store, KEYS[0]) == b"zero"
        assert self.raw_get(store, KEYS[2]) == b"two"
        assert self.raw_get(store, KEYS[3]) == b"three"
        assert self.raw_content_headers(store, KEYS[3]) == ("application/json", "zstd")

    async def test_objects_carry_content_type_and_zstd_encoding(self, store: ObjectStore) -> None:
        await store.put_new(KEYS[0], b"\x28\xb5\x2f\xfd")
        assert self.raw_content_headers(store, KEYS[0]) == ("application/json", "zstd")
        info = await store.head(KEYS[0])
        assert (info.key, info.size) == (KEYS[0], 4)
        assert (info.content_type, info.content_encoding) == ("application/json", "zstd")

    async def test_missing_object_is_object_not_found(self, store: ObjectStore) -> None:
        with pytest.raises(ObjectNotFound):
            await store.get(KEYS[0])
        with pytest.raises(ObjectNotFound):
            await store.get(KEYS[0], byte_range=(0, 3))
        with pytest.raises(ObjectNotFound):
            await store.head(KEYS[0])
        assert not await store.exists(KEYS[0])

    async def test_ranged_get_returns_inclusive_byte_range(self, store: ObjectStore) -> None:
        data = bytes(range(100))
        await store.put_new(KEYS[0], data)
        assert await store.get(KEYS[0], byte_range=(0, 0)) == data[:1]
        assert await store.get(KEYS[0], byte_range=(10, 19)) == data[10:20]
        assert await store.get(KEYS[0], byte_range=(90, 500)) == data[90:]
        assert await store.get(KEYS[0], byte_range=(100, 120)) == b""
        with pytest.raises(InvalidInput):
            await store.get(KEYS[0], byte_range=(5, 4))

    # -- list -------------------------------------------------------------------------

    async def test_list_by_prefix(self, store: ObjectStore) -> None:
        for i, key in enumerate(KEYS):
            await store.put_new(key, b"x" * (i + 1))
        listed = await store.list_objects("traces/shop/get_user/")
        assert [(o.key, o.size) for o in listed] == [(KEYS[0], 1), (KEYS[1], 2)]
        assert [o.key for o in await store.list_objects("traces/shop/get")] == sorted(KEYS[:2])
        assert [o.key for o in await store.list_objects("")] == sorted(KEYS)
        assert await store.list_objects("traces/other/") == []

    # -- copy -------------------------------------------------------------------------

    async def test_copy_is_server_side_and_create_only(self, store: ObjectStore) -> None:
        await store.put_new(KEYS[0], b"source")
        await store.copy(KEYS[0], KEYS[1])
        assert self.raw_get(store, KEYS[1]) == b"source"
        assert self.raw_content_headers(store, KEYS[1]) == ("application/json", "zstd")
        await store.put_new(KEYS[2], b"taken")
        if not self.server_enforces_create_only:
            self.assert_sent_create_only(store, KEYS[1])
            return
        with pytest.raises(AlreadyExists):
            await store.copy(KEYS[0], KEYS[2])
        assert self.raw_get(store, KEYS[2]) == b"taken"

    async def test_copy_of_missing_source_is_object_not_found(self, store: ObjectStore) -> None:
        with pytest.raises(ObjectNotFound):
            await store.copy(KEYS[0], KEYS[1])
        assert self.raw_keys(store) == set()

    # -- pin and unpin ----------------------------------------------------------------

    async def test_pin_and_unpin(self, store: ObjectStore) -> None:
        await store.put_new(KEYS[0], b"data")
        if store.pins_are_leases:
            written = self.raw_lease_time(store, KEYS[0])
            await asyncio.sleep(0.01)
            await store.pin(KEYS[0])
            renewed = self.raw_lease_time(store, KEYS[0])
            assert renewed > written
            await store.unpin(KEYS[0])  # a lease is not revoked, it runs out
            assert self.raw_lease_time(store, KEYS[0]) == renewed
        else:
            assert not self.raw_is_pinned(store, KEYS[0])
            await store.pin(KEYS[0])
            await store.pin(KEYS[0])
            assert self.raw_is_pinned(store, KEYS[0])
            await store.unpin(KEYS[0])
            assert not self.raw_is_pinned(store, KEYS[0])
        assert self.raw_get(store, KEYS[0]) == b"data"
        with pytest.raises(ObjectNotFound):
            await store.pin(KEYS[1])
        with pytest.raises(ObjectNotFound):
            await store.unpin(KEYS[1])

    async def test_copy_of_pinned_object_is_expirable(self, store: ObjectStore) -> None:
        await store.put_new(KEYS[0], b"data")
        await store.pin(KEYS[0])
        before = datetime.now(UTC) - timedelta(seconds=1)
        await store.copy(KEYS[0], KEYS[1])
        if store.pins_are_leases:
            assert self.raw_lease_time(store, KEYS[1]) >= before
        else:
            assert not self.raw_is_pinned(store, KEYS[1])

    # -- signed URLs ------------------------------------------------------------------

    async def test_signed_url_serves_exact_bytes(self, store: ObjectStore) -> None:
        data = b"\x28\xb5\x2f\xfd" + bytes(range(200))
        await store.put_new(KEYS[0], data)
        await self.assert_signed_url_serves(store, KEYS[0], data)

    # -- bad keys ---------------------------------------------------------------------

    async def test_bad_keys_are_invalid_input_and_write_nothing(self, store: ObjectStore) -> None:
        await store.put_new(KEYS[0], b"seed")
        for key in BAD_KEYS:
            calls = [
                store.put_new(key, b"x"),
                store.get(key),
                store.head(key),
                store.copy(KEYS[0], key),
                store.copy(key, KEYS[1]),
                store.pin(key),
                store.unpin(key),
                store.sign_get(key, timedelta(minutes=1)),
            ]
            for call in calls:
                with pytest.raises(InvalidInput):
                    await call
        with pytest.raises(InvalidInput):
            await store.list_objects("../")
        assert self.raw_keys(store) == {KEYS[0]}
        assert self.raw_get(store, KEYS[0]) == b"seed"

    # -- random operations against a dict --------------------------------------------

    def test_state_machine_matches_a_dict(self, store_factory: StoreFactory) -> None:
        suite = self

        class Machine(StoreMachine):
            def __init__(self) -> None:
                super().__init__(suite, store_factory)

        run_state_machine_as_test(
            Machine,
            settings=settings(
                max_examples=self.machine_examples,
                stateful_step_count=12,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )


class StoreMachine(RuleBasedStateMachine):
    """Random puts, gets, lists, copies and pins, checked against a dict and the medium."""

    def __init__(self, suite: StoreTests, factory: StoreFactory) -> None:
        super().__init__()
        self.suite = suite
        self.runner = asyncio.Runner()
        self.store = factory(f"m-{uuid.uuid4().hex[:8]}")
        self.model: dict[str, bytes] = {}
        self.pinned: set[str] = set()

    def run(self, awaitable: Any) -> Any:
        return self.runner.run(awaitable)

    def teardown(self) -> None:
        self.run(self.store.close())
        self.runner.close()

    def _can_write(self, key: str) -> bool:
        # A server that ignores create-only preconditions would overwrite; those writes
        # are covered by the request checks instead.
        return key not in self.model or self.suite.server_enforces_create_only

    @rule(key=st.sampled_from(KEYS), data=st.binary(max_size=64))
    def put_new(self, key: str, data: bytes) -> None:
        if not self._can_write(key):
            return
        if key in self.model:
            with pytest.raises(AlreadyExists):
                self.run(self.store.put_new(key, data))
        else:
            self.run(self.store.put_new(key, data))
            self.model[key] = data

    @rule(key=st.sampled_from(KEYS))
    def get(self, key: str) -> None:
        if key in self.model:
            assert self.run(self.store.get(key)) == self.model[key]
        else:
            with pytest.raises(ObjectNotFound):
                self.run(self.store.get(key))

    @rule(key=st.sampled_from(KEYS), start=st.integers(0, 70), length=st.integers(1, 70))
    def ranged_get(self, key: str, start: int, length: int) -> None:
        end = start + length - 1
        if key in self.model:
            got = self.run(self.store.get(key, byte_range=(start, end)))
            assert got == self.model[key][start : end + 1]

    @rule(key=st.sampled_from(KEYS))
    def head(self, key: str) -> None:
        if key in self.model:
            assert self.run(self.store.head(key)).size == len(self.model[key])
        else:
            assert not self.run(self.store.exists(key))

    @rule(prefix=st.sampled_from(PREFIXES))
    def list_objects(self, prefix: str) -> None:
        listed = self.run(self.store.list_objects(prefix))
        expected = sorted((k, len(v)) for k, v in self.model.items() if k.startswith(prefix))
        assert [(o.key, o.size) for o in listed] == expected

    @rule(src=st.sampled_from(KEYS), dst=st.sampled_from(KEYS))
    def copy(self, src: str, dst: str) -> None:
        if not self._can_write(dst):
            return
        if src not in self.model:
            # Both are true when dst exists too; backends may check either first.
            expected = (ObjectNotFound, AlreadyExists) if dst in self.model else ObjectNotFound
            with pytest.raises(expected):
                self.run(self.store.copy(src, dst))
        elif dst in self.model:
            with pytest.raises(AlreadyExists):
                self.run(self.store.copy(src, dst))
        else:
            self.run(self.store.copy(src, dst))
            self.model[dst] = self.model[src]

    @rule(key=st.sampled_from(KEYS), pin=st.booleans())
    def pin_or_unpin(self, key: str, pin: bool) -> None:
        call = self.store.pin if pin else self.store.unpin
        if key not in self.model:
            with pytest.raises(ObjectNotFound):
                self.run(call(key))
            return
        self.run(call(key))
        if pin:
            self.pinned.add(key)
        elif not self.store.pins_are_leases:
            self.pinned.discard(key)
        if not self.store.pins_are_leases:
            assert self.suite.raw_is_pinned(self.store, key) == pin

    @invariant()
    def medium_matches_model(self) -> None:
        assert self.suite.raw_keys(self.store) == set(self.model)


class SelfServedSignedUrls:
    """For stores whose signed URLs strata's editor server serves (memory, local).

    The HTTP fetch belongs to the gateway tests; here the signer must accept exactly
    the URL it issued and refuse tampered, expired, re-pointed and foreign-key URLs.
    """

    signer: UrlSigner
    raw_get: Callable[[ObjectStore, str], bytes | None]

    async def assert_signed_url_serves(self, store: ObjectStore, key: str, data: bytes) -> None:
        signed = await store.sign_get(key, timedelta(minutes=15))
        parts = urlsplit(signed.url)
        assert parts.path.startswith("/objects/")
        url_key = unquote(parts.path.removeprefix("/objects/"))
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        assert self.signer.verify(url_key, query["expires"], query["sig"]) == key
        assert self.raw_get(store, url_key) == data
        assert signed.expires_at.timestamp() == int(query["expires"])

        tampered = ("0" if query["sig"][0] != "0" else "1") + query["sig"][1:]
        later = str(int(query["expires"]) + 3600)
        other = UrlSigner(b"another-secret-of-32-bytes......", self.signer.base_url)
        refusals = [
            lambda: self.signer.verify(url_key, query["expires"], tampered),
            lambda: self.signer.verify(url_key, later, query["sig"]),
            lambda: self.signer.verify(KEYS[3], query["expires"], query["sig"]),
            lambda: self.signer.verify("../" + url_key, query["expires"], query["sig"]),
            lambda: other.verify(url_key, query["expires"], query["sig"]),
            lambda: self.signer.verify(
                url_key, query["expires"], query["sig"], now=signed.expires_at.timestamp() + 1
            ),
        ]
        for refuse in refusals:
            with pytest.raises(Forbidden):
                refuse()

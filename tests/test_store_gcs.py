"""The GCS store against the conformance suite on gcp-storage-emulator.

The backdoor is a plain google-cloud-storage client. The emulator stores metadata,
customTime and CORS, but does not enforce ``ifGenerationMatch``, sends no
Content-Encoding on downloads and checks no signatures. So:

* create-only (put and copy) is checked by reading the request the store sent
  (``ifGenerationMatch=0``), through a recording HTTP session;
* ``Content-Encoding: zstd`` is checked in the object's stored metadata;
* signatures are checked against Google's published V4 vectors (test_signed_urls.py),
  while the emulator shows that the URL points at it and serves the exact bytes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from tests.fixtures_cloud import DUMMY_KEY, gcs_raw_client
from tests.store_conformance import KEYS, StoreFactory, StoreTests
from trace_store.backends.base import ObjectStore
from trace_store.backends.gcs import GCSStore
from trace_store.backends.gcs_client import GCSSettings, _load_key
from trace_store.config import Config
from trace_store.errors import AlreadyExists, ConfigError, ObjectNotFound, StoreUnavailable


class RecordingSession(requests.Session):
    """A requests session that keeps (method, url, body) of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, bytes]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        data = kwargs.get("data")
        body = data if isinstance(data, bytes) else str(data or "").encode()
        self.sent.append((str(method), str(url), body))
        return super().request(method, url, *args, **kwargs)


def _gcs(store: ObjectStore) -> GCSStore:
    assert isinstance(store, GCSStore)
    return store


class TestGCSStore(StoreTests):
    server_enforces_create_only: ClassVar[bool] = False
    server_sends_content_encoding: ClassVar[bool] = False
    machine_examples: ClassVar[int] = 15
    raw: storage.Client
    session: RecordingSession

    @pytest.fixture
    def store_factory(self, gcs_emulator: str, gcs_bucket: str) -> StoreFactory:
        self.raw = gcs_raw_client(gcs_emulator)
        self.session = RecordingSession()
        key = _load_key(str(DUMMY_KEY))

        def make(prefix: str) -> GCSStore:
            client = storage.Client(
                project="strata-test",
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": gcs_emulator},
                _http=self.session,
            )
            settings = GCSSettings(gcs_bucket, prefix, str(DUMMY_KEY), gcs_emulator)
            return GCSStore(settings, client=client, signing_credentials=key)

        return make

    def _blob(self, store: ObjectStore, key: str) -> storage.Blob | None:
        gcs = _gcs(store)
        return self.raw.bucket(gcs.settings.bucket).get_blob(gcs.full_key(key))

    def raw_get(self, store: ObjectStore, key: str) -> bytes | None:
        gcs = _gcs(store)
        blob = self.raw.bucket(gcs.settings.bucket).blob(gcs.full_key(key))
        try:
            return bytes(blob.download_as_bytes(raw_download=True))
        except gexc.NotFound:
            return None

    def raw_keys(self, store: ObjectStore) -> set[str]:
        gcs = _gcs(store)
        prefix = gcs.full_key("")
        blobs = self.raw.list_blobs(gcs.settings.bucket, prefix=prefix)
        return {blob.name.removeprefix(prefix) for blob in blobs}

    def raw_content_headers(self, store: ObjectStore, key: str) -> tuple[str | None, str | None]:
        blob = self._blob(store, key)
        assert blob is not None
        return blob.content_type, blob.content_encoding

    def raw_lease_time(self, store: ObjectStore, key: str) -> datetime:
        blob = self._blob(store, key)
        assert blob is not None
        assert blob.custom_time is not None
        return blob.custom_time

    def assert_sent_create_only(self, store: ObjectStore, key: str) -> None:
        name = _gcs(store).full_key(key)
        writes = [
            parse_qs(urlsplit(url).query)
            for method, url, body in self.session.sent
            if method == "POST" and (quote(name, safe="") in url or name.encode() in body)
        ]
        assert writes, f"no write of {name} was sent"
        assert all(query.get("ifGenerationMatch") == ["0"] for query in writes), writes

    # -- GCS-specific -----------------------------------------------------------------

    async def test_new_objects_start_a_lease_at_creation(self, store: ObjectStore) -> None:
        await store.put_new(KEYS[0], b"x")
        lease = self.raw_lease_time(store, KEYS[0])
        blob = self._blob(store, KEYS[0])
        assert blob is not None
        assert blob.time_created is not None
        assert abs((lease - blob.time_created).total_seconds()) < 5

    async def test_signed_url_is_v4_and_points_at_the_emulator(
        self, store: ObjectStore, gcs_emulator: str
    ) -> None:
        await store.put_new(KEYS[0], b"x")
        url = (await store.sign_get(KEYS[0], timedelta(minutes=15))).url
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        assert f"{parts.scheme}://{parts.netloc}" == gcs_emulator
        assert parts.path == f"/{_gcs(store).settings.bucket}/{_gcs(store).full_key(KEYS[0])}"
        assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
        assert query["X-Goog-Expires"] == ["900"]
        assert query["X-Goog-SignedHeaders"] == ["host"]
        assert len(query["X-Goog-Signature"][0]) == 512  # RSA-2048, hex

    async def test_list_follows_pagination(self, store: ObjectStore) -> None:
        _gcs(store).list_page_size = 2
        keys = [f"traces/shop/h/{i:02d}.json.zst" for i in range(7)]
        for key in keys:
            await store.put_new(key, b"x")
        assert [o.key for o in await store.list_objects("traces/shop/h/")] == keys
        # The emulator ignores maxResults and answers in one page, so only the request
        # shows the page size; following nextPageToken is the client library's loop.
        pages = [url for m, url, _ in self.session.sent if m == "GET" and "/o?" in url]
        assert pages
        assert all(parse_qs(urlsplit(url).query)["maxResults"] == ["2"] for url in pages)

    async def test_set_cors_writes_the_bucket_cors(self, store: ObjectStore) -> None:
        await store.set_cors(["http://editor.example"])
        bucket = self.raw.get_bucket(_gcs(store).settings.bucket)
        assert bucket.cors == [
            {
                "origin": ["http://editor.example"],
                "method": ["GET", "HEAD"],
                "responseHeader": [
                    "Content-Encoding",
                    "Content-Length",
                    "Content-Range",
                    "Content-Type",
                    "ETag",
                ],
                "maxAgeSeconds": 3600,
            }
        ]

    async def test_check_passes_with_bucket_and_signing_key(self, store: ObjectStore) -> None:
        await store.check()


def test_provider_errors_map_to_the_error_tree() -> None:
    """The emulator never answers 412 or 503, so the mapping is checked directly."""
    store = GCSStore(
        GCSSettings("b"),
        client=storage.Client(project="p", credentials=AnonymousCredentials()),
    )
    assert isinstance(store._translate(gexc.PreconditionFailed("taken"), "k"), AlreadyExists)
    assert isinstance(store._translate(gexc.NotFound("gone"), "k"), ObjectNotFound)
    assert isinstance(store._translate(gexc.ServiceUnavailable("busy"), "k"), StoreUnavailable)
    assert isinstance(store._translate(requests.ConnectionError("down"), "k"), StoreUnavailable)
    assert isinstance(store._translate(gexc.Forbidden("no"), "k"), ConfigError)


async def test_from_url_honours_storage_emulator_host(
    gcs_emulator: str, gcs_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.removeprefix("http://"))
    store = GCSStore.from_url(gcs_bucket, "pre", {"credentials": str(DUMMY_KEY)}, Config())
    try:
        await store.put_new(KEYS[0], b"via emulator")
        blob = gcs_raw_client(gcs_emulator).bucket(gcs_bucket).get_blob(f"pre/{KEYS[0]}")
        assert blob is not None
        assert blob.download_as_bytes() == b"via emulator"
        url = (await store.sign_get(KEYS[0], timedelta(minutes=1))).url
        assert url.startswith(f"{gcs_emulator}/{gcs_bucket}/pre/")
    finally:
        await store.close()

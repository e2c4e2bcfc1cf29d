"""Google Cloud Storage as an object store, on google-cloud-storage.

The client is blocking, so every call runs in the store's thread pool. Create-only
writes send ``ifGenerationMatch=0``: GCS refuses them with 412 when the name is taken.

Lifecycle (SPEC §10): objects are written with ``customTime`` = now, and the bucket
rule deletes them ``daysSinceCustomTime >= retain_days``. ``customTime`` may only move
forward, so a pin is a *lease*: :meth:`GCSStore.pin` moves ``customTime`` to now, and a
periodic task re-pins pinned objects before the lease runs out. :meth:`GCSStore.unpin`
does nothing; an object that is no longer renewed expires at most ``retain_days``
after its last renewal.

Set ``STORAGE_EMULATOR_HOST`` to talk to an emulator: data calls are then anonymous,
but signing URLs still needs a service-account key (``?credentials=/path/key.json``),
and signed URLs point at the emulator.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests
from google.api_core import exceptions as gexc
from google.auth.exceptions import RefreshError, TransportError

from trace_store.backends.base import LifecycleBucket, LifecycleObject, ObjectInfo, SignedURL
from trace_store.backends.blocking import BlockingClientStore
from trace_store.backends.gcs_client import (
    RETRY,
    TIMEOUT,
    GCSSettings,
    make_client,
    sign_blob_url,
    utc_now,
)
from trace_store.backends.url import SETTING
from trace_store.errors import (
    AlreadyExists,
    ConfigError,
    InvalidInput,
    ObjectNotFound,
    StoreUnavailable,
    StrataError,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence

    from google.auth.credentials import Credentials
    from google.cloud import storage

    from trace_store.config import Config


#: V4 signed URLs live at most seven days.
MAX_SIGNED_EXPIRY = timedelta(days=7)
POOL_SIZE = 16
CORS_HEADERS = ["Content-Encoding", "Content-Length", "Content-Range", "Content-Type", "ETag"]
#: ``check`` answers fast: one attempt, short timeout.
CHECK_TIMEOUT = 5.0

_TRANSIENT = (
    gexc.TooManyRequests,
    gexc.ServerError,
    gexc.RetryError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    TransportError,
)


class GCSStore(BlockingClientStore):
    """Objects in one GCS bucket under an optional name prefix."""

    scheme = "gs"
    supports_cors = True
    pins_are_leases = True
    #: Objects per list page (GCS's maximum; tests lower it to see pagination).
    list_page_size: int = 1000

    def __init__(
        self,
        settings: GCSSettings,
        *,
        client: storage.Client | None = None,
        signing_credentials: Credentials | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        """``now`` is the store's clock: the ``customTime`` of new objects and renewed
        leases, and the expiry of signed URLs, are taken from it."""
        if client is None:
            client, signing_credentials = make_client(settings)
        super().__init__(settings.prefix, POOL_SIZE)
        self.settings = settings
        self.client = client
        self.signing_credentials = signing_credentials
        self.now = now
        self.bucket = client.bucket(settings.bucket)

    @classmethod
    def from_url(cls, bucket: str, prefix: str, query: dict[str, str], config: Config) -> GCSStore:
        """Build a store from ``gs://bucket/prefix?credentials=``, honouring the emulator."""
        return cls(GCSSettings.from_query(bucket, prefix, query, config))

    def describe(self) -> str:
        where = f" at {self.settings.emulator_host}" if self.settings.emulator_host else ""
        return f"gs://{self.settings.bucket}/{self.prefix}{where}"

    # -- the client's errors -----------------------------------------------------------

    def _translate(self, err: Exception, key: str) -> Exception:
        what = f"object {key!r}" if key else f"bucket {self.settings.bucket!r}"
        if isinstance(err, gexc.NotFound):
            return ObjectNotFound(f"no {what} in {self.describe()}")
        if isinstance(err, gexc.PreconditionFailed):
            return AlreadyExists(f"{what} already exists")
        if isinstance(err, gexc.Unauthorized | gexc.Forbidden | RefreshError):
            return ConfigError(f"{SETTING}: GCS refused the credentials for {self.describe()}")
        if isinstance(err, _TRANSIENT):
            return StoreUnavailable(f"GCS is unavailable for {what}: {err}")
        if isinstance(err, gexc.GoogleAPICallError):
            return StrataError(f"GCS request for {what} failed: {err}")
        return err

    # -- primitives -------------------------------------------------------------------

    def _put_sync(self, key: str, data: bytes, content_type: str, encoding: str | None) -> None:
        blob = self.bucket.blob(self.full_key(key))
        blob.content_encoding = encoding
        blob.custom_time = self.now()
        blob.upload_from_string(
            data, content_type=content_type, if_generation_match=0, retry=RETRY, timeout=TIMEOUT
        )

    async def _put_new(
        self, key: str, data: bytes, content_type: str, content_encoding: str | None
    ) -> None:
        await self._run(self._put_sync, key, data, content_type, content_encoding, key=key)

    def _get_sync(self, key: str, byte_range: tuple[int, int] | None) -> bytes:
        blob = self.bucket.blob(self.full_key(key))
        start, end = byte_range if byte_range else (None, None)
        try:
            # raw_download: the exact stored bytes, whatever Content-Encoding says.
            return bytes(
                blob.download_as_bytes(
                    start=start, end=end, raw_download=True, retry=RETRY, timeout=TIMEOUT
                )
            )
        except gexc.RequestRangeNotSatisfiable:
            # GCS answers 416 for a range starting at or past the end; the interface
            # (like a file read past EOF) returns no bytes.
            return b""

    async def _get(self, key: str, byte_range: tuple[int, int] | None) -> bytes:
        return await self._run(self._get_sync, key, byte_range, key=key)

    def _info(self, blob: storage.Blob) -> ObjectInfo:
        strip = len(self.prefix) + 1 if self.prefix else 0
        return ObjectInfo(
            key=blob.name[strip:],
            size=int(blob.size or 0),
            content_type=blob.content_type,
            content_encoding=blob.content_encoding,
            created=blob.time_created,
            metadata=dict(blob.metadata or {}),
        )

    def _blob_sync(self, key: str) -> storage.Blob:
        blob = self.bucket.get_blob(self.full_key(key), retry=RETRY, timeout=TIMEOUT)
        if blob is None:
            raise ObjectNotFound(f"no object {key!r} in {self.describe()}")
        return blob

    async def _head(self, key: str) -> ObjectInfo:
        return self._info(await self._run(self._blob_sync, key, key=key))

    async def _list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        listing = self.client.list_blobs(
            self.bucket,
            prefix=self.full_key(prefix),
            page_size=self.list_page_size,
            retry=RETRY,
            timeout=TIMEOUT,
        )
        pages: Iterator[Any] = iter(listing.pages)
        while (page := await self._run(next, pages, None)) is not None:
            for blob in page:
                yield self._info(blob)

    async def _sign_get(self, key: str, expires_in: timedelta) -> SignedURL:
        if not timedelta(seconds=1) <= expires_in <= MAX_SIGNED_EXPIRY:
            raise InvalidInput("GCS signed URLs must expire between 1 second and 7 days")
        if self.signing_credentials is None:
            raise ConfigError(
                f"{SETTING}: signing gs:// URLs needs a service-account key; add"
                " ?credentials=/path/key.json"
            )
        expires_at = self.now() + expires_in
        blob = self.bucket.blob(self.full_key(key))
        credentials = self.signing_credentials
        # With an emulator the client's endpoint is the emulator, so a plain GET of the
        # URL reaches it; otherwise it is https://storage.googleapis.com.
        endpoint = self.client.api_endpoint
        url = await self._run(
            lambda: sign_blob_url(blob, credentials, expires_in, api_access_endpoint=endpoint),
            key=key,
        )
        return SignedURL(url=url, expires_at=expires_at)

    def _copy_sync(self, src: str, dst: str) -> None:
        source = self.bucket.blob(self.full_key(src))
        copied = self.bucket.copy_blob(
            source,
            self.bucket,
            self.full_key(dst),
            if_generation_match=0,
            retry=RETRY,
            timeout=TIMEOUT,
        )
        # A copy keeps the source's customTime, which would give it the source's
        # remaining lease; the copy is a new object, so its lease starts now.
        self._renew_sync(copied)

    async def _copy(self, src: str, dst: str) -> None:
        await self._run(self._copy_sync, src, dst, key=src)

    def _renew_sync(self, blob: storage.Blob) -> None:
        now = self.now()
        # GCS rejects a customTime earlier than the current one (400); a clock behind
        # the last writer's leaves the lease as it is, which is still at least now.
        if blob.custom_time is None or blob.custom_time < now:
            blob.custom_time = now
            blob.patch(retry=RETRY, timeout=TIMEOUT)

    async def _pin(self, key: str) -> None:
        """Renew the lease: move ``customTime`` forward to now."""
        await self._run(lambda: self._renew_sync(self._blob_sync(key)), key=key)

    async def _unpin(self, key: str) -> None:
        """Nothing to do: an unpinned object is simply no longer renewed.

        ``customTime`` cannot move backwards, so GCS has no "expirable again" write. The
        object expires ``retain_days`` after its last renewal (its last :meth:`pin`).
        """
        await self._head(key)  # same contract as other backends: missing key -> error

    # -- bucket-level -----------------------------------------------------------------

    def _set_cors_sync(self, origins: list[str]) -> None:
        bucket = self.client.get_bucket(self.settings.bucket, retry=RETRY, timeout=TIMEOUT)
        # GCS CORS entries carry no id, so strata owns the bucket's whole CORS list.
        bucket.cors = [
            {
                "origin": origins,
                "method": ["GET", "HEAD"],
                "responseHeader": CORS_HEADERS,
                "maxAgeSeconds": 3600,
            }
        ]
        bucket.patch(retry=RETRY, timeout=TIMEOUT)

    async def set_cors(self, origins: Sequence[str]) -> None:
        if not origins:
            raise InvalidInput("set_cors needs at least one origin")
        await self._run(self._set_cors_sync, list(origins))

    # -- bucket lifecycle (blocking: callers run these in a thread) --------------------

    def lifecycle_bucket(self) -> LifecycleBucket:
        return LifecycleBucket("gcs", self.settings.bucket, self.prefix)

    def read_lifecycle(self) -> dict[str, Any] | None:
        """``{"lifecycle": {"rule": [...]}}``, or ``None`` when the bucket has no rule."""
        with self.sdk_errors():
            bucket = self.client.get_bucket(self.settings.bucket, retry=RETRY)
        # The raw JSON resource: the typed rule helpers would drop fields they do not know.
        lifecycle = dict(bucket._properties.get("lifecycle") or {})
        return {"lifecycle": lifecycle} if lifecycle.get("rule") else None

    def write_lifecycle(self, config: dict[str, Any]) -> None:
        """Patch the bucket's rules to ``config["lifecycle"]["rule"]``."""
        with self.sdk_errors():
            bucket = self.client.get_bucket(self.settings.bucket, retry=RETRY)
            bucket.lifecycle_rules = config["lifecycle"]["rule"]
            bucket.patch(retry=RETRY)

    def lifecycle_objects(self, prefixes: Sequence[str]) -> list[LifecycleObject]:
        """Each object with its creation time and ``customTime``."""
        found: list[LifecycleObject] = []
        with self.sdk_errors():
            for prefix in prefixes:
                for blob in self.client.list_blobs(
                    self.settings.bucket, prefix=prefix, retry=RETRY
                ):
                    found.append(
                        LifecycleObject(blob.name, blob.time_created, custom_time=blob.custom_time)
                    )
        return found

    async def check(self) -> None:
        where = self.settings.emulator_host or "storage.googleapis.com"
        try:
            await self._run(
                lambda: self.client.get_bucket(
                    self.settings.bucket, timeout=CHECK_TIMEOUT, retry=None
                )
            )
        except ObjectNotFound:
            raise ConfigError(
                f"{SETTING}: bucket {self.settings.bucket!r} does not exist at {where}"
            ) from None
        except StoreUnavailable as err:
            raise ConfigError(f"{SETTING}: cannot reach GCS at {where}: {err}") from err
        if self.signing_credentials is None:
            raise ConfigError(
                f"{SETTING}: signing gs:// URLs needs a service-account key; add"
                " ?credentials=/path/key.json"
            )

    async def close(self) -> None:
        await self._close_pool()
        self.client.close()

"""The one object-store interface every backend implements.

Backends implement a handful of primitives; everything that can be built on them is
built once, here. Keys passed to a store are relative to the store's own prefix and
are validated by :func:`trace_store.keys.check_key` before they reach a backend.

Semantics every backend guarantees (and ``tests/store_conformance.py`` checks):

* ``put_new`` is create-only: an existing key raises :class:`AlreadyExists` and keeps
  the stored bytes. New objects are always written *expirable*; pinning is separate.
* ``get`` returns the exact stored bytes, never decoded (no transparent zstd).
* ``sign_get`` returns a URL that a plain, credential-less GET can fetch until
  ``expires_at``, for that one object only.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from trace_store.errors import AlreadyExists, InvalidInput, ObjectNotFound
from trace_store.keys import SEGMENT_SUFFIX, check_key, check_prefix

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from datetime import datetime, timedelta

JSON_CONTENT_TYPE = "application/json"
ZSTD_ENCODING = "zstd"
SEGMENT_CONTENT_TYPE = "application/zstd"


def stored_headers(key: str) -> tuple[str, str | None]:
    """The content type and encoding strata stores the object ``key`` with.

    A trace object is JSON with ``Content-Encoding: zstd``: a browser fetching it whole
    decodes it natively. A segment is read one frame at a time with a ``Range`` header,
    and Chromium fails any ranged response that carries a Content-Encoding (it asks
    with ``Accept-Encoding: identity``); so a segment is plain ``application/zstd``.
    """
    if key.endswith(SEGMENT_SUFFIX):
        return SEGMENT_CONTENT_TYPE, None
    return JSON_CONTENT_TYPE, ZSTD_ENCODING


#: The providers whose bucket lifecycle rules strata manages.
LifecycleProvider = Literal["s3", "gcs"]


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What ``head`` and ``list`` report about one stored object."""

    key: str
    size: int
    content_type: str | None = None
    content_encoding: str | None = None
    created: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LifecycleBucket:
    """The bucket whose lifecycle rules expire a store's objects: the provider, the
    bucket's name and the store's key prefix in it (``""``: none)."""

    provider: LifecycleProvider
    name: str
    prefix: str


@dataclass(frozen=True, slots=True)
class LifecycleObject:
    """One object of a bucket in the state its lifecycle rules read: its name in the
    bucket (store prefix included), its creation time and its lifecycle marks (S3: the
    tag set, ``custom_time`` ``None``; GCS: ``customTime``, ``tags`` empty)."""

    name: str
    created: datetime
    tags: dict[str, str] = field(default_factory=dict)
    custom_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class SignedURL:
    """A short-lived URL for one object, fetchable with a plain GET."""

    url: str
    expires_at: datetime


class ObjectStore(abc.ABC):
    """Abstract object store. Subclasses implement the ``_``-prefixed primitives."""

    #: Short backend name used in logs, metrics and store URLs.
    scheme: ClassVar[str]
    #: A signed GET answers with the stored ``Content-Encoding`` header.
    supports_content_encoding: ClassVar[bool] = True
    #: ``set_cors`` configures a real CORS policy on the bucket.
    supports_cors: ClassVar[bool] = False
    #: Signed URLs are served by strata's own editor server (``/objects/...``).
    serves_signed_urls_itself: ClassVar[bool] = False
    #: The objects live in this process only: another process (the writer) cannot
    #: open the same store from its URL.
    process_local: ClassVar[bool] = False
    #: ``pin`` renews a lease that runs out unless renewed again, and ``unpin`` is a
    #: no-op (GCS: ``customTime`` only moves forward). Pinned objects must be re-pinned
    #: periodically, well within the retention window.
    pins_are_leases: ClassVar[bool] = False
    #: No bucket lifecycle rules: strata's own expirer deletes expired objects
    #: (:func:`trace_store.retention.expire_local`, through :meth:`delete_expired`).
    expires_by_strata: ClassVar[bool] = False

    def delete_expired(self, key: str) -> None:
        """Delete an expired object (blocking). Only stores with ``expires_by_strata``
        have this: on the others the bucket's rules expire objects."""
        raise NotImplementedError(f"{self.describe()}: its bucket's rules expire objects")

    # -- bucket lifecycle (``strata lifecycle``) --------------------------------------
    #
    # Blocking, like the provider SDKs they call: run them in a thread, never on an
    # event loop. Only cloud stores have them; on the others each raises
    # :class:`InvalidInput`. Configurations are the provider's own JSON (S3:
    # ``{"Rules": [...], ...}``; GCS: ``{"lifecycle": {"rule": [...]}}``).

    def _no_bucket_lifecycle(self) -> InvalidInput:
        return InvalidInput(
            f"{self.describe()} has no bucket lifecycle; local stores expire objects with"
            " `strata lifecycle expire`"
        )

    def lifecycle_bucket(self) -> LifecycleBucket:
        """The bucket whose lifecycle rules expire this store's objects."""
        raise self._no_bucket_lifecycle()

    def read_lifecycle(self) -> dict[str, Any] | None:
        """The bucket's lifecycle configuration as the provider returns it, ``None`` if
        it has none (blocking)."""
        raise self._no_bucket_lifecycle()

    def write_lifecycle(self, config: dict[str, Any]) -> None:
        """Replace the bucket's lifecycle rules with those of ``config`` (blocking).
        Bucket-level settings beside the rules are kept as they are."""
        raise self._no_bucket_lifecycle()

    def lifecycle_objects(self, prefixes: Sequence[str]) -> list[LifecycleObject]:
        """Every object whose bucket name starts with one of ``prefixes`` (names in the
        bucket, store prefix included), with its lifecycle state (blocking)."""
        raise self._no_bucket_lifecycle()

    # -- primitives -------------------------------------------------------------------

    @abc.abstractmethod
    async def _put_new(
        self, key: str, data: bytes, content_type: str, content_encoding: str | None
    ) -> None: ...

    @abc.abstractmethod
    async def _get(self, key: str, byte_range: tuple[int, int] | None) -> bytes: ...

    @abc.abstractmethod
    async def _head(self, key: str) -> ObjectInfo: ...

    @abc.abstractmethod
    def _list(self, prefix: str) -> AsyncIterator[ObjectInfo]: ...

    @abc.abstractmethod
    async def _sign_get(self, key: str, expires_in: timedelta) -> SignedURL: ...

    @abc.abstractmethod
    async def _copy(self, src: str, dst: str) -> None: ...

    @abc.abstractmethod
    async def _pin(self, key: str) -> None: ...

    @abc.abstractmethod
    async def _unpin(self, key: str) -> None: ...

    # -- public API: validation once, then the primitive ------------------------------

    async def put_new(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = JSON_CONTENT_TYPE,
        content_encoding: str | None = ZSTD_ENCODING,
    ) -> None:
        """Create ``key`` with ``data``; raise :class:`AlreadyExists` if it exists."""
        await self._put_new(check_key(key), data, content_type, content_encoding)

    async def get(self, key: str, *, byte_range: tuple[int, int] | None = None) -> bytes:
        """Return the stored bytes, or bytes ``[start, end]`` inclusive of ``byte_range``."""
        if byte_range is not None:
            start, end = byte_range
            if start < 0 or end < start:
                raise InvalidInput(f"invalid byte range {start}-{end}")
        return await self._get(check_key(key), byte_range)

    async def head(self, key: str) -> ObjectInfo:
        """Metadata of ``key``; :class:`ObjectNotFound` if missing."""
        return await self._head(check_key(key))

    async def list_objects(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order."""
        found = [info async for info in self._list(check_prefix(prefix))]
        found.sort(key=lambda info: info.key)
        return found

    async def sign_get(self, key: str, expires_in: timedelta) -> SignedURL:
        """A plain-GET URL for ``key`` valid for ``expires_in``."""
        return await self._sign_get(check_key(key), expires_in)

    async def copy(self, src: str, dst: str) -> None:
        """Server-side copy; create-only on ``dst`` like :meth:`put_new`."""
        await self._copy(check_key(src), check_key(dst))

    async def pin(self, key: str) -> None:
        """Exempt ``key`` from lifecycle expiry (idempotent)."""
        await self._pin(check_key(key))

    async def unpin(self, key: str) -> None:
        """Make ``key`` expirable again (idempotent)."""
        await self._unpin(check_key(key))

    async def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        try:
            await self.head(key)
        except ObjectNotFound:
            return False
        return True

    async def put_or_verify(self, key: str, data: bytes) -> None:
        """Create-only put that is safe to retry, with :func:`stored_headers`.

        A retry after a lost acknowledgement finds the key taken: that is success when
        the stored bytes are ours, and :class:`AlreadyExists` otherwise.
        """
        try:
            content_type, content_encoding = stored_headers(key)
            await self.put_new(
                key, data, content_type=content_type, content_encoding=content_encoding
            )
        except AlreadyExists:
            stored = await self.get(key)
            if hashlib.sha256(stored).digest() != hashlib.sha256(data).digest():
                raise

    async def put_many(
        self, items: Sequence[tuple[str, bytes]], *, concurrency: int = 16
    ) -> list[BaseException | None]:
        """Retry-safe create-only puts of many objects (see :meth:`put_or_verify`).

        Returns, per item, ``None`` when the object is durably stored, else the error;
        the caller retries only the failures. Backends that can make a whole batch
        durable at once (the local disk: one ``syncfs`` instead of one fsync per file)
        override this.
        """
        semaphore = asyncio.Semaphore(concurrency)

        async def one(key: str, data: bytes) -> BaseException | None:
            async with semaphore:
                try:
                    await self.put_or_verify(key, data)
                except Exception as exc:
                    return exc
                return None

        return list(await asyncio.gather(*(one(key, data) for key, data in items)))

    async def set_cors(self, origins: Sequence[str]) -> None:
        """Allow browser GETs of signed URLs from ``origins`` (no-op where unsupported)."""
        return None

    async def check(self) -> None:
        """Raise if the store cannot be reached (used by ``/readyz`` and start-up)."""
        return None

    async def close(self) -> None:
        """Release connections and threads."""
        return None

    def describe(self) -> str:
        """A human-readable location, for logs (no secrets)."""
        return self.scheme

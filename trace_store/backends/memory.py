"""In-memory store for tests. Signed URLs are served by strata's editor server."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from trace_store.backends.base import ObjectInfo, ObjectStore, SignedURL
from trace_store.errors import AlreadyExists, ObjectNotFound

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from datetime import timedelta

    from trace_store.backends.signing import UrlSigner


@dataclass
class _Stored:
    data: bytes
    content_type: str
    content_encoding: str | None
    created: datetime
    pinned: bool = False
    metadata: dict[str, str] = field(default_factory=dict)


class MemoryStore(ObjectStore):
    """A dict of objects. Not durable; for tests and benchmarks."""

    scheme = "memory"
    serves_signed_urls_itself = True
    process_local = True

    def __init__(self, signer: UrlSigner | None = None) -> None:
        self.objects: dict[str, _Stored] = {}
        self.signer = signer

    async def _put_new(
        self, key: str, data: bytes, content_type: str, content_encoding: str | None
    ) -> None:
        if key in self.objects:
            raise AlreadyExists(f"object {key!r} already exists")
        self.objects[key] = _Stored(bytes(data), content_type, content_encoding, datetime.now(UTC))

    def _object(self, key: str) -> _Stored:
        try:
            return self.objects[key]
        except KeyError:
            raise ObjectNotFound(f"no object {key!r}") from None

    async def _get(self, key: str, byte_range: tuple[int, int] | None) -> bytes:
        data = self._object(key).data
        return data if byte_range is None else data[byte_range[0] : byte_range[1] + 1]

    def _info(self, key: str, stored: _Stored) -> ObjectInfo:
        metadata = {"pinned": "true"} if stored.pinned else {}
        return ObjectInfo(
            key,
            len(stored.data),
            stored.content_type,
            stored.content_encoding,
            stored.created,
            metadata,
        )

    async def _head(self, key: str) -> ObjectInfo:
        return self._info(key, self._object(key))

    async def _list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        for key, stored in list(self.objects.items()):
            if key.startswith(prefix):
                yield self._info(key, stored)

    async def _sign_get(self, key: str, expires_in: timedelta) -> SignedURL:
        self._object(key)
        if self.signer is None:
            raise RuntimeError("MemoryStore has no signer configured")
        return self.signer.sign(key, expires_in)

    async def _copy(self, src: str, dst: str) -> None:
        stored = self._object(src)
        await self._put_new(dst, stored.data, stored.content_type, stored.content_encoding)

    async def _pin(self, key: str) -> None:
        self._object(key).pinned = True

    async def _unpin(self, key: str) -> None:
        self._object(key).pinned = False

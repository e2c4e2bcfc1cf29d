"""A trace's base read by strata itself (reruns, function runs, explain): the trace's
frame, a byte range of its segment or the whole object, checked against the sha256
its index row recorded before it is decoded."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from trace_store.document import codec
from trace_store.errors import IntegrityError

if TYPE_CHECKING:
    from trace_store.backends.base import ObjectStore
    from trace_store.db.index import IndexRow
    from trace_store.types import JSONObject


def check_frame(data: bytes, row: IndexRow) -> bytes:
    """``data`` if it is the frame ``row`` describes, else :class:`IntegrityError`."""
    digest = hashlib.sha256(data).digest()
    if len(data) != row.size_bytes or digest != row.sha256:
        raise IntegrityError(
            f"trace {row.trace_id}: the store returned {len(data)} bytes with sha256"
            f" {digest.hex()} for {row.object_key}, but the index recorded"
            f" {row.size_bytes} bytes with sha256 {row.sha256.hex()}"
        )
    return data


async def load(store: ObjectStore, row: IndexRow) -> JSONObject:
    """The base document of the trace ``row`` indexes."""
    data = await store.get(row.object_key, byte_range=row.byte_range)
    doc: JSONObject = codec.decode(check_frame(data, row))
    return doc

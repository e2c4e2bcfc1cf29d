"""Trace and patch documents as bytes: orjson, then a zstd frame.

The frame carries its content size and keeps the window under 8 MiB so that browsers
decode it natively as ``Content-Encoding: zstd`` (Chromium refuses larger windows).
Compressor objects are not thread-safe, so each writer thread keeps its own.
"""

from __future__ import annotations

import threading
from typing import Any, Final

import orjson
import zstandard

from trace_store.errors import InvalidInput

LEVEL: Final = 3
MAX_DECODED_BYTES: Final = 512 * 1024 * 1024
_WINDOW_LOG: Final = 22  # 4 MiB, below the browsers' 8 MiB limit
_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    found: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if found is None:
        params = zstandard.ZstdCompressionParameters.from_level(
            LEVEL, window_log=_WINDOW_LOG, write_content_size=True, write_checksum=True
        )
        found = zstandard.ZstdCompressor(compression_params=params)
        _local.compressor = found
    return found


def encode_json(doc: Any) -> bytes:
    """orjson bytes of a document (already tagged)."""
    return orjson.dumps(doc)


def compress(raw: bytes) -> bytes:
    """One zstd frame with content size and checksum."""
    return _compressor().compress(raw)


def encode(doc: Any) -> bytes:
    """Document -> stored bytes."""
    return compress(encode_json(doc))


def decompress(data: bytes, *, max_bytes: int = MAX_DECODED_BYTES) -> bytes:
    """Inverse of :func:`compress`; :class:`InvalidInput` for anything that is not a frame."""
    try:
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=max_bytes)
    except zstandard.ZstdError as exc:
        raise InvalidInput(f"not a valid zstd frame: {exc}") from None


def decode(data: bytes) -> Any:
    """Stored bytes -> document."""
    raw = decompress(data)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"trace object is not valid JSON: {exc}") from None

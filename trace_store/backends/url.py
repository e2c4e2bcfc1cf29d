"""Parse a store URL (``file:``, ``s3://``, ``gs://``, ``memory:``) into a backend.

Bad URLs fail with :class:`ConfigError` naming ``STRATA_STORE`` (or ``--store``), so a
typo is caught at start-up rather than on the first trace.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from trace_store.config import Config
from trace_store.errors import ConfigError

if TYPE_CHECKING:
    from trace_store.backends.base import ObjectStore
    from trace_store.backends.signing import UrlSigner

SETTING = "STRATA_STORE (--store)"
#: The query parameters each cloud store URL takes; any other is a start-up error.
QUERY_PARAMETERS = {"s3": ("endpoint", "region"), "gs": ("credentials",)}


def parse_store_url(
    url: str, config: Config | None = None, *, signer: UrlSigner | None = None
) -> ObjectStore:
    """Build the store a URL names, with the settings of ``config`` (default: the
    process environment's). ``signer`` serves local and memory stores' URLs."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        # file:///abs/dir, or the relative form file:dir
        path = parts.path if parts.netloc in ("", "localhost") else ""
        if not path:
            raise ConfigError(
                f"{SETTING}: {url!r} names no directory (file:///abs/dir or file:dir)"
            )
        from trace_store.backends.local import LocalStore

        return LocalStore(Path(path), signer)
    if parts.scheme == "memory":
        from trace_store.backends.memory import MemoryStore

        return MemoryStore(signer)
    if parts.scheme in ("s3", "gs"):
        if not parts.netloc:
            raise ConfigError(f"{SETTING}: {url!r} names no bucket")
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = sorted(set(query) - set(QUERY_PARAMETERS[parts.scheme]))
        if unknown:
            expected = " and ".join(f"{name}=" for name in QUERY_PARAMETERS[parts.scheme])
            raise ConfigError(
                f"{SETTING}: unknown {parts.scheme}:// query parameter(s)"
                f" {', '.join(unknown)}; expected {expected}"
            )
        prefix = parts.path.strip("/")
        if parts.scheme == "s3":
            from trace_store.backends.s3 import S3Store

            return S3Store.from_url(parts.netloc, prefix, query)
        from trace_store.backends.gcs import GCSStore

        return GCSStore.from_url(parts.netloc, prefix, query, config or Config())
    raise ConfigError(f"{SETTING}: unsupported store URL {url!r}; expected file:, s3:// or gs://")

"""Connecting to S3: a store URL's settings, parsed strictly, and the boto3 client made
from them (timeouts, retries, pool size). :mod:`trace_store.backends.s3` is the store."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from trace_store.backends.url import SETTING
from trace_store.errors import ConfigError

#: Threads and pooled HTTP connections per store.
POOL_SIZE = 32

_REGION_RE = re.compile(r"[a-z0-9-]{1,32}")


@dataclass(frozen=True, slots=True)
class S3Settings:
    """Where the store lives. Credentials come from the standard AWS environment."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None

    @classmethod
    def from_query(cls, bucket: str, prefix: str, query: dict[str, str]) -> S3Settings:
        """Check the ``?endpoint=&region=`` values of an ``s3://`` URL (which parameters
        it may have, :func:`trace_store.backends.url.parse_store_url` checks)."""
        endpoint = query.get("endpoint") or None
        if endpoint is not None:
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(
                    f"{SETTING}: s3:// endpoint={endpoint!r} is not an http(s)://host[:port] URL"
                )
        region = query.get("region") or None
        if region is not None and not _REGION_RE.fullmatch(region):
            raise ConfigError(f"{SETTING}: s3:// region={region!r} is not a region name")
        return cls(bucket, prefix.strip("/"), endpoint, region)


def make_client(settings: S3Settings, pool_size: int = POOL_SIZE, attempts: int = 3) -> Any:
    """The boto3 S3 client a store uses: standard retries, path style for custom endpoints."""
    config = Config(
        signature_version="s3v4",
        max_pool_connections=pool_size,
        retries={"mode": "standard", "total_max_attempts": attempts},
        # A hung server is noticed within seconds: every trace object is small, and
        # the read timeout bounds the wait for each chunk of an answer, not the transfer.
        connect_timeout=2,
        read_timeout=5,
        # A custom endpoint (moto, MinIO, s3rver) has no per-bucket DNS names.
        s3={"addressing_style": "path" if settings.endpoint else "auto"},
    )
    session = boto3.session.Session()
    return session.client(
        "s3", endpoint_url=settings.endpoint, region_name=settings.region, config=config
    )

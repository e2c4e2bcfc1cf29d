"""Bucket CORS for the editor origin, checked with real preflights against moto.

moto runs with ``MOTO_DISABLE_GLOBAL_CORS=true`` (see the ``moto_server`` fixture), so
it answers CORS from the bucket's own configuration, as S3 does.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.fixtures_cloud import S3Server
from tests.store_conformance import KEYS
from trace_store.backends.s3 import S3Store

EDITOR = "http://editor.example"


def preflight(url: str, origin: str) -> dict[str, str]:
    """Send a browser's CORS preflight for a GET of ``url``; return the response headers."""
    request = urllib.request.Request(
        url,
        method="OPTIONS",
        headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as err:
        return {k.lower(): v for k, v in err.headers.items()}


@pytest.fixture
async def cors_store(moto_server: S3Server, moto_bucket: str) -> AsyncIterator[S3Store]:
    store = S3Store.from_url(moto_bucket, "", {"endpoint": moto_server.endpoint})
    await store.put_new(KEYS[0], b"\x28\xb5\x2f\xfd")
    yield store
    await store.close()


async def test_preflight_from_the_editor_origin_is_allowed(cors_store: S3Store) -> None:
    await cors_store.set_cors([EDITOR])
    url = (await cors_store.sign_get(KEYS[0], timedelta(minutes=15))).url
    headers = await asyncio.to_thread(preflight, url, EDITOR)
    assert headers.get("access-control-allow-origin") == EDITOR
    assert "GET" in headers.get("access-control-allow-methods", "")


async def test_preflight_from_another_origin_gets_no_cors_headers(cors_store: S3Store) -> None:
    await cors_store.set_cors([EDITOR])
    url = (await cors_store.sign_get(KEYS[0], timedelta(minutes=15))).url
    headers = await asyncio.to_thread(preflight, url, "http://evil.example")
    assert "access-control-allow-origin" not in headers


async def test_without_set_cors_the_editor_origin_is_not_allowed(cors_store: S3Store) -> None:
    url = (await cors_store.sign_get(KEYS[0], timedelta(minutes=15))).url
    headers = await asyncio.to_thread(preflight, url, EDITOR)
    assert "access-control-allow-origin" not in headers

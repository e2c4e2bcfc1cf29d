"""Start-up errors: a bad store URL or an unusable store fails with ``ConfigError``
naming ``STRATA_STORE``, before the first trace is written."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fixtures_cloud import DUMMY_KEY, S3Server, free_port
from tests.store_conformance import KEYS
from trace_store.backends.gcs import GCSStore
from trace_store.backends.s3 import S3Store
from trace_store.backends.s3_client import S3Settings, make_client
from trace_store.backends.url import parse_store_url
from trace_store.errors import ConfigError, StoreUnavailable


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("s3://", "bucket"),
        ("s3://bucket?bogus=1", "bogus"),
        ("s3://bucket?endpoint=ftp://host", "endpoint"),
        ("s3://bucket?endpoint=http://", "endpoint"),
        ("s3://bucket?region=Not%20A%20Region", "region"),
        ("gs://", "bucket"),
        ("gs://bucket?endpoint=http://x", "endpoint"),
        ("gs://bucket?credentials=/nonexistent/key.json", "credentials"),
        ("ftp://bucket", "unsupported"),
    ],
)
def test_malformed_store_url_names_the_setting(url: str, names: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_store_url(url)
    assert "STRATA_STORE" in str(caught.value)
    assert names in str(caught.value)


async def test_s3_missing_bucket(moto_server: S3Server, moto_bucket: str) -> None:
    store = parse_store_url(f"s3://no-such-bucket-here?endpoint={moto_server.endpoint}")
    assert isinstance(store, S3Store)
    try:
        with pytest.raises(ConfigError, match=r"STRATA_STORE.*bucket 'no-such-bucket-here'"):
            await store.check()
    finally:
        await store.close()


async def test_s3_missing_credentials(
    moto_server: S3Server, moto_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    store = parse_store_url(f"s3://{moto_bucket}?endpoint={moto_server.endpoint}")
    try:
        with pytest.raises(ConfigError, match=r"STRATA_STORE.*AWS_ACCESS_KEY_ID"):
            await store.check()
    finally:
        await store.close()


async def test_s3_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = parse_store_url(f"s3://bucket?endpoint={endpoint}&region=us-east-1")
    try:
        started = time.monotonic()
        with pytest.raises(ConfigError, match=rf"STRATA_STORE.*cannot reach S3 at {endpoint}"):
            await store.check()
        assert time.monotonic() - started < 5  # one attempt: start-up answers promptly
    finally:
        await store.close()


async def test_s3_data_calls_retry_then_report_the_store_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = S3Settings("bucket", "", f"http://127.0.0.1:{free_port()}", "us-east-1")
    assert S3Store(settings).client.meta.config.retries == {
        "mode": "standard",
        "total_max_attempts": 3,
    }
    # Same store with a single attempt, to see the mapping without waiting out backoff.
    store = S3Store(settings, client=make_client(settings, attempts=1))
    try:
        # Once running, an unreachable store is transient, not a config error.
        with pytest.raises(StoreUnavailable):
            await store.put_new(KEYS[0], b"x")
        with pytest.raises(StoreUnavailable):
            await store.get(KEYS[0])
    finally:
        await store.close()


async def test_gcs_missing_bucket(gcs_emulator: str, gcs_bucket: str) -> None:
    store = parse_store_url(f"gs://no-such-bucket-here?credentials={DUMMY_KEY}")
    assert isinstance(store, GCSStore)
    try:
        with pytest.raises(ConfigError, match=r"STRATA_STORE.*bucket 'no-such-bucket-here'"):
            await store.check()
    finally:
        await store.close()


async def test_gcs_emulator_without_a_signing_key(gcs_emulator: str, gcs_bucket: str) -> None:
    store = parse_store_url(f"gs://{gcs_bucket}")
    try:
        with pytest.raises(ConfigError, match=r"STRATA_STORE.*credentials="):
            await store.check()
    finally:
        await store.close()


def test_gcs_missing_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud login either
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # and no metadata server to ask
    with pytest.raises(ConfigError, match=r"STRATA_STORE.*GOOGLE_APPLICATION_CREDENTIALS"):
        parse_store_url("gs://bucket")


async def test_gcs_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    store = parse_store_url(f"gs://bucket?credentials={DUMMY_KEY}")
    try:
        with pytest.raises(ConfigError, match=rf"STRATA_STORE.*cannot reach GCS at {endpoint}"):
            await store.check()
    finally:
        await store.close()

"""The full trace path with the base objects in S3 (moto) and GCS (the emulator): the
manifest's URL points at the bucket and a plain GET returns the exact stored bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlsplit

from tests.canvases import shop
from tests.fixtures_cloud import DUMMY_KEY, S3Server, gcs_raw_client
from tests.harness import Server, serve
from trace_store.document import codec, schema


async def _one_trace(server: Server) -> tuple[dict, bytes, dict[str, str]]:
    async with server.http.get(server.gateway + "/users/9?x=1") as response:
        assert response.status == 200
    await server.flush()
    token = await server.token("shop")
    status, listing = await server.api("/api/v1/canvases/shop/handlers/get_user/traces", token)
    assert status == 200
    assert len(listing["traces"]) == 1
    trace_id = listing["traces"][0]["trace_id"]
    status, manifest = await server.api(f"/api/v1/canvases/shop/traces/{trace_id}", token)
    assert status == 200
    status, headers, data = await server.fetch_base(manifest["base"]["url"])
    assert status == 200
    assert hashlib.sha256(data).hexdigest() == manifest["base"]["sha256"]
    doc = codec.decode(data)
    schema.validate("trace", doc)
    assert doc["trace_id"] == trace_id
    assert doc["input"]["params"] == {"id": "9"}
    return manifest, data, headers


async def test_s3_store_serves_the_base_straight_from_the_bucket(
    database_url: str, tmp_path: Path, moto_server: S3Server, moto_bucket: str
) -> None:
    url = f"s3://{moto_bucket}/strata?endpoint={moto_server.endpoint}&region=us-east-1"
    async with serve(database_url, tmp_path, {"shop": shop}, store_url=url) as server:
        manifest, data, headers = await _one_trace(server)
    signed = urlsplit(manifest["base"]["url"])
    assert f"{signed.scheme}://{signed.netloc}" == moto_server.endpoint
    assert signed.path.startswith(f"/{moto_bucket}/strata/traces/shop/get_user/")
    assert "X-Amz-Signature" in signed.query
    assert headers["Content-Encoding"] == "zstd"
    # Backdoor: the object in the bucket holds exactly those bytes, tagged expirable.
    key = signed.path.split("/", 2)[2]
    raw = moto_server.client()
    assert raw.get_object(Bucket=moto_bucket, Key=key)["Body"].read() == data
    tags = raw.get_object_tagging(Bucket=moto_bucket, Key=key)["TagSet"]
    assert {"Key": "strata-expirable", "Value": "true"} in tags


async def test_gcs_store_serves_the_base_straight_from_the_bucket(
    database_url: str, tmp_path: Path, gcs_emulator: str, gcs_bucket: str
) -> None:
    url = f"gs://{gcs_bucket}/strata?credentials={DUMMY_KEY}"
    async with serve(database_url, tmp_path, {"shop": shop}, store_url=url) as server:
        manifest, data, _ = await _one_trace(server)
    signed = urlsplit(manifest["base"]["url"])
    assert f"{signed.scheme}://{signed.netloc}" == gcs_emulator.rstrip("/")
    assert "X-Goog-Signature" in signed.query
    # The emulator sends no Content-Encoding header; the stored metadata says zstd.
    blob_name = f"strata/traces/shop/get_user/{manifest['trace_id']}.json.zst"
    blob = gcs_raw_client(gcs_emulator).bucket(gcs_bucket).get_blob(blob_name)
    assert blob is not None
    assert blob.content_encoding == "zstd"
    assert blob.download_as_bytes(raw_download=True) == data


async def test_serve_refuses_to_start_on_a_missing_bucket(
    database_url: str, tmp_path: Path, moto_server: S3Server, moto_bucket: str
) -> None:
    import pytest

    from trace_store.errors import ConfigError

    url = f"s3://no-such-{moto_bucket}?endpoint={moto_server.endpoint}&region=us-east-1"
    with pytest.raises(ConfigError, match="STRATA_STORE"):
        async with serve(database_url, tmp_path, {"shop": shop}, store_url=url):
            raise AssertionError("serve started on a missing bucket")
    assert not (tmp_path / "objects").exists()  # nothing written anywhere else either

"""The S3 store against the conformance suite on moto; the backdoor is a plain boto3 client.

moto enforces ``If-None-Match: *`` on PutObject (checked by the suite) but ignores it on
CopyObject, where ``S3Store`` checks the destination first (see ``S3Store._copy``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from botocore.exceptions import ClientError

from tests.fixtures_cloud import S3Server
from tests.store_conformance import KEYS, StoreFactory, StoreTests
from trace_store.backends.base import ObjectStore
from trace_store.backends.s3 import S3Store
from trace_store.backends.s3_client import S3Settings
from trace_store.errors import AlreadyExists, ConfigError, ObjectNotFound, StoreUnavailable

EXPIRABLE = [{"Key": "strata-expirable", "Value": "true"}]
PINNED = [{"Key": "strata-pinned", "Value": "true"}]


def _s3(store: ObjectStore) -> S3Store:
    assert isinstance(store, S3Store)
    return store


class TestS3Store(StoreTests):
    machine_examples: ClassVar[int] = 6
    raw: Any

    @pytest.fixture
    def store_factory(self, moto_server: S3Server, moto_bucket: str) -> StoreFactory:
        self.raw = moto_server.client()
        query = {"endpoint": moto_server.endpoint, "region": "us-east-1"}
        return lambda prefix: S3Store.from_url(moto_bucket, prefix, query)

    def raw_get(self, store: ObjectStore, key: str) -> bytes | None:
        s3 = _s3(store)
        try:
            response = self.raw.get_object(Bucket=s3.bucket, Key=s3.full_key(key))
        except ClientError as err:
            if err.response["Error"]["Code"] == "NoSuchKey":
                return None
            raise
        return bytes(response["Body"].read())

    def raw_keys(self, store: ObjectStore) -> set[str]:
        s3 = _s3(store)
        response = self.raw.list_objects_v2(Bucket=s3.bucket, Prefix=s3.full_key(""))
        return {item["Key"].removeprefix(s3.full_key("")) for item in response.get("Contents", [])}

    def raw_content_headers(self, store: ObjectStore, key: str) -> tuple[str | None, str | None]:
        s3 = _s3(store)
        response = self.raw.head_object(Bucket=s3.bucket, Key=s3.full_key(key))
        return response.get("ContentType"), response.get("ContentEncoding")

    def raw_tags(self, store: ObjectStore, key: str) -> list[dict[str, str]]:
        s3 = _s3(store)
        return list(self.raw.get_object_tagging(Bucket=s3.bucket, Key=s3.full_key(key))["TagSet"])

    def raw_is_pinned(self, store: ObjectStore, key: str) -> bool:
        tags = self.raw_tags(store, key)
        assert tags in (PINNED, EXPIRABLE), tags  # exactly one of the two tag sets
        return tags == PINNED

    # -- S3-specific ------------------------------------------------------------------

    async def test_objects_are_written_with_the_expirable_tag(self, store: ObjectStore) -> None:
        await store.put_new(KEYS[0], b"x")
        assert self.raw_tags(store, KEYS[0]) == EXPIRABLE
        await store.pin(KEYS[0])
        assert self.raw_tags(store, KEYS[0]) == PINNED
        await store.copy(KEYS[0], KEYS[1])
        assert self.raw_tags(store, KEYS[1]) == EXPIRABLE

    async def test_put_and_copy_send_if_none_match(self, store: ObjectStore) -> None:
        sent: list[tuple[str, bytes | None]] = []

        def record(request: Any, event_name: str, **_: Any) -> None:
            sent.append((event_name.split(".")[-1], request.headers.get("If-None-Match")))

        _s3(store).client.meta.events.register("before-send.s3", record)
        await store.put_new(KEYS[0], b"x")
        await store.copy(KEYS[0], KEYS[1])
        assert ("PutObject", b"*") in sent
        assert ("CopyObject", b"*") in sent

    async def test_list_follows_pagination(self, store: ObjectStore) -> None:
        _s3(store).list_page_size = 2
        keys = [f"traces/shop/h/{i:02d}.json.zst" for i in range(7)]
        for key in keys:
            await store.put_new(key, b"x")
        assert [o.key for o in await store.list_objects("traces/shop/h/")] == keys

    async def test_objects_live_under_the_store_prefix(self, store: ObjectStore) -> None:
        s3 = _s3(store)
        await store.put_new(KEYS[0], b"x")
        head = self.raw.head_object(Bucket=s3.bucket, Key=f"{s3.prefix}/{KEYS[0]}")
        assert head["ContentLength"] == 1
        with pytest.raises(ObjectNotFound):
            await store.get("traces")

    async def test_set_cors_keeps_rules_strata_did_not_write(self, store: ObjectStore) -> None:
        s3 = _s3(store)
        other = {"ID": "ops-rule", "AllowedOrigins": ["https://ops.example"],
                 "AllowedMethods": ["PUT"]}  # fmt: skip
        self.raw.put_bucket_cors(Bucket=s3.bucket, CORSConfiguration={"CORSRules": [other]})
        await store.set_cors(["http://editor.example"])
        await store.set_cors(["http://editor.example", "http://other.example"])
        rules = self.raw.get_bucket_cors(Bucket=s3.bucket)["CORSRules"]
        assert [r.get("ID") for r in rules] == ["ops-rule", "strata-editor"]
        ours = rules[1]
        assert ours["AllowedOrigins"] == ["http://editor.example", "http://other.example"]
        assert sorted(ours["AllowedMethods"]) == ["GET", "HEAD"]
        assert {"Content-Encoding", "Content-Length", "ETag"} <= set(ours["ExposeHeaders"])

    async def test_check_passes_on_an_existing_bucket(self, store: ObjectStore) -> None:
        await store.check()


async def test_s3rver_ignores_if_none_match_so_create_only_is_tested_on_moto(
    s3rver: S3Server, s3rver_bucket: str
) -> None:
    """s3rver overwrites despite ``If-None-Match: *``: a server quirk, not strata's.

    This is why the conformance suite runs S3 against moto, which enforces it; s3rver is
    used for what moto cannot do (signature and expiry checks).
    """
    store = S3Store.from_url(s3rver_bucket, "", {"endpoint": s3rver.endpoint})
    try:
        await store.put_new(KEYS[0], b"first")
        await store.put_new(KEYS[0], b"second")  # no AlreadyExists from s3rver
        assert await store.get(KEYS[0]) == b"second"
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("NoSuchKey", 404, ObjectNotFound),
        ("404", 404, ObjectNotFound),
        ("PreconditionFailed", 412, AlreadyExists),
        ("ConditionalRequestConflict", 409, StoreUnavailable),
        ("SlowDown", 503, StoreUnavailable),
        ("InternalError", 500, StoreUnavailable),
        ("AccessDenied", 403, ConfigError),
        ("NoSuchBucket", 404, ConfigError),
    ],
)
def test_provider_errors_map_to_the_error_tree(
    code: str, status: int, expected: type[Exception]
) -> None:
    """Answers moto never gives (503, 409) are mapped from botocore's error shape."""
    store = S3Store(S3Settings("bucket"))
    error = ClientError(
        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject"
    )
    assert type(store._translate(error, "k")) is expected

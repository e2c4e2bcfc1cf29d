"""Amazon S3 (and S3-compatible servers) as an object store, on boto3.

boto3 calls run in a thread pool sized to botocore's connection pool. It was measured
against aiobotocore with ``python -m bench.store_upload``: against a local S3 server
(moto) the two upload at the same rate (within 6 % either way at 8 and 32 concurrent
uploads of 1 KB and 100 KB, with the same client CPU per upload), so the tie went to
the client that is already a runtime dependency and does not pin botocore to a narrow
range.

Create-only writes send ``If-None-Match: *``; AWS and moto answer 412 when the key
exists. s3rver ignores the header (it overwrites), which is why the conformance suite
runs S3 against moto and uses s3rver only for signature checks.

Lifecycle (SPEC §10): every object is written with the tag ``strata-expirable=true``;
pinning replaces the tag set with ``strata-pinned=true`` and unpinning puts the
expirable tag back. The bucket's lifecycle rule expires objects by prefix and tag.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from trace_store import keys
from trace_store.backends.base import LifecycleBucket, LifecycleObject, ObjectInfo, SignedURL
from trace_store.backends.blocking import BlockingClientStore
from trace_store.backends.s3_client import POOL_SIZE, S3Settings, make_client
from trace_store.backends.url import SETTING
from trace_store.errors import (
    AlreadyExists,
    ConfigError,
    InvalidInput,
    ObjectNotFound,
    StoreUnavailable,
    StrataError,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence


EXPIRABLE_TAG = (keys.EXPIRABLE_TAG, keys.TAG_TRUE)
PINNED_TAG = (keys.PINNED_TAG, keys.TAG_TRUE)
CORS_RULE_ID = "strata-editor"
#: SigV4 presigned URLs live at most seven days.
MAX_SIGNED_EXPIRY = timedelta(days=7)
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_NO_BUCKET = {"NoSuchBucket"}
_DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"}
#: S3 bucket-level lifecycle settings that live beside the rules and must survive a put.
_S3_KEPT_SETTINGS = ("TransitionDefaultMinimumObjectSize",)


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _status(err: ClientError) -> int:
    return int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


class S3Store(BlockingClientStore):
    """Objects in one S3 bucket under an optional key prefix."""

    scheme = "s3"
    supports_cors = True
    client_errors = (ClientError, BotoCoreError)

    #: ``CopyObject`` with ``If-None-Match`` is atomic on AWS, but moto (5.x) and s3rver
    #: ignore the header on copy, so ``_copy`` also checks the destination first. On a
    #: server that ignores it, two copies racing to one new key can both succeed.
    copy_checks_destination: ClassVar[bool] = True
    #: Keys per ListObjectsV2 page (S3's maximum; tests lower it to see pagination).
    list_page_size: int = 1000

    def __init__(self, settings: S3Settings, *, client: Any | None = None) -> None:
        super().__init__(settings.prefix, POOL_SIZE)
        self.settings = settings
        self.bucket = settings.bucket
        self.client = client if client is not None else make_client(settings)
        self._probe: Any | None = None

    @classmethod
    def from_url(cls, bucket: str, prefix: str, query: dict[str, str]) -> S3Store:
        """Build a store from the parts of ``s3://bucket/prefix?endpoint=&region=``."""
        return cls(S3Settings.from_query(bucket, prefix, query))

    def describe(self) -> str:
        where = f" at {self.settings.endpoint}" if self.settings.endpoint else ""
        return f"s3://{self.bucket}/{self.prefix}{where}"

    # -- boto3's errors ----------------------------------------------------------------

    def _translate(self, err: Exception, key: str) -> StrataError:
        what = f"object {key!r}" if key else f"bucket {self.bucket!r}"
        if isinstance(err, NoCredentialsError | PartialCredentialsError):
            return ConfigError(
                f"{SETTING}: no usable AWS credentials for {self.describe()}; set"
                " AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
            )
        if isinstance(err, BotoConnectionError | HTTPClientError):
            return StoreUnavailable(f"S3 endpoint of {self.describe()} unreachable: {err}")
        if not isinstance(err, ClientError):
            # Parameter validation and similar local failures: retrying will not help.
            return StrataError(f"S3 request for {what} failed: {err}")
        code, status = _code(err), _status(err)
        if code in _NOT_FOUND:
            return ObjectNotFound(f"no {what} in {self.describe()}")
        if code in _NO_BUCKET:
            return ConfigError(
                f"{SETTING}: bucket {self.bucket!r} does not exist ({self.describe()})"
            )
        # S3 also answers 403 (not 404) for a missing key when the credentials lack
        # s3:ListBucket, which is a permission to grant, so it is a config error too.
        if code in _DENIED or status == 403:
            return ConfigError(
                f"{SETTING}: S3 refused the credentials for {self.describe()} ({code})"
            )
        if code == "PreconditionFailed" or status == 412:
            return AlreadyExists(f"{what} already exists")
        if code == "InvalidRange" or status == 416:
            return InvalidInput(f"range not satisfiable for {what}")
        # AWS answers 409 ConditionalRequestConflict while another conditional write to
        # the same key is in flight; retrying resolves it to success or AlreadyExists.
        if status >= 500 or status in (409, 429) or code in ("SlowDown", "RequestTimeout"):
            return StoreUnavailable(f"S3 is unavailable for {what}: {code} ({status})")
        return StrataError(f"S3 request for {what} failed: {code} ({status})")

    def _tagging(self, tag: tuple[str, str]) -> dict[str, Any]:
        return {"TagSet": [{"Key": tag[0], "Value": tag[1]}]}

    # -- primitives -------------------------------------------------------------------

    async def _put_new(
        self, key: str, data: bytes, content_type: str, content_encoding: str | None
    ) -> None:
        extra: dict[str, Any] = {"ContentEncoding": content_encoding} if content_encoding else {}
        await self._run(
            lambda: self.client.put_object(
                Bucket=self.bucket,
                Key=self.full_key(key),
                Body=data,
                ContentType=content_type,
                IfNoneMatch="*",
                Tagging=f"{EXPIRABLE_TAG[0]}={EXPIRABLE_TAG[1]}",
                **extra,
            ),
            key=key,
        )

    def _get_sync(self, key: str, byte_range: tuple[int, int] | None) -> bytes:
        extra = {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else {}
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key), **extra)
        except ClientError as err:
            # S3 answers 416 for a range that starts at or past the end; the interface
            # (like a file read past EOF) returns no bytes instead.
            if byte_range is not None and (_code(err) == "InvalidRange" or _status(err) == 416):
                return b""
            raise
        with response["Body"] as body:
            return bytes(body.read())

    async def _get(self, key: str, byte_range: tuple[int, int] | None) -> bytes:
        return await self._run(self._get_sync, key, byte_range, key=key)

    async def _head(self, key: str) -> ObjectInfo:
        response = await self._run(
            lambda: self.client.head_object(Bucket=self.bucket, Key=self.full_key(key)), key=key
        )
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            content_type=response.get("ContentType"),
            content_encoding=response.get("ContentEncoding"),
            created=response.get("LastModified"),
            metadata=dict(response.get("Metadata") or {}),
        )

    async def _list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        # full_key("") is the store's own prefix with its slash, or "" without one.
        pages: Iterator[dict[str, Any]] = iter(
            paginator.paginate(
                Bucket=self.bucket,
                Prefix=self.full_key(prefix),
                PaginationConfig={"PageSize": self.list_page_size},
            )
        )
        strip = len(self.prefix) + 1 if self.prefix else 0
        while (page := await self._run(next, pages, None)) is not None:
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    key=item["Key"][strip:],
                    size=int(item["Size"]),
                    created=item.get("LastModified"),
                )

    async def _sign_get(self, key: str, expires_in: timedelta) -> SignedURL:
        if not timedelta(seconds=1) <= expires_in <= MAX_SIGNED_EXPIRY:
            raise InvalidInput("S3 signed URLs must expire between 1 second and 7 days")
        seconds = int(expires_in.total_seconds())
        expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
        # Presigning is local computation, but resolving credentials may touch the
        # network (instance metadata), so it runs in the pool like every other call.
        url = await self._run(
            lambda: self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self.full_key(key)},
                ExpiresIn=seconds,
            ),
            key=key,
        )
        return SignedURL(url=str(url), expires_at=expires_at)

    async def _copy(self, src: str, dst: str) -> None:
        if self.copy_checks_destination and await self.exists(dst):
            raise AlreadyExists(f"object {dst!r} already exists")
        await self._run(
            lambda: self.client.copy_object(
                Bucket=self.bucket,
                Key=self.full_key(dst),
                CopySource={"Bucket": self.bucket, "Key": self.full_key(src)},
                IfNoneMatch="*",
                MetadataDirective="COPY",
                # The copy is a new object: expirable, even if the source is pinned.
                TaggingDirective="REPLACE",
                Tagging=f"{EXPIRABLE_TAG[0]}={EXPIRABLE_TAG[1]}",
            ),
            key=src,
        )

    async def _retag(self, key: str, tag: tuple[str, str]) -> None:
        await self._run(
            lambda: self.client.put_object_tagging(
                Bucket=self.bucket, Key=self.full_key(key), Tagging=self._tagging(tag)
            ),
            key=key,
        )

    async def _pin(self, key: str) -> None:
        await self._retag(key, PINNED_TAG)

    async def _unpin(self, key: str) -> None:
        await self._retag(key, EXPIRABLE_TAG)

    # -- bucket-level -----------------------------------------------------------------

    def _other_cors_rules_sync(self) -> list[dict[str, Any]]:
        """The bucket's CORS rules that strata did not write (they are kept as they are)."""
        try:
            current = self.client.get_bucket_cors(Bucket=self.bucket)
        except ClientError as err:
            if _code(err) == "NoSuchCORSConfiguration":
                return []
            raise
        return [r for r in current.get("CORSRules", []) if r.get("ID") != CORS_RULE_ID]

    async def set_cors(self, origins: Sequence[str]) -> None:
        if not origins:
            raise InvalidInput("set_cors needs at least one origin")
        rule = {
            "ID": CORS_RULE_ID,
            "AllowedOrigins": list(origins),
            "AllowedMethods": ["GET", "HEAD"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": [
                "Content-Encoding",
                "Content-Length",
                "Content-Range",
                "Content-Type",
                "ETag",
            ],
            "MaxAgeSeconds": 3600,
        }
        rules = await self._run(self._other_cors_rules_sync)
        await self._run(
            lambda: self.client.put_bucket_cors(
                Bucket=self.bucket, CORSConfiguration={"CORSRules": [*rules, rule]}
            )
        )

    # -- bucket lifecycle (blocking: callers run these in a thread) --------------------

    def lifecycle_bucket(self) -> LifecycleBucket:
        return LifecycleBucket("s3", self.bucket, self.prefix)

    def _read_lifecycle_sync(self) -> dict[str, Any] | None:
        try:
            response = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
        except ClientError as err:
            if _code(err) == "NoSuchLifecycleConfiguration":
                return None
            raise
        config = {"Rules": list(response.get("Rules") or [])}
        config.update({k: response[k] for k in _S3_KEPT_SETTINGS if k in response})
        return config

    def read_lifecycle(self) -> dict[str, Any] | None:
        """``{"Rules": [...]}`` plus the bucket-level settings beside them."""
        with self.sdk_errors():
            return self._read_lifecycle_sync()

    def write_lifecycle(self, config: dict[str, Any]) -> None:
        """Put ``config["Rules"]``; the bucket-level settings beside the rules (such as
        ``TransitionDefaultMinimumObjectSize``) are re-read and kept as they were."""
        with self.sdk_errors():
            current = self._read_lifecycle_sync() or {}
            extra = {k: current[k] for k in _S3_KEPT_SETTINGS if k in current}
            self.client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": config["Rules"]}, **extra
            )

    def lifecycle_objects(self, prefixes: Sequence[str]) -> list[LifecycleObject]:
        """Each object with its ``LastModified`` and tag set (one tagging read per object)."""
        found: list[LifecycleObject] = []
        with self.sdk_errors():
            for prefix in prefixes:
                for page in self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=prefix
                ):
                    for item in page.get("Contents", []):
                        tags = self.client.get_object_tagging(Bucket=self.bucket, Key=item["Key"])
                        found.append(
                            LifecycleObject(
                                item["Key"],
                                item["LastModified"],
                                tags={tag["Key"]: tag["Value"] for tag in tags["TagSet"]},
                            )
                        )
        return found

    async def check(self) -> None:
        endpoint = self.settings.endpoint or "the default AWS endpoint"
        if self._probe is None:
            # One attempt: start-up and /readyz want a prompt answer, not retries.
            self._probe = make_client(self.settings, pool_size=1, attempts=1)
        probe = self._probe
        try:
            await self._run(lambda: probe.head_bucket(Bucket=self.bucket))
        except ObjectNotFound:
            # HeadBucket has no body, so a missing bucket arrives as a bare 404.
            raise ConfigError(
                f"{SETTING}: bucket {self.bucket!r} does not exist at {endpoint}"
            ) from None
        except StoreUnavailable as err:
            raise ConfigError(f"{SETTING}: cannot reach S3 at {endpoint}: {err}") from err

    async def close(self) -> None:
        await self._close_pool()
        self.client.close()
        if self._probe is not None:
            self._probe.close()

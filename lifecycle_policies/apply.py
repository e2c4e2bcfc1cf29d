"""Provider I/O for ``strata lifecycle``: read and write a bucket's lifecycle rules,
and read its objects' lifecycle state (S3 tags, GCS ``customTime``).

Everything here is blocking (boto3, google-cloud-storage) and runs on the clients the
stores already hold; callers run it in a thread. Planning itself is pure
(:mod:`lifecycle_policies.diff`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from lifecycle_policies.diff import Plan, plan_gcs, plan_s3
from lifecycle_policies.evaluate import GcsObject, S3Object
from lifecycle_policies.layout import key_prefixes
from lifecycle_policies.render import render_gcs, render_s3
from trace_store.backends.gcs import RETRY, GCSStore
from trace_store.backends.s3 import S3Store
from trace_store.errors import InvalidInput

if TYPE_CHECKING:
    from lifecycle_policies.diff import Provider
    from lifecycle_policies.policy import Policy
    from trace_store.backends.base import ObjectStore

#: S3 bucket-level lifecycle settings that live beside the rules and must survive a put.
_S3_KEPT_SETTINGS = ("TransitionDefaultMinimumObjectSize",)


@dataclass(frozen=True, slots=True)
class Bucket:
    """A store's bucket as lifecycle sees it: provider, name and strata's prefix."""

    provider: Provider
    name: str
    prefix: str
    store: ObjectStore


def bucket_of(store: ObjectStore) -> Bucket:
    """The bucket behind ``store``; :class:`InvalidInput` for stores without one
    (``file:``, ``memory:``: there ``strata lifecycle expire`` does the expiring)."""
    if isinstance(store, S3Store):
        return Bucket("s3", store.bucket, store.prefix, store)
    if isinstance(store, GCSStore):
        return Bucket("gcs", store.settings.bucket, store.prefix, store)
    raise InvalidInput(
        f"{store.describe()} has no bucket lifecycle; local stores expire objects with"
        " `strata lifecycle expire`"
    )


def desired(bucket: Bucket, policy: Policy) -> dict[str, Any]:
    """strata's rules for ``bucket`` in the provider's JSON."""
    if bucket.provider == "s3":
        return render_s3(policy, bucket.prefix)
    return render_gcs(policy, bucket.prefix)


def read_rules(bucket: Bucket) -> dict[str, Any] | None:
    """The bucket's lifecycle configuration as the provider returns it (S3:
    ``{"Rules": [...], ...}``; GCS: ``{"lifecycle": {"rule": [...]}}``), ``None`` if it
    has none."""
    if isinstance(bucket.store, S3Store):
        try:
            response = bucket.store.client.get_bucket_lifecycle_configuration(Bucket=bucket.name)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
                return None
            raise
        config = {"Rules": list(response.get("Rules") or [])}
        config.update({k: response[k] for k in _S3_KEPT_SETTINGS if k in response})
        return config
    assert isinstance(bucket.store, GCSStore)
    gcs = bucket.store.client.get_bucket(bucket.name, retry=RETRY)
    # The raw JSON resource: the typed rule helpers would drop fields they do not know.
    lifecycle = dict(gcs._properties.get("lifecycle") or {})
    return {"lifecycle": lifecycle} if lifecycle.get("rule") else None


def plan(bucket: Bucket, policy: Policy) -> Plan:
    """Compare the bucket's rules with the policy's (one read, no change)."""
    current = read_rules(bucket)
    want = desired(bucket, policy)
    if bucket.provider == "s3":
        return plan_s3(current, want, bucket.prefix)
    return plan_gcs(current, want, bucket.prefix)


def write_rules(bucket: Bucket, plan: Plan) -> None:
    """Put ``plan.merged`` (every foreign rule as it was, plus strata's) on the bucket.
    Bucket-level settings beside the S3 rules are kept as they were."""
    if isinstance(bucket.store, S3Store):
        client = bucket.store.client
        current = read_rules(bucket) or {}
        extra = {k: current[k] for k in _S3_KEPT_SETTINGS if k in current}
        client.put_bucket_lifecycle_configuration(
            Bucket=bucket.name, LifecycleConfiguration={"Rules": plan.merged["Rules"]}, **extra
        )
        return
    assert isinstance(bucket.store, GCSStore)
    gcs = bucket.store.client.get_bucket(bucket.name, retry=RETRY)
    gcs.lifecycle_rules = plan.merged["lifecycle"]["rule"]
    gcs.patch(retry=RETRY)


def s3_objects(bucket: Bucket) -> list[S3Object]:
    """Every strata object of an S3 bucket with its creation time and tag set (one
    tagging read per object)."""
    assert isinstance(bucket.store, S3Store)
    client = bucket.store.client
    found: list[S3Object] = []
    for prefix in key_prefixes(bucket.prefix).kinds:
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket.name, Prefix=prefix
        ):
            for item in page.get("Contents", []):
                tags = client.get_object_tagging(Bucket=bucket.name, Key=item["Key"])["TagSet"]
                found.append(
                    S3Object(
                        item["Key"],
                        item["LastModified"],
                        {tag["Key"]: tag["Value"] for tag in tags},
                    )
                )
    return found


def gcs_objects(bucket: Bucket) -> list[GcsObject]:
    """Every strata object of a GCS bucket with its creation time and ``customTime``."""
    assert isinstance(bucket.store, GCSStore)
    client = bucket.store.client
    found: list[GcsObject] = []
    for prefix in key_prefixes(bucket.prefix).kinds:
        for blob in client.list_blobs(bucket.name, prefix=prefix, retry=RETRY):
            found.append(GcsObject(blob.name, blob.time_created, blob.custom_time))
    return found

"""``strata lifecycle`` on a bucket: strata's rules for it, the plan against its current
rules, and its objects' lifecycle state (S3 tags, GCS ``customTime``) in the
evaluator's terms.

The provider I/O is the store's (:meth:`~trace_store.backends.base.ObjectStore.read_lifecycle`,
``write_lifecycle``, ``lifecycle_objects``): blocking, its SDK errors translated to
strata's; callers run it in a thread. Planning itself is pure
(:mod:`lifecycle_policies.diff`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lifecycle_policies.diff import Plan, plan_gcs, plan_s3
from lifecycle_policies.evaluate import GcsObject, S3Object
from lifecycle_policies.layout import key_prefixes
from lifecycle_policies.render import render_gcs, render_s3

if TYPE_CHECKING:
    from lifecycle_policies.diff import Provider
    from lifecycle_policies.policy import Policy
    from trace_store.backends.base import ObjectStore


@dataclass(frozen=True, slots=True)
class Bucket:
    """A store's bucket as lifecycle sees it: provider, name and strata's prefix."""

    provider: Provider
    name: str
    prefix: str
    store: ObjectStore


def bucket_of(store: ObjectStore) -> Bucket:
    """The bucket behind ``store``; :class:`~trace_store.errors.InvalidInput` for stores
    without one (``file:``, ``memory:``: there ``strata lifecycle expire`` does the
    expiring)."""
    where = store.lifecycle_bucket()
    return Bucket(where.provider, where.name, where.prefix, store)


def desired(bucket: Bucket, policy: Policy) -> dict[str, Any]:
    """strata's rules for ``bucket`` in the provider's JSON."""
    if bucket.provider == "s3":
        return render_s3(policy, bucket.prefix)
    return render_gcs(policy, bucket.prefix)


def read_rules(bucket: Bucket) -> dict[str, Any] | None:
    """The bucket's lifecycle configuration as the provider returns it (S3:
    ``{"Rules": [...], ...}``; GCS: ``{"lifecycle": {"rule": [...]}}``), ``None`` if it
    has none."""
    return bucket.store.read_lifecycle()


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
    bucket.store.write_lifecycle(plan.merged)


def s3_objects(bucket: Bucket) -> list[S3Object]:
    """Every strata object of an S3 bucket with its creation time and tag set (one
    tagging read per object)."""
    assert bucket.provider == "s3"
    return [
        S3Object(found.name, found.created, found.tags)
        for found in bucket.store.lifecycle_objects(key_prefixes(bucket.prefix).kinds)
    ]


def gcs_objects(bucket: Bucket) -> list[GcsObject]:
    """Every strata object of a GCS bucket with its creation time and ``customTime``."""
    assert bucket.provider == "gcs"
    return [
        GcsObject(found.name, found.created, found.custom_time)
        for found in bucket.store.lifecycle_objects(key_prefixes(bucket.prefix).kinds)
    ]

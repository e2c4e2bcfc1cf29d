"""Pure renderers: a :class:`Policy` as each provider's lifecycle JSON.

S3 (the ``LifecycleConfiguration`` that boto3's ``put_bucket_lifecycle_configuration``
takes), one rule per concern, each with an ID starting with ``strata-``:

* ``strata-traces``: prefix ``<prefix>/traces/`` **and** tag ``strata-expirable=true``,
  expire after ``traces.retain_days``. A pinned object's tag set is replaced by
  ``strata-pinned=true``, so the rule stops matching it; S3 counts age from creation,
  so an old object that is unpinned expires at the next lifecycle run.
* ``strata-unmatched``: prefix ``<prefix>/unmatched/`` alone, expire after
  ``unmatched.retain_days``. Unmatched objects are never pinned, so a tag condition
  would protect nothing and would add a way to leak: an object whose tagging failed
  would never expire. (Adoption by a new handler copies the object under ``traces/``,
  so expiring the original is right.)
* ``strata-abort-multipart``: prefix ``<prefix>/`` (the whole bucket when the store
  has no prefix), abort incomplete multipart uploads after
  ``multipart.abort_incomplete_days``. S3 rejects tag filters on this action and a
  filter holds one prefix, so the store root is the narrowest filter covering both
  kinds. Give the store a prefix if the bucket also holds others' slow uploads.

GCS (the JSON API's bucket ``lifecycle`` field). GCS rules have no IDs; strata's rules
are the ones whose ``matchesPrefix`` lies entirely under strata's kind prefixes (see
:mod:`lifecycle_policies.diff`):

* Delete when ``daysSinceCustomTime >= traces.retain_days`` under ``<prefix>/traces/``.
  Objects are written with ``customTime`` = creation time; a pin is a lease that moves
  ``customTime`` forward. An object without ``customTime`` never matches, so backends
  must set it in the same request that creates the object.
* Delete when ``age >= unmatched.retain_days`` under ``<prefix>/unmatched/``: never
  pinned, so creation age is the whole rule and no metadata can make it leak.
* AbortIncompleteMultipartUpload when ``age >= multipart.abort_incomplete_days``
  under both kind prefixes (GCS accepts a list, so nothing outside strata's keys).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lifecycle_policies.layout import key_prefixes
from trace_store.keys import EXPIRABLE_TAG, TAG_TRUE

if TYPE_CHECKING:
    from lifecycle_policies.policy import Policy

S3_TRACES_RULE = "strata-traces"
S3_UNMATCHED_RULE = "strata-unmatched"
S3_MULTIPART_RULE = "strata-abort-multipart"

GCS_DELETE = "Delete"
GCS_ABORT_MULTIPART = "AbortIncompleteMultipartUpload"


def render_s3(policy: Policy, prefix: str = "") -> dict[str, Any]:
    """The S3 lifecycle configuration (``{"Rules": [...]}``) strata wants for a store
    whose URL has ``prefix``. Contains strata's rules only."""
    keys = key_prefixes(prefix)
    return {
        "Rules": [
            {
                "ID": S3_TRACES_RULE,
                "Status": "Enabled",
                "Filter": {
                    "And": {
                        "Prefix": keys.traces,
                        "Tags": [{"Key": EXPIRABLE_TAG, "Value": TAG_TRUE}],
                    }
                },
                "Expiration": {"Days": policy.traces_retain_days},
            },
            {
                "ID": S3_UNMATCHED_RULE,
                "Status": "Enabled",
                "Filter": {"Prefix": keys.unmatched},
                "Expiration": {"Days": policy.unmatched_retain_days},
            },
            {
                "ID": S3_MULTIPART_RULE,
                "Status": "Enabled",
                "Filter": {"Prefix": keys.root},
                "AbortIncompleteMultipartUpload": {
                    "DaysAfterInitiation": policy.abort_incomplete_multipart_days
                },
            },
        ]
    }


def render_gcs(policy: Policy, prefix: str = "") -> dict[str, Any]:
    """The GCS bucket lifecycle (``{"lifecycle": {"rule": [...]}}``, JSON API form)
    strata wants for a store whose URL has ``prefix``. Contains strata's rules only."""
    keys = key_prefixes(prefix)
    return {
        "lifecycle": {
            "rule": [
                {
                    "action": {"type": GCS_DELETE},
                    "condition": {
                        "daysSinceCustomTime": policy.traces_retain_days,
                        "matchesPrefix": [keys.traces],
                    },
                },
                {
                    "action": {"type": GCS_DELETE},
                    "condition": {
                        "age": policy.unmatched_retain_days,
                        "matchesPrefix": [keys.unmatched],
                    },
                },
                {
                    "action": {"type": GCS_ABORT_MULTIPART},
                    "condition": {
                        "age": policy.abort_incomplete_multipart_days,
                        "matchesPrefix": [keys.traces, keys.unmatched],
                    },
                },
            ]
        }
    }

"""Retention by the bucket's own lifecycle rules (SPEC §10): the policy model, the
S3/GCS renderers, the plan against a bucket's rules, and pure models of what the
providers delete and of strata's pin protocol over time. No I/O here."""

from lifecycle_policies.diff import Plan, RuleChange, plan_gcs, plan_s3
from lifecycle_policies.policy import Policy, PolicyError
from lifecycle_policies.render import render_gcs, render_s3

__all__ = [
    "Plan",
    "Policy",
    "PolicyError",
    "RuleChange",
    "plan_gcs",
    "plan_s3",
    "render_gcs",
    "render_s3",
]

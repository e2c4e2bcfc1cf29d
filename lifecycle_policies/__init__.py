"""Retention by the bucket's own lifecycle rules (SPEC §10): the policy model, the
S3/GCS renderers, the plan against a bucket's rules, and a pure model of what the
providers delete. No I/O here. (The model of strata's pin protocol over time that the
property tests check lives in ``tests/pin_model.py``.)"""

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

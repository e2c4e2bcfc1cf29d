"""Rendering the policy as provider lifecycle JSON, and planning against a bucket."""

from __future__ import annotations

import copy

import pytest

from lifecycle_policies.diff import plan_gcs, plan_s3
from lifecycle_policies.policy import Policy
from lifecycle_policies.render import render_gcs, render_s3
from trace_store.errors import InvalidInput

CUSTOM = Policy(
    traces_retain_days=14, keep_latest=5, unmatched_retain_days=2, abort_incomplete_multipart_days=4
)

OPS_LOGS_S3 = {
    "ID": "ops-logs",
    "Status": "Enabled",
    "Filter": {"Prefix": "logs/"},
    "Expiration": {"Days": 90},
}
OPS_LOGS_GCS = {
    "action": {"type": "Delete"},
    "condition": {"age": 90, "matchesPrefix": ["logs/"]},
}


def test_render_s3_exact_json_without_prefix() -> None:
    assert render_s3(Policy.default()) == {
        "Rules": [
            {
                "ID": "strata-traces",
                "Status": "Enabled",
                "Filter": {
                    "And": {
                        "Prefix": "traces/",
                        "Tags": [{"Key": "strata-expirable", "Value": "true"}],
                    }
                },
                "Expiration": {"Days": 7},
            },
            {
                "ID": "strata-unmatched",
                "Status": "Enabled",
                "Filter": {"Prefix": "unmatched/"},
                "Expiration": {"Days": 3},
            },
            {
                "ID": "strata-abort-multipart",
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            },
        ]
    }


def test_render_s3_exact_json_with_prefix_and_custom_policy() -> None:
    assert render_s3(CUSTOM, prefix="myprefix") == {
        "Rules": [
            {
                "ID": "strata-traces",
                "Status": "Enabled",
                "Filter": {
                    "And": {
                        "Prefix": "myprefix/traces/",
                        "Tags": [{"Key": "strata-expirable", "Value": "true"}],
                    }
                },
                "Expiration": {"Days": 14},
            },
            {
                "ID": "strata-unmatched",
                "Status": "Enabled",
                "Filter": {"Prefix": "myprefix/unmatched/"},
                "Expiration": {"Days": 2},
            },
            {
                "ID": "strata-abort-multipart",
                "Status": "Enabled",
                "Filter": {"Prefix": "myprefix/"},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 4},
            },
        ]
    }


def test_render_gcs_exact_json_without_prefix() -> None:
    assert render_gcs(Policy.default()) == {
        "lifecycle": {
            "rule": [
                {
                    "action": {"type": "Delete"},
                    "condition": {"daysSinceCustomTime": 7, "matchesPrefix": ["traces/"]},
                },
                {
                    "action": {"type": "Delete"},
                    "condition": {"age": 3, "matchesPrefix": ["unmatched/"]},
                },
                {
                    "action": {"type": "AbortIncompleteMultipartUpload"},
                    "condition": {"age": 1, "matchesPrefix": ["traces/", "unmatched/"]},
                },
            ]
        }
    }


def test_render_gcs_exact_json_with_prefix_and_custom_policy() -> None:
    assert render_gcs(CUSTOM, prefix="myprefix") == {
        "lifecycle": {
            "rule": [
                {
                    "action": {"type": "Delete"},
                    "condition": {
                        "daysSinceCustomTime": 14,
                        "matchesPrefix": ["myprefix/traces/"],
                    },
                },
                {
                    "action": {"type": "Delete"},
                    "condition": {"age": 2, "matchesPrefix": ["myprefix/unmatched/"]},
                },
                {
                    "action": {"type": "AbortIncompleteMultipartUpload"},
                    "condition": {
                        "age": 4,
                        "matchesPrefix": ["myprefix/traces/", "myprefix/unmatched/"],
                    },
                },
            ]
        }
    }


@pytest.mark.parametrize("prefix", ["myprefix", "/myprefix", "myprefix/", "/myprefix/"])
def test_surrounding_slashes_of_the_store_prefix_do_not_matter(prefix: str) -> None:
    assert render_s3(Policy.default(), prefix) == render_s3(Policy.default(), "myprefix")
    assert render_gcs(Policy.default(), prefix) == render_gcs(Policy.default(), "myprefix")


def test_nested_store_prefix() -> None:
    rules = render_s3(Policy.default(), "team/strata")["Rules"]
    assert rules[0]["Filter"]["And"]["Prefix"] == "team/strata/traces/"
    assert rules[2]["Filter"]["Prefix"] == "team/strata/"


@pytest.mark.parametrize("prefix", ["a/../b", "a//b", "./a"])
def test_malformed_store_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(InvalidInput):
        render_s3(Policy.default(), prefix)


def test_every_s3_rule_is_strata_owned() -> None:
    assert all(rule["ID"].startswith("strata-") for rule in render_s3(CUSTOM)["Rules"])


# --- S3 plan ------------------------------------------------------------------------


def test_plan_s3_on_a_bucket_without_lifecycle_adds_every_rule() -> None:
    desired = render_s3(Policy.default())
    plan = plan_s3(None, desired)
    assert [(c.kind, c.name) for c in plan.changes] == [
        ("add", "strata-traces"),
        ("add", "strata-unmatched"),
        ("add", "strata-abort-multipart"),
    ]
    assert plan.has_drift
    assert plan.merged == desired


def test_plan_s3_in_sync_has_no_drift() -> None:
    desired = render_s3(Policy.default())
    plan = plan_s3(copy.deepcopy(desired), desired)
    assert not plan.has_drift
    assert {c.kind for c in plan.changes} == {"keep"}
    assert "No changes." in plan.render_text()


def test_plan_s3_keeps_a_foreign_rule_untouched() -> None:
    desired = render_s3(Policy.default())
    current = {"Rules": [copy.deepcopy(OPS_LOGS_S3), *copy.deepcopy(desired["Rules"])]}
    plan = plan_s3(current, desired)
    assert not plan.has_drift
    assert plan.foreign == (OPS_LOGS_S3,)
    assert plan.merged["Rules"][0] == OPS_LOGS_S3
    assert [rule["ID"] for rule in plan.merged["Rules"]] == [
        "ops-logs",
        "strata-traces",
        "strata-unmatched",
        "strata-abort-multipart",
    ]
    assert "'ops-logs' (untouched)" in plan.render_text()
    assert plan.warnings == ()


def test_plan_s3_detects_drift_after_an_edit_and_the_merge_repairs_it() -> None:
    desired = render_s3(Policy.default())
    edited = copy.deepcopy(desired["Rules"])
    edited[0]["Expiration"]["Days"] = 30  # someone edited strata-traces by hand
    del edited[1]  # ...and deleted strata-unmatched
    stale = {"ID": "strata-old", "Status": "Enabled", "Filter": {"Prefix": "x/"}}
    current = {"Rules": [OPS_LOGS_S3, *edited, stale]}

    plan = plan_s3(current, desired)

    assert plan.has_drift
    assert [(c.kind, c.name) for c in plan.changes] == [
        ("change", "strata-traces"),
        ("add", "strata-unmatched"),
        ("keep", "strata-abort-multipart"),
        ("remove", "strata-old"),
    ]
    assert plan.changes[0].field_changes() == [("Expiration.Days", 30, 7)]
    text = plan.render_text()
    assert "~ change strata-traces" in text
    assert "Expiration.Days: 30 -> 7" in text
    assert "- remove strata-old" in text
    assert "1 to add, 1 to change, 1 to remove, 1 unchanged; 1 foreign rule" in text

    repaired = plan_s3(plan.merged, desired)
    assert not repaired.has_drift
    assert repaired.foreign == (OPS_LOGS_S3,)
    assert OPS_LOGS_S3 in plan.merged["Rules"]


def test_plan_s3_ignores_tag_order_and_absent_fields() -> None:
    desired = render_s3(Policy.default())
    current = copy.deepcopy(desired)
    current["Rules"][0]["Filter"]["And"]["Tags"] = list(
        reversed(current["Rules"][0]["Filter"]["And"]["Tags"])
    )
    current["Rules"][1]["Transitions"] = None
    assert not plan_s3(current, desired).has_drift


def test_plan_s3_warns_about_a_foreign_rule_that_can_expire_pinned_traces() -> None:
    desired = render_s3(Policy.default(), "myprefix")
    greedy = {"ID": "ops-all", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 30}}
    plan = plan_s3({"Rules": [greedy, OPS_LOGS_S3]}, desired, "myprefix")
    assert len(plan.warnings) == 1
    assert "'ops-all'" in plan.warnings[0]
    assert greedy in plan.merged["Rules"]


def test_plan_s3_refuses_a_desired_rule_it_would_not_own() -> None:
    with pytest.raises(ValueError, match="strata-"):
        plan_s3(None, {"Rules": [OPS_LOGS_S3]})


# --- GCS plan -----------------------------------------------------------------------


def test_plan_gcs_keeps_a_foreign_rule_untouched() -> None:
    desired = render_gcs(Policy.default())
    current = {"lifecycle": {"rule": [OPS_LOGS_GCS, *copy.deepcopy(desired["lifecycle"]["rule"])]}}
    plan = plan_gcs(current, desired)
    assert not plan.has_drift
    assert plan.foreign == (OPS_LOGS_GCS,)
    assert plan.merged["lifecycle"]["rule"][0] == OPS_LOGS_GCS
    assert [c.name for c in plan.changes] == [
        "strata-traces",
        "strata-unmatched",
        "strata-abort-multipart",
    ]


def test_plan_gcs_detects_drift_after_an_edit_and_the_merge_repairs_it() -> None:
    desired = render_gcs(Policy.default(), "myprefix")
    edited = copy.deepcopy(desired["lifecycle"]["rule"])
    edited[0]["condition"]["daysSinceCustomTime"] = 30
    extra = {  # ops added a rule under strata's prefix: it could delete pinned traces
        "action": {"type": "Delete"},
        "condition": {"age": 1, "matchesPrefix": ["myprefix/traces/shop/"]},
    }
    # A rule on an unprefixed traces/ belongs to someone else when strata uses myprefix/.
    other_store = {
        "action": {"type": "Delete"},
        "condition": {"age": 5, "matchesPrefix": ["traces/"]},
    }
    current = {"lifecycle": {"rule": [OPS_LOGS_GCS, other_store, *edited, extra]}}

    plan = plan_gcs(current, desired, "myprefix")

    assert plan.has_drift
    assert [(c.kind, c.name) for c in plan.changes] == [
        ("change", "strata-traces"),
        ("keep", "strata-unmatched"),
        ("keep", "strata-abort-multipart"),
        ("remove", "Delete on ['myprefix/traces/shop/']"),
    ]
    assert plan.changes[0].field_changes() == [("condition.daysSinceCustomTime", 30, 7)]
    assert plan.foreign == (OPS_LOGS_GCS, other_store)

    repaired = plan_gcs(plan.merged, desired, "myprefix")
    assert not repaired.has_drift
    assert repaired.foreign == (OPS_LOGS_GCS, other_store)


def test_plan_gcs_duplicate_strata_rule_is_removed_and_prefix_order_ignored() -> None:
    desired = render_gcs(Policy.default())
    rules = copy.deepcopy(desired["lifecycle"]["rule"])
    rules[2]["condition"]["matchesPrefix"].reverse()
    current = {"lifecycle": {"rule": [*rules, copy.deepcopy(rules[0])]}}
    plan = plan_gcs(current, desired)
    assert [c.kind for c in plan.changes] == ["keep", "keep", "keep", "remove"]


def test_plan_gcs_warns_about_a_bucket_wide_delete_and_keeps_it() -> None:
    desired = render_gcs(Policy.default())
    bucket_wide = {"action": {"type": "Delete"}, "condition": {"age": 30}}
    plan = plan_gcs({"lifecycle": {"rule": [bucket_wide]}}, desired)
    assert plan.foreign == (bucket_wide,)
    assert len(plan.warnings) == 1
    assert "pinned" in plan.warnings[0]
    assert plan.merged["lifecycle"]["rule"][0] == bucket_wide


@pytest.mark.parametrize("current", [None, {}, {"lifecycle": {}}, {"lifecycle": {"rule": []}}])
def test_plan_gcs_on_a_bucket_without_lifecycle_adds_every_rule(current) -> None:
    desired = render_gcs(Policy.default())
    plan = plan_gcs(current, desired)
    assert [c.kind for c in plan.changes] == ["add", "add", "add"]
    assert plan.merged == desired


def test_plan_gcs_needs_the_prefix_the_rules_were_rendered_for() -> None:
    with pytest.raises(ValueError, match="outside strata's prefixes"):
        plan_gcs(None, render_gcs(Policy.default(), "myprefix"))

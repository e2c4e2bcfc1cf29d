"""The retention policy (SPEC §10): TOML layout, defaults and strict validation."""

from __future__ import annotations

import pytest

from lifecycle_policies.policy import Policy, PolicyError
from trace_store.errors import StrataError

FULL = """
[traces]
retain_days = 14
keep_latest = 25

[unmatched]
retain_days = 2

[multipart]
abort_incomplete_days = 3
"""


def test_defaults_match_the_spec() -> None:
    policy = Policy.default()
    assert policy.traces_retain_days == 7
    assert policy.keep_latest == 10
    assert policy.unmatched_retain_days == 3
    assert policy.abort_incomplete_multipart_days == 1


def test_empty_document_is_the_default_policy() -> None:
    assert Policy.from_toml("") == Policy.default()


def test_every_field_is_read_from_its_table() -> None:
    assert Policy.from_toml(FULL) == Policy(
        traces_retain_days=14,
        keep_latest=25,
        unmatched_retain_days=2,
        abort_incomplete_multipart_days=3,
    )


def test_missing_keys_keep_their_defaults() -> None:
    policy = Policy.from_toml("[traces]\nkeep_latest = 3\n")
    assert policy == Policy(keep_latest=3)


def to_toml(policy: Policy) -> str:
    """``policy`` as a TOML document that :meth:`Policy.from_toml` reads back equal."""
    lines: list[str] = []
    current_table = ""
    for path, attribute in Policy.FIELDS.items():
        table, key = path.split(".")
        if table != current_table:
            if lines:
                lines.append("")
            lines.append(f"[{table}]")
            current_table = table
        lines.append(f"{key} = {getattr(policy, attribute)}")
    return "\n".join(lines) + "\n"


def test_to_toml_reads_back_equal() -> None:
    policy = Policy.from_toml(FULL)
    assert Policy.from_toml(to_toml(policy)) == policy
    assert "[traces]\nretain_days = 14\nkeep_latest = 25\n" in to_toml(policy)


@pytest.mark.parametrize(
    ("document", "field", "fragment"),
    [
        ("[traces]\nretain_days = -1", "traces.retain_days", "positive"),
        ("[unmatched]\nretain_days = -3", "unmatched.retain_days", "positive"),
        ("[multipart]\nabort_incomplete_days = -1", "multipart.abort_incomplete_days", "positive"),
        ("[traces]\nretain_days = 0", "traces.retain_days", "granularity"),
        ("[unmatched]\nretain_days = 0", "unmatched.retain_days", "granularity"),
        ("[multipart]\nabort_incomplete_days = 0", "multipart.abort_incomplete_days", "granul"),
        ("[traces]\nretain_days = 0.5", "traces.retain_days", "granularity"),
        ("[unmatched]\nretain_days = 1.5", "unmatched.retain_days", "whole"),
        ("[traces]\nkeep_latest = 0", "traces.keep_latest", "at least 1"),
        ("[traces]\nkeep_latest = -4", "traces.keep_latest", "at least 1"),
        ("[traces]\nretain_days = true", "traces.retain_days", "integer"),
        ("[traces]\nkeep_latest = false", "traces.keep_latest", "integer"),
        ('[traces]\nretain_days = "7"', "traces.retain_days", "integer"),
        ("[traces]\nretain_days = [7]", "traces.retain_days", "integer"),
        ("[traces]\nretain_days = 100000", "traces.retain_days", "at most"),
        ("[traces]\nkeep_last = 3", "traces.keep_last", "unknown key"),
        ("[unmatched]\nkeep_latest = 3", "unmatched.keep_latest", "unknown key"),
        ("[trace]\nretain_days = 3", "trace", "unknown key"),
        ("retain_days = 3", "retain_days", "unknown key"),
        ("traces = 5", "traces", "must be a table"),
    ],
)
def test_invalid_values_fail_naming_the_field(document: str, field: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_toml(document)
    assert caught.value.field == field
    assert field in str(caught.value)
    assert fragment in str(caught.value)


def test_unknown_key_message_lists_the_valid_keys() -> None:
    with pytest.raises(PolicyError, match=r"traces\.keep_latest, traces\.retain_days"):
        Policy.from_toml("[traces]\nkeep_last = 3")


def test_policy_error_is_a_strata_value_error_with_a_400() -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_toml("[traces]\nkeep_latest = 0")
    assert isinstance(caught.value, StrataError)
    assert isinstance(caught.value, ValueError)
    assert (caught.value.code, caught.value.status) == ("policy_error", 400)


def test_malformed_toml_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="not valid TOML"):
        Policy.from_toml("[traces\nretain_days = 7")


def test_constructor_validates_too() -> None:
    with pytest.raises(PolicyError) as caught:
        Policy(keep_latest=0)
    assert caught.value.field == "traces.keep_latest"


def test_from_file_reads_a_policy(tmp_path) -> None:
    path = tmp_path / "retention.toml"
    path.write_text(FULL, encoding="utf-8")
    assert Policy.from_file(path) == Policy.from_toml(FULL)
    assert Policy.from_file(str(path)) == Policy.from_toml(FULL)


def test_from_file_errors_name_the_file_and_the_field(tmp_path) -> None:
    path = tmp_path / "retention.toml"
    path.write_text("[traces]\nretain_days = -2\n", encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        Policy.from_file(path)
    assert caught.value.field == "traces.retain_days"
    assert str(path) in str(caught.value)
    assert "traces.retain_days" in str(caught.value)


def test_missing_file_is_a_policy_error_naming_it(tmp_path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(PolicyError, match=r"absent\.toml"):
        Policy.from_file(path)

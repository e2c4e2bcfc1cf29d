"""`strata lifecycle render` and policy errors on the command line (issue 4 acceptance 5):
an invalid policy exits with code 2 and a message naming the field, and ``serve``
refuses to start with one, naming ``STRATA_POLICY``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.config import ServeSettings
from lifecycle_policies.policy import Policy
from lifecycle_policies.render import render_gcs, render_s3
from trace_store.errors import ConfigError


def _exit_code(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


@pytest.mark.parametrize("provider", ["s3", "gcs"])
def test_render_prints_the_providers_json(
    provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text("[traces]\nretain_days = 14\nkeep_latest = 5\n")
    argv = ["lifecycle", "render", "--provider", provider, "--policy", str(policy_file)]
    assert _exit_code([*argv, "--prefix", "prod"]) == 0
    render = render_s3 if provider == "s3" else render_gcs
    expected = render(Policy(traces_retain_days=14, keep_latest=5), "prod")
    assert json.loads(capsys.readouterr().out) == expected


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ("[traces]\nretain_days = -1\n", "traces.retain_days"),
        ("[unmatched]\nretain_days = -3\n", "unmatched.retain_days"),
        ("[traces]\nkeep_latest = 0\n", "traces.keep_latest"),
        ("[traces]\nretain_dayz = 7\n", "traces.retain_dayz"),
        ("[trace]\nretain_days = 7\n", "trace"),
        ("[traces]\nretain_days = 0\n", "traces.retain_days"),  # below 1 day granularity
        ("[traces]\nretain_days = 0.5\n", "traces.retain_days"),
        ("[multipart]\nabort_incomplete_days = 0\n", "multipart.abort_incomplete_days"),
    ],
)
def test_invalid_policies_exit_2_naming_the_field(
    document: str, field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(document)
    code = _exit_code(["lifecycle", "render", "--provider", "s3", "--policy", str(policy_file)])
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert field in captured.err, captured.err
    assert str(policy_file) in captured.err


def test_policy_from_the_environment_is_validated_before_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text("[traces]\nkeep_latest = 0\n")
    monkeypatch.setenv("STRATA_POLICY", str(policy_file))
    # The store URL is unusable too; the policy error is the one reported.
    assert _exit_code(["lifecycle", "plan", "--store", "s3://"]) == 2
    assert "traces.keep_latest" in capsys.readouterr().err


def test_serve_refuses_an_invalid_policy_naming_the_variable(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text("[traces]\nretain_days = -2\n")
    with pytest.raises(ConfigError, match=r"STRATA_POLICY.*traces\.retain_days"):
        ServeSettings.from_env({"STRATA_POLICY": str(policy_file)})
    policy_file.write_text("[traces]\nretain_days = 3\nkeep_latest = 4\n")
    settings = ServeSettings.from_env({}, policy=str(policy_file))
    assert settings.policy == Policy(traces_retain_days=3, keep_latest=4)


def test_plan_on_a_local_store_explains_where_expiry_happens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_code(["lifecycle", "plan", "--store", f"file://{tmp_path}"]) == 2
    assert "strata lifecycle expire" in capsys.readouterr().err

"""``strata store cors|check`` against moto."""

from __future__ import annotations

import argparse

import pytest

from gateway.cli.store import add_store_commands
from tests.fixtures_cloud import S3Server
from trace_store.errors import ConfigError


def run(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="strata")
    add_store_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.func(args)


def test_store_cors_sets_the_bucket_cors(
    moto_server: S3Server, moto_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"s3://{moto_bucket}?endpoint={moto_server.endpoint}"
    run(
        [
            "store",
            "cors",
            "--store",
            url,
            "--origin",
            "http://a.example",
            "--origin",
            "http://b.example",
        ]
    )
    rules = moto_server.client().get_bucket_cors(Bucket=moto_bucket)["CORSRules"]
    assert rules[0]["AllowedOrigins"] == ["http://a.example", "http://b.example"]
    assert "http://a.example, http://b.example" in capsys.readouterr().out


def test_store_check_reports_ok_or_names_the_setting(
    moto_server: S3Server,
    moto_bucket: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRATA_STORE", f"s3://{moto_bucket}?endpoint={moto_server.endpoint}")
    run(["store", "check"])
    assert capsys.readouterr().out.strip().endswith(": ok")
    with pytest.raises(ConfigError, match="STRATA_STORE"):
        run(["store", "check", "--store", f"s3://missing-bucket?endpoint={moto_server.endpoint}"])


def test_store_cors_needs_an_origin() -> None:
    with pytest.raises(SystemExit):
        run(["store", "cors", "--store", "file:/tmp/x"])

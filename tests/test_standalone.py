"""The `make lint` check that keeps the repository standalone (.ci/standalone.py)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.cli_support import ci_script

ROOT = Path(__file__).resolve().parent.parent


def _checker() -> ModuleType:
    return ci_script("standalone")


NAME = "sha" + "red"  # built, so that this file passes the check it tests
OUTSIDE = "../" + NAME


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("README.md", f"The contract is [the spec]({OUTSIDE}/SPEC.md).\n", "leaves the repository"),
        ("a.py", f'VECTORS = Path("{OUTSIDE}/vectors")\n', "folder beside the repository"),
        ("b.py", f'KEY = Path(__file__).parents[2] / "{NAME}/vectors/key.json"\n', "beside"),
        ("c.py", f'ROOT.parent / "{NAME}" / "SPEC.md"\n', "beside"),
        ("docs/x.md", "see [the API](../missing.md)\n", "points at nothing"),
    ],
)
def test_a_reference_outside_the_repository_is_found(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    found = _checker().problems(tmp_path, [path])
    assert len(found) >= 1
    assert all(line.startswith(f"{name}:1: ") for line in found)
    assert any(expected in line for line in found)


def test_links_inside_the_repository_and_plain_words_pass(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "api.md").write_text("# API\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "[api](docs/api.md) [part](docs/api.md#api) [web](https://example.com/a)\n"
        "These machines are shared and noisy; shared = one store for two processes.\n"
    )
    assert _checker().problems(tmp_path, [readme]) == []

"""The `make lint` check that every import points down (.ci/layers.py)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.cli_support import ci_script

ROOT = Path(__file__).resolve().parent.parent


def _checker() -> ModuleType:
    return ci_script("layers")


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for package in ("gateway", "runtime", "trace_store", "lifecycle_policies"):
        (tmp_path / package).mkdir()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("trace_store/a.py", "from runtime.recorder import USER\n", "trace_store imports runtime"),
        (
            "trace_store/b.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import lifecycle_policies\n",
            "trace_store imports lifecycle_policies",
        ),
        ("runtime/c.py", "def f():\n    from gateway import serve\n", "runtime imports gateway"),
        ("lifecycle_policies/d.py", "import runtime.canvas\n", "imports runtime"),
    ],
)
def test_an_import_pointing_up_is_found(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    found = _checker().problems(_tree(tmp_path, {name: text}))
    assert len(found) == 1
    assert expected in found[0]
    assert found[0].startswith(f"{name}:")


def test_imports_pointing_down_pass(tmp_path: Path) -> None:
    files = {
        "gateway/a.py": "import runtime\nfrom trace_store import keys\nimport lifecycle_policies\n",
        "runtime/b.py": "from trace_store.record import USER\nfrom runtime import canvas\n",
        "lifecycle_policies/c.py": "from trace_store.keys import TRACES\nimport orjson\n",
        "trace_store/d.py": "from . import keys\nimport asyncio\n",
    }
    assert _checker().problems(_tree(tmp_path, files)) == []


def test_the_repository_passes() -> None:
    assert _checker().problems(ROOT) == []

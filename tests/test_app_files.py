"""``--app PATH.py:ATTR``: a canvas loaded from a file (relative, nested or absolute) is
one module however it is named, its sibling imports work, it serves, records, re-runs
and replays; a bad file is one :class:`ConfigError` naming ``STRATA_APP``."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from gateway.loader import load_canvas
from tests.test_cli_errors import assert_one_line_error, strata
from tests.test_serve_process import strata_serve
from trace_store.client import Client
from trace_store.document import compact
from trace_store.errors import ConfigError

CANVAS = """\
from runtime import Canvas, Request, stdlib
from {pricing} import with_tax

canvas = Canvas("fileshop")
not_a_canvas = 42


@canvas.function()
def total(amount: float) -> float:
    return with_tax(amount)


@canvas.http("GET", "/total/:amount")
def get_total(request: Request) -> dict[str, float]:
    return {{"total": total(float(request.params["amount"])), "at": stdlib.time.now()}}
"""


def write_canvas(directory: Path, stem: str, pricing: str) -> Path:
    """``directory/stem.py``, a canvas that imports its sibling ``pricing``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{pricing}.py").write_text(
        "def with_tax(amount: float) -> float:\n    return round(amount * 1.2, 2)\n"
    )
    path = directory / f"{stem}.py"
    path.write_text(CANVAS.format(pricing=pricing))
    return path


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A canvas file at ``tmp/app/nested/<unique>.py``; the working directory is ``tmp``.
    Names are unique and the modules and path entries are removed afterwards: this
    process imports them for real."""
    tag = uuid.uuid4().hex[:8]
    path = write_canvas(tmp_path / "app" / "nested", f"fileshop_{tag}", f"pricing_{tag}")
    monkeypatch.chdir(tmp_path)
    modules, sys_path = set(sys.modules), list(sys.path)
    yield path
    for name in set(sys.modules) - modules:
        del sys.modules[name]
    sys.path[:] = sys_path


@pytest.mark.parametrize(
    ("spec", "cwd"),
    [
        ("./{stem}.py:canvas", "app/nested"),
        ("{stem}.py:canvas", "app/nested"),
        ("app/nested/{stem}.py:canvas", "."),
        ("./app/../app/nested/{stem}.py:canvas", "."),
        ("{abs}:canvas", "app"),
    ],
)
def test_file_specs_load_one_module(
    spec: str, cwd: str, app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(cwd)
    canvas = load_canvas(spec.format(stem=app.stem, abs=app))
    assert canvas.name == "fileshop"
    # The sibling import resolved, and the function records through the canvas.
    assert canvas.functions["total"].raw(10) == 12.0
    module = sys.modules[app.stem]
    assert Path(str(module.__file__)) == app
    assert module.canvas is canvas
    # The same file by another spelling, or its module by name, is the same module.
    assert load_canvas(f"{app}:canvas") is canvas
    assert load_canvas(f"{app.stem}:canvas") is canvas


@pytest.mark.parametrize(
    ("spec", "files", "message"),
    [
        ("./missing.py:canvas", {}, r"no file './missing.py'"),
        ("app/nested/missing.py:canvas", {}, r"no file"),
        ("./notes.txt:canvas", {"notes.txt": "hi"}, r"'./notes.txt' is not a \.py file"),
        ("./app:canvas", {}, r"not a \.py file"),
        ("./{stem}.py", {}, r"expected MODULE:ATTR or PATH\.py:ATTR"),
        (
            "./bad_syntax.py:canvas",
            {"bad_syntax.py": "from runtime import Canvas\n\ncanvas = Canvas('x'\n"},
            r"syntax error at .*bad_syntax\.py:3",
        ),
        (
            "./bad_import.py:canvas",
            {"bad_import.py": "import os\nimport no_such_module_here\n"},
            r"import error at .*bad_import\.py:2: No module named 'no_such_module_here'",
        ),
        (
            "./bad_code.py:canvas",
            {"bad_code.py": "x = 1\ncanvas = undefined_name\n"},
            r"NameError at .*bad_code\.py:2: name 'undefined_name' is not defined",
        ),
        ("./{stem}.py:not_a_canvas", {}, r"is not a runtime\.Canvas \(its type is int\)"),
        ("./{stem}.py:nothing", {}, r"has no attribute 'nothing'"),
        # A file whose name is a module already loaded from elsewhere.
        ("./json.py:canvas", {"json.py": ""}, r"module 'json', which is already .*json"),
    ],
)
def test_bad_file_specs_name_the_setting(
    spec: str, files: dict[str, str], message: str, app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, text in files.items():
        (app.parent / name).write_text(text)
    monkeypatch.chdir(app.parent)
    with pytest.raises(ConfigError, match=rf"^STRATA_APP \(--app\): .*{message}"):
        load_canvas(spec.format(stem=app.stem))
    # A failed import leaves no half-made module behind.
    assert not {"bad_syntax", "bad_import", "bad_code"} & set(sys.modules)


async def test_a_file_canvas_serves_records_reruns_and_replays(
    database_url: str, tmp_path: Path
) -> None:
    nested = tmp_path / "app" / "nested"
    write_canvas(nested, "fileshop", "pricing")
    env = {
        "STRATA_DATABASE_URL": database_url,
        "STRATA_DATA_DIR": str(tmp_path / "data"),
        "STRATA_STORE": "",
        "STRATA_SECRET": "a-test-secret-0123456789",
    }
    with strata_serve(["--app", "./fileshop.py:canvas", "--print-dev-token"], env, nested) as up:
        editor, token = up["editor"], up["tokens"]["fileshop"]
        async with Client(editor, token) as client:
            async with client.http.get(f"{up['gateway']}/total/10") as response:
                assert response.status == 200
                assert (await response.json())["total"] == 12.0
            for _ in range(100):
                traces, _ = await client.traces("fileshop", "get_total")
                if traces:
                    break
                await asyncio.sleep(0.1)
            trace_id = traces[0]["trace_id"]
            rerun = await client.rerun("fileshop", trace_id)
            assert orjson.loads(rerun["result"]["body"]["data"])["total"] == 12.0
            doc = await client.trace("fileshop", trace_id)
            calls = compact.call_objects(doc)
            assert [c["function"] for c in calls if c["kind"] == "user"] == ["total"]

        # Replay from another directory, through a nested relative path to the same file.
        env = {"STRATA_TOKEN": token, "STRATA_CANVAS": "fileshop", "STRATA_EDITOR_URL": editor}
        replay = ("replay", trace_id, "--app", "app/nested/fileshop.py:canvas")
        code, out, err = await strata(*replay, env=env, cwd=tmp_path)
        assert code == 0, err
        assert "no difference" in out

        # The same from an invalid file: one line.
        (nested / "fileshop.py").write_text("canvas = (\n")
        code, _, err = await strata(*replay, env=env, cwd=tmp_path)
        assert_one_line_error(code, err, "STRATA_APP (--app)", "fileshop.py:1")

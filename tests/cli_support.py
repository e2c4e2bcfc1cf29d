"""Running the ``strata`` command line from tests, as a user's shell would."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _env(extra: dict[str, str]) -> dict[str, str]:
    # Only what the case sets: a developer's own STRATA_* must not change the outcome.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STRATA_", "AWS_"))}
    return {**clean, "AWS_EC2_METADATA_DISABLED": "true", **extra}


async def strata(*args: str, env: dict[str, str], cwd: Path = ROOT) -> tuple[int, str, str]:
    """Run ``strata ARGS`` as a process; its exit status, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(env),
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def assert_one_line_error(code: int, err: str, *expected: str) -> None:
    """Exit 2, exactly one line on stderr, no traceback, ``expected`` in it."""
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("strata"), err
    for text in expected:
        assert text in err, (text, err)


def ci_script(name: str) -> ModuleType:
    """A check of ``.ci/`` (``standalone``, ``layers``), loaded as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / ".ci" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

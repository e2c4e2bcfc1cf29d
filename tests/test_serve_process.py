"""``strata serve`` as a real process: embedded Postgres, CLI tokens, graceful drain."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from trace_store.document import codec, schema

STRATA = [sys.executable, "-m", "gateway.cli.main"]
ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def strata_serve(
    args: list[str], env: dict[str, str], cwd: Path = ROOT, log: Path | None = None
) -> Iterator[dict[str, Any]]:
    """Run ``strata serve`` (in ``cwd``) and yield what it printed once ``ready``;
    its log (stderr) goes to ``log`` when given."""
    stderr = log.open("w") if log is not None else subprocess.PIPE
    proc = subprocess.Popen(
        [*STRATA, "serve", "--gateway-port", "0", "--editor-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        env={**os.environ, **env},
        cwd=cwd,
        text=True,
    )
    printed: dict[str, Any] = {"tokens": {}, "proc": proc}
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            line = line.strip()
            if line == "ready":
                break
            key, _, value = line.partition(": ")
            if key.startswith("token "):
                printed["tokens"][key.split()[1]] = value
            else:
                printed[key] = value
            assert time.monotonic() < deadline, "serve did not become ready"
        else:
            raise AssertionError(
                f"serve exited: {proc.wait()} {proc.stderr.read() if proc.stderr else ''}"
            )
        yield printed
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log is not None:
            stderr.close()  # type: ignore[union-attr]


def _get(
    url: str, token: str | None = None, host: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if host:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _wait_for_traces(editor: str, token: str, handler: str, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        status, _, body = _get(f"{editor}/api/v1/canvases/demo/handlers/{handler}/traces", token)
        assert status == 200, body
        traces: list[dict[str, Any]] = orjson.loads(body)["traces"]
        if len(traces) >= n or time.monotonic() > deadline:
            return traces
        time.sleep(0.1)


def test_serve_on_embedded_defaults_end_to_end(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"STRATA_DATA_DIR": str(data_dir), "STRATA_DATABASE_URL": "", "STRATA_STORE": ""}
    with strata_serve(["--app", "examples.demo:canvas", "--print-dev-token"], env) as printed:
        gateway, editor = printed["gateway"], printed["editor"]
        dev_token = printed["tokens"]["demo"]
        status, _, body = _get(f"{gateway}/users/7?verbose=1", host="demo.localhost")
        assert status == 200
        assert orjson.loads(body)["id"] == "7"
        assert _get(f"{gateway}/healthz")[0] == 200
        assert _get(f"{editor}/readyz")[0] == 200
        assert b"strata_requests_total" in _get(f"{gateway}/metrics")[2]

        # A token made by the CLI against the same data dir works on the running server.
        made = subprocess.run(
            [*STRATA, "token", "create", "--canvas", "demo", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            cwd=ROOT,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
        cli_token = made.stdout.strip()
        assert cli_token.startswith("strata_")
        assert cli_token != dev_token

        traces = _wait_for_traces(editor, cli_token, "get_user", 1)
        assert len(traces) == 1
        status, _, body = _get(
            f"{editor}/api/v1/canvases/demo/traces/{traces[0]['trace_id']}", dev_token
        )
        manifest = orjson.loads(body)
        status, headers, data = _get(manifest["base"]["url"])  # plain GET, no credentials
        assert status == 200
        assert headers["Content-Encoding"] == "zstd"
        assert hashlib.sha256(data).hexdigest() == manifest["base"]["sha256"]
        doc = codec.decode(data)
        schema.validate("trace", doc)
        assert doc["input"]["params"] == {"id": "7"}
    # Tokens are stored hashed: the database never holds the token itself.
    assert cli_token.encode() not in b"".join(
        p.read_bytes()
        for p in data_dir.rglob("*")
        if p.is_file() and "pg" in p.parts and p.stat().st_size < 50_000_000
    )


def _writer_children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"trace_store.writer.child" in Path(f"/proc/{child}/cmdline").read_bytes():
                children.append(int(child))
    return children


async def test_sigterm_drains_queued_traces(database_url: str, tmp_path: Path) -> None:
    env = {
        "STRATA_DATABASE_URL": database_url,
        "STRATA_DATA_DIR": str(tmp_path),
        "STRATA_STORE": "",
        "STRATA_WRITER": "process",
    }
    with strata_serve(["--app", "examples.demo:canvas"], env) as printed:
        proc = printed["proc"]
        (writer,) = _writer_children(proc.pid)
        for i in range(30):
            assert _get(f"{printed['gateway']}/users/{i}")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        # The writer process drained and exited too (it is not left behind).
        assert not Path(f"/proc/{writer}").exists() or "Z" in _state(writer)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM traces") == 30
    finally:
        await conn.close()


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_bad_configuration_fails_at_start_naming_the_setting(
    tmp_path: Path, database_url: str
) -> None:
    cases = [
        ({"STRATA_STORE": "ftp://nowhere", "STRATA_DATABASE_URL": database_url}, "STRATA_STORE"),
        ({"STRATA_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, "STRATA_DATABASE_URL"),
        ({"STRATA_TRACE_SAMPLE": "sometimes"}, "STRATA_TRACE_SAMPLE"),
        ({"STRATA_WRITER": "thread"}, "STRATA_WRITER"),
    ]
    for env, setting in cases:
        run = subprocess.run(
            [
                *STRATA,
                "serve",
                "--app",
                "examples.demo:canvas",
                "--data-dir",
                str(tmp_path),
                "--gateway-port",
                "0",
                "--editor-port",
                "0",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            cwd=ROOT,
            timeout=60,
        )
        assert run.returncode == 2, (env, run.stderr)
        assert setting in run.stderr
        assert "Traceback" not in run.stderr

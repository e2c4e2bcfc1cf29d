"""Cloud-store servers as session fixtures: moto, gcp-storage-emulator, s3rver.

Each server is a real subprocess on a free port of 127.0.0.1, started once per session;
each test gets a fresh bucket. A server that cannot start fails the test under
``CI=true`` and skips it otherwise (a developer machine without Node, say).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

import pytest

NODE_DIR = Path(__file__).parent / ".node"
#: The providers' published signing vectors (see tests/vectors/signing/README.md).
SIGNING_VECTORS = Path(__file__).parent / "vectors" / "signing"
#: Google's dummy conformance-test key: it signs, it authenticates nothing.
DUMMY_KEY = SIGNING_VECTORS / "gcs-v4-signing" / "test_service_account.not-a-test.json"
S3RVER_PACKAGE = "@20minutes/s3rver"
#: s3rver's built-in account; it verifies SigV4 signatures made with this key pair.
S3RVER_KEY = ("S3RVER", "S3RVER")
MOTO_KEY = ("testing", "testing")
REGION = "us-east-1"
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible server and the credentials it accepts."""

    endpoint: str
    access_key: str
    secret_key: str

    def env(self) -> dict[str, str]:
        """The standard AWS environment that points a client at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            # Never fall back to a developer's profile or to instance metadata.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self) -> Any:
        """A plain boto3 client: the tests' backdoor to the raw bucket."""
        return _raw_s3_client(self.endpoint, self.access_key, self.secret_key)


@functools.cache
def _raw_s3_client(endpoint: str, access_key: str, secret_key: str) -> Any:
    # One per server for the session: boto3 clients are thread-safe and slow to build.
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )


def server_unavailable(reason: str) -> NoReturn:
    """Fail under CI (a test must not pass by skipping), skip on a developer machine."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: servers are required)")
    pytest.skip(reason)  # allowed only when CI is not true


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(proc: subprocess.Popen[bytes], port: int, name: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            server_unavailable(f"{name} exited with code {proc.returncode} at start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    server_unavailable(f"{name} did not listen on 127.0.0.1:{port} within {START_TIMEOUT}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _venv_tool(name: str) -> str:
    tool = Path(sys.executable).with_name(name)
    if tool.exists():
        return str(tool)
    found = shutil.which(name)
    if found is None:
        server_unavailable(f"{name} is not installed (pip install -e '.[test]')")
    return found


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    """moto in server mode, with real (not global) CORS handling."""
    port = free_port()
    env = {**os.environ, "MOTO_DISABLE_GLOBAL_CORS": "true"}
    proc = subprocess.Popen(
        [_venv_tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_port(proc, port, "moto_server")
    yield S3Server(f"http://127.0.0.1:{port}", *MOTO_KEY)
    _stop(proc)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """gcp-storage-emulator, in memory; yields its base URL (for STORAGE_EMULATOR_HOST)."""
    port = free_port()
    proc = subprocess.Popen(
        [_venv_tool("gcp-storage-emulator"), "start", "--host", "127.0.0.1",
         "--port", str(port), "--in-memory", "--quiet"],
        cwd=tmp_path_factory.mktemp("gcs"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_for_port(proc, port, "gcp-storage-emulator")
    yield f"http://127.0.0.1:{port}"
    _stop(proc)


def _install_s3rver() -> Path:
    cli = NODE_DIR / "node_modules" / S3RVER_PACKAGE / "lib" / "cli.js"
    if cli.exists():
        return cli
    if shutil.which("npm") is None or shutil.which("node") is None:
        server_unavailable("node and npm are needed to run s3rver")
    NODE_DIR.mkdir(exist_ok=True)
    # A cache, never committed: the directory ignores itself.
    (NODE_DIR / ".gitignore").write_text("*\n")
    result = subprocess.run(
        ["npm", "install", "--no-save", "--no-audit", "--no-fund", S3RVER_PACKAGE],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0 or not cli.exists():
        server_unavailable(f"npm install {S3RVER_PACKAGE} failed: {result.stderr[-500:]}")
    return cli


def _read_listening_port(stream: IO[bytes], proc: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = stream.readline().decode(errors="replace")
        if match := re.search(r"listening on [\d.]+:(\d+)", line):
            return int(match.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    server_unavailable("s3rver did not report its port")


@pytest.fixture(scope="session")
def s3rver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """s3rver (Node): unlike moto it verifies SigV4 signatures and presigned expiry."""
    cli = _install_s3rver()
    data = tmp_path_factory.mktemp("s3rver")
    # The package ships no bin script; its CLI module is driven directly.
    script = f"require({str(cli)!r}).parseAsync(process.argv.slice(1), {{from: 'user'}})"
    proc = subprocess.Popen(
        ["node", "-e", script, "--", "-d", str(data), "-a", "127.0.0.1", "-p", "0",
         "--silent", "--no-vhost-buckets"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    port = _read_listening_port(proc.stdout, proc)
    # Keep reading stdout so that a chatty server can never block on a full pipe.
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    yield S3Server(f"http://127.0.0.1:{port}", *S3RVER_KEY)
    _stop(proc)


def _fresh_bucket(server: S3Server) -> str:
    name = f"t-{uuid.uuid4().hex[:20]}"
    server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def moto_bucket(moto_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket on moto; the AWS environment points at moto."""
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    return _fresh_bucket(moto_server)


@pytest.fixture
def s3rver_bucket(s3rver: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket on s3rver; the AWS environment points at s3rver."""
    for name, value in s3rver.env().items():
        monkeypatch.setenv(name, value)
    return _fresh_bucket(s3rver)


def gcs_raw_client(endpoint: str) -> Any:
    """A plain google-cloud-storage client on the emulator: the tests' backdoor."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project="strata-test",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": endpoint},
    )


@pytest.fixture
def gcs_bucket(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket on the emulator; ``STORAGE_EMULATOR_HOST`` points at it."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    name = f"t-{uuid.uuid4().hex[:20]}"
    gcs_raw_client(gcs_emulator).create_bucket(name)
    return name

"""strata sends no DELETE for trace objects to S3 or GCS (SPEC §12, issue 4 acceptance 4).

Each provider gets a dedicated server whose request log goes to a file: moto (werkzeug
logs every request line) and gcp-storage-emulator (run without ``--quiet``). The whole
retention life runs against it: the writer (two batches, so pins move and objects are
unpinned), the outbox, lease renewal, ``lifecycle apply``/``verify``/``simulate``
and a refused ``expire``. The log must then hold strata's PUTs/POSTs and not one
DELETE under ``traces/``; a DELETE the test itself sends at the end shows that the
log would have caught one.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gateway.cli.main import main
from tests.fixtures_cloud import (
    MOTO_KEY,
    S3Server,
    _stop,
    _venv_tool,
    _wait_for_port,
    free_port,
    gcs_raw_client,
)
from tests.pin_support import series, unmatched_key, write_traces
from trace_store.backends.url import parse_store_url
from trace_store.db.outbox import PinOutbox, renew_leases

if TYPE_CHECKING:
    from trace_store.db import Pool

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _request_lines(log: Path) -> list[str]:
    """``METHOD /path`` of every request in a server log."""
    text = _ANSI.sub("", log.read_text(errors="replace"))
    return re.findall(r'"([A-Z]+ \S+) HTTP/1\.[01]"', text)


@pytest.fixture(scope="module")
def logged_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, Path]]:
    log = tmp_path_factory.mktemp("moto-log") / "requests.log"
    port = free_port()
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [_venv_tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    _wait_for_port(proc, port, "moto_server")
    yield S3Server(f"http://127.0.0.1:{port}", *MOTO_KEY), log
    _stop(proc)


@pytest.fixture(scope="module")
def logged_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    log = tmp_path_factory.mktemp("gcs-log") / "requests.log"
    port = free_port()
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [_venv_tool("gcp-storage-emulator"), "start", "--host", "127.0.0.1",
             "--port", str(port), "--in-memory"],
            cwd=log.parent,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    _wait_for_port(proc, port, "gcp-storage-emulator")
    yield f"http://127.0.0.1:{port}", log
    _stop(proc)


async def _cli(argv: list[str]) -> int:
    try:
        await asyncio.to_thread(main, argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


async def _life(url: str, pool: Pool) -> None:
    """Everything strata does to a bucket over a trace's life."""
    store = parse_store_url(url)
    try:
        traces = series("get_user", 15)
        await write_traces(store, pool, traces[:8])
        await write_traces(store, pool, traces[8:])  # displaces 5: they get unpinned
        await store.put_new(unmatched_key(), b"{}")
        await PinOutbox(pool, store, lease_fresh_for=timedelta(0)).drain()
        await pool.execute("UPDATE pins SET leased_at = now() - interval '2 days'")
        await renew_leases(pool, store, older_than=timedelta(days=1), concurrency=1)
    finally:
        await store.close()
    assert await _cli(["lifecycle", "apply", "--store", url, "--yes"]) == 0
    assert await _cli(["lifecycle", "verify", "--store", url]) == 0
    assert await _cli(["lifecycle", "simulate", "--store", url, "--at", "2100-01-01"]) == 0
    assert await _cli(["lifecycle", "expire", "--store", url]) == 2  # refused: not file:


def _assert_no_trace_deletes(lines: list[str], bucket: str, control: str) -> None:
    writes = [line for line in lines if line.split()[0] in ("PUT", "POST", "PATCH")]
    assert any("traces" in line for line in writes), lines  # the log did see strata
    deletes = [line for line in lines if line.startswith("DELETE")]
    assert len(deletes) == 1, deletes  # only the test's own
    assert control in deletes[0]
    assert bucket in deletes[0]


async def test_no_delete_reaches_s3(
    logged_moto: tuple[S3Server, Path], pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, log = logged_moto
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    bucket = f"t-{uuid.uuid4().hex[:20]}"
    raw = server.client()
    raw.create_bucket(Bucket=bucket)
    url = f"s3://{bucket}?endpoint={server.endpoint}&region=us-east-1"
    await _life(url, pool)
    raw.put_object(Bucket=bucket, Key="control/x", Body=b"x")
    raw.delete_object(Bucket=bucket, Key="control/x")
    lines = [line for line in _request_lines(log) if f"/{bucket}" in line]
    assert any("tagging" in line for line in lines)  # pins and unpins were sent
    _assert_no_trace_deletes(lines, bucket, "control/x")


async def test_no_delete_reaches_gcs(
    logged_gcs: tuple[str, Path], pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, log = logged_gcs
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    bucket = f"t-{uuid.uuid4().hex[:20]}"
    raw = gcs_raw_client(endpoint)
    raw.create_bucket(bucket)
    await _life(f"gs://{bucket}", pool)
    blob = raw.bucket(bucket).blob("control/x")
    blob.upload_from_string(b"x")
    blob.delete()
    lines = [line for line in _request_lines(log) if f"/b/{bucket}" in line]
    assert any(line.startswith("PATCH") for line in lines)  # leases were renewed
    _assert_no_trace_deletes(lines, bucket, "control%2Fx")
    assert os.path.getsize(log) > 0

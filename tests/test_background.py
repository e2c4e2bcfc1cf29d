"""Background loops through an outage: exponential backoff, one line when it starts and
one when it ends, a traceback only for a real bug."""

from __future__ import annotations

import asyncio
import logging
import socket

import asyncpg
import pytest

from trace_store.backends.memory import MemoryStore
from trace_store.background import Retries
from trace_store.db.outbox import PinOutbox
from trace_store.errors import StoreUnavailable

log = logging.getLogger("strata.test.background")


def test_an_outage_backs_off_and_is_told_twice(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    retries = Retries("task", log, base=0.1, cap=1.0)
    delays = [retries.failed(ConnectionRefusedError("refused")) for _ in range(6)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert retries.in_outage
    retries.failed(StoreUnavailable("store down"))
    retries.succeeded()
    retries.succeeded()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith(
        "task: cannot reach the database or the store (ConnectionRefusedError"
    )
    assert lines[1].startswith("task: reachable again after")
    assert "7 failed attempts" in lines[1]
    assert retries.failed(OSError("again")) == 0.1  # a success reset the backoff


def test_a_bug_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    retries = Retries("task", log, base=0.5)
    with pytest.raises(KeyError) as caught:
        {}["missing"]
    assert retries.failed(caught.value) == 0.5
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert not retries.in_outage


async def test_the_pin_outbox_without_its_database_logs_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = await asyncpg.create_pool(f"postgresql://x@127.0.0.1:{port}/gone", min_size=0)
    task = asyncio.create_task(PinOutbox(pool, MemoryStore()).run(poll_interval=0.02))
    try:
        await asyncio.sleep(1.0)  # ~6 attempts at 0.02, 0.04, ... 0.64 s
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pool.close()
    records = [r for r in caplog.records if r.name == "strata.pins"]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert "cannot reach the database" in records[0].getMessage()
    assert records[0].exc_info is None


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (TimeoutError(), "TimeoutError"),
        (
            ConnectionRefusedError(111, "Connection refused"),
            "ConnectionRefusedError: [Errno 111] Connection refused",
        ),
        (ValueError("x" * 500), "ValueError: " + "x" * 188),
    ],
)
def test_a_failure_is_described_by_its_type_when_it_has_no_message(
    exc: BaseException, text: str
) -> None:
    from trace_store.errors import describe

    assert describe(exc) == text

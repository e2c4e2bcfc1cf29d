"""Log lines: one per event, as text or JSON, a traceback inside its line."""

from __future__ import annotations

import logging

import orjson
import pytest

from trace_store import logs
from trace_store.config import Config


@pytest.mark.parametrize("log_format", logs.FORMATS)
def test_an_event_with_a_traceback_is_one_line(
    log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = logging.getLogger().handlers[:]
    try:
        logs.configure(logging.INFO, Config({"STRATA_LOG_FORMAT": log_format}))
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            logging.getLogger("strata.test").exception("failed on %s", "x")
        logging.getLogger("strata.test").debug("not shown at INFO")
    finally:
        logging.getLogger().handlers[:] = before
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    if log_format == "json":
        event = orjson.loads(lines[0])
        assert (event["level"], event["logger"], event["message"]) == (
            "error",
            "strata.test",
            "failed on x",
        )
        assert "ValueError: boom\nsecond line" in event["exception"]
    else:
        assert "ERROR strata.test: failed on x\\nTraceback" in lines[0]


def test_an_unknown_format_names_the_setting() -> None:
    from trace_store.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^STRATA_LOG_FORMAT: expected one of"):
        logs.configure(logging.INFO, Config({"STRATA_LOG_FORMAT": "xml"}))

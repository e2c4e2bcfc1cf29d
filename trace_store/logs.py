"""strata's log lines: one line per event, as text or as JSON (``STRATA_LOG_FORMAT``).

An operator's log pipeline reads one event per line. A traceback (only strata's own
bugs log one) is kept in the same line: escaped in ``text``, a field in ``json``.
What may be logged is decided where the line is written: never a header value, a
token or a body (``gateway.http_server`` logs a malformed request by its status and
error class only). The writer process logs the same way (it reads the same setting).
"""

from __future__ import annotations

import logging
import time

import orjson

FORMATS = ("text", "json")


class _OneLine(logging.Formatter):
    def __init__(self, prefix: str = "") -> None:
        super().__init__(prefix + "%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", "\\n")


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(event, default=str).decode()


def configure(level: int, log_format: str = "text", prefix: str = "") -> None:
    """Send every logger's records to stderr, one line each, in ``log_format``
    (``prefix`` names the process in text lines, e.g. the writer's)."""
    handler = logging.StreamHandler()
    handler.setFormatter(_Json() if log_format == "json" else _OneLine(prefix))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

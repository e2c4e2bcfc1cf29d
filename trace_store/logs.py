"""strata's log lines: one line per event, as text or as JSON (``STRATA_LOG_FORMAT``).

An operator's log pipeline reads one event per line. A traceback (only strata's own
bugs log one) is kept in the same line: escaped in ``text``, a field in ``json``.
What may be logged is decided where the line is written: never a header value, a
token or a body (``gateway.http_server`` logs a malformed request by its status and
error class only). The writer process logs the same way (it reads the same setting).
What a client can trigger at will (malformed requests, outage answers) is logged
through a :class:`RateLimitedLog`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from trace_store.config import Config

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


def configure(level: int, config: Config, prefix: str = "") -> None:
    """Send every logger's records to stderr, one line each, in the format
    ``STRATA_LOG_FORMAT`` names (``prefix`` names the process in text lines, e.g. the
    writer's). A format that is not one of :data:`FORMATS` is a :class:`ConfigError`."""
    log_format = config.get_choice("STRATA_LOG_FORMAT", "text", FORMATS)
    handler = logging.StreamHandler()
    handler.setFormatter(_Json() if log_format == "json" else _OneLine(prefix))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class RateLimitedLog:
    """At most ``per_minute`` lines a minute; the rest are counted and summarised."""

    def __init__(self, logger: logging.Logger, per_minute: int = 10) -> None:
        self._logger = logger
        self._per_minute = per_minute
        self._window = 0.0
        self._lines = 0
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        """Log ``message`` unless this minute's lines are spent."""
        if self._allow():
            self._logger.warning(message, *args)

    def error(self, message: str, *args: object, exc_info: BaseException) -> None:
        """Log ``message`` with its traceback unless this minute's lines are spent."""
        if self._allow():
            self._logger.error(message, *args, exc_info=exc_info)

    def _allow(self) -> bool:
        now = time.monotonic()
        if now - self._window >= 60.0:
            if self._suppressed:
                self._logger.warning(
                    "%d similar lines suppressed in the last minute", self._suppressed
                )
            self._window, self._lines, self._suppressed = now, 0, 0
        if self._lines < self._per_minute:
            self._lines += 1
            return True
        self._suppressed += 1
        return False

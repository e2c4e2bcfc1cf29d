"""A private Postgres for a data dir, from the ``pgserver`` pip package.

Used when no ``STRATA_DATABASE_URL`` is given. The server lives in ``<data-dir>/pg``;
several processes using the same data dir share it (pgserver counts its users), and it
stops when the last one exits.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

from trace_store.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger("strata.pg")


def start_embedded(data_dir: Path) -> tuple[str, Any]:
    """Start (or join) the data dir's Postgres; returns ``(dsn, handle)``."""
    try:
        # pgserver keeps its lock file in the user's runtime dir; without
        # XDG_RUNTIME_DIR platformdirs (>= 4.14) falls back to a private directory of
        # its own and warns, which is noise on a server's console.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            import pgserver
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise ConfigError(
            "STRATA_DATABASE_URL is not set and the embedded Postgres (pgserver) is missing"
        ) from exc
    pgdata = (data_dir / "pg").resolve()
    try:
        pgdata.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"STRATA_DATA_DIR (--data-dir): cannot create {pgdata} for the embedded"
            f" Postgres: {exc.strerror}"
        ) from None
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    except Exception as exc:
        raise ConfigError(
            f"STRATA_DATABASE_URL is not set and the embedded Postgres in {pgdata} failed to "
            f"start: {exc}"
        ) from exc
    dsn: str = server.get_uri()
    log.info("embedded Postgres at %s", pgdata)
    return dsn, server

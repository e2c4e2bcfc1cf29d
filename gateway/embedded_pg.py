"""A private Postgres for a data dir, from the ``pgserver`` pip package.

Used when no ``STRATA_DATABASE_URL`` is given. The server lives in ``<data-dir>/pg``;
several processes using the same data dir share it (pgserver counts its users), and it
stops when the last one exits.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from trace_store.errors import ConfigError

log = logging.getLogger("strata.pg")


def start_embedded(data_dir: Path) -> tuple[str, Any]:
    """Start (or join) the data dir's Postgres; returns ``(dsn, handle)``."""
    # pgserver wants a runtime dir for its lock file; give it one that always exists.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"strata-run-{os.getuid()}"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
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

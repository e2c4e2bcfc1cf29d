"""Postgres connection pool and migrations.

Migrations are the ``migrations/NNNN_name.sql`` files in this package, applied in order,
all pending ones in one transaction under an advisory lock, so that several ``serve``
processes starting together apply each one exactly once (and a failing one leaves none
applied).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Final

import asyncpg

from trace_store.errors import ConfigError

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Pool = asyncpg.Pool[asyncpg.Record]
    Connection = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

_MIGRATION_LOCK = 0x5354524154  # "STRAT": a fixed advisory-lock key
_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


def migrations() -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` for every shipped migration, in order."""
    found = []
    for entry in resources.files("trace_store.db").joinpath("migrations").iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)


async def migrate(conn: Connection) -> list[str]:
    """Apply pending migrations; returns the names applied (idempotent)."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS strata_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM strata_migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            await conn.execute(sql, timeout=LONG_QUERY)
            await conn.execute(
                "INSERT INTO strata_migrations (version, name) VALUES ($1, $2)", version, name
            )
            applied.append(name)
    await ensure_partitions(conn)
    return applied


def partition_name(day: date) -> str:
    return f"traces_p{day:%Y%m%d}"


async def ensure_partitions(conn: Connection, *, days_ahead: int = 3) -> None:
    """Create the daily partitions of ``traces`` for today and the next days.

    Only today and future days are created: a past day's rows may already sit in the
    default partition, and Postgres refuses a new partition that would own them.
    """
    today = datetime.now(UTC).date()
    for offset in range(days_ahead + 1):
        day = today + timedelta(days=offset)
        name = partition_name(day)
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
        if exists:
            continue
        upper = day + timedelta(days=1)
        try:
            # Names and bounds come from dates we computed, never from input.
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF traces "
                f"FOR VALUES FROM ('{day.isoformat()}') TO ('{upper.isoformat()}')"
            )
        except asyncpg.exceptions.CheckViolationError:
            # Rows for that day already sit in the default partition: leave them there.
            continue
        except asyncpg.exceptions.DuplicateTableError:
            continue


#: What a lost or unreachable database raises: refused or reset connections, time-outs,
#: the connection-exception SQLSTATE class (08) and operator intervention (57: a server
#: shutting down or starting up).
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


#: Seconds one query may take before it fails with ``TimeoutError`` (an outage: the
#: editor answers 503, background loops back off). strata's queries are small and
#: bounded; a hung server (a stopped process, a dead network path) must not hold a
#: request or a loop forever. The few long ones pass :data:`LONG_QUERY`.
COMMAND_TIMEOUT: Final = 5.0
LONG_QUERY: Final = 600.0


async def connect_pool(dsn: str, *, max_size: int = 10) -> Pool:
    """A pool to ``dsn``; a clear :class:`ConfigError` when the server cannot be reached.

    No connection floor (``min_size=0``): a pool that keeps one reconnects in the
    background while Postgres is away and logs a traceback for every attempt. Connections
    are opened when used, and one query checks the server now.
    """
    pool = await asyncpg.create_pool(
        dsn, min_size=0, max_size=max_size, timeout=10, command_timeout=COMMAND_TIMEOUT
    )
    assert pool is not None
    try:
        await pool.fetchval("SELECT 1")
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        pool.terminate()
        raise ConfigError(
            f"STRATA_DATABASE_URL (--database-url): cannot connect to Postgres: {exc}"
        ) from None
    return pool

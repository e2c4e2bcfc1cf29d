"""A real Postgres for the test session, and a fresh database per test.

``STRATA_TEST_DATABASE_URL`` names a server to use; otherwise an embedded server
(pgserver, from pip) starts for the session. Migrations run once into a template
database; each test gets ``CREATE DATABASE ... TEMPLATE`` of it, which is fast.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from trace_store import db

TEMPLATE = "strata_test_template"


@contextlib.contextmanager
def admin_dsn(prefix: str = "strata-pg-") -> Iterator[str]:
    """A superuser DSN for tests and benchmarks: ``STRATA_TEST_DATABASE_URL`` when set,
    else a throwaway embedded server in a temporary directory."""
    given = os.environ.get("STRATA_TEST_DATABASE_URL")
    if given:
        yield given
        return
    from gateway.embedded_pg import start_embedded

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        dsn, server = start_embedded(Path(tmp))
        try:
            yield dsn
        finally:
            server.cleanup()


async def count_traces(pool: db.Pool, canvas: str | None = None) -> int:
    """How many index rows there are (tests and benchmarks)."""
    if canvas is None:
        return int(await pool.fetchval("SELECT count(*) FROM traces"))
    return int(await pool.fetchval("SELECT count(*) FROM traces WHERE canvas = $1", canvas))


def with_database(dsn: str, name: str) -> str:
    """``dsn`` pointing at database ``name``."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    """DSN of a superuser connection to the test server."""
    with contextlib.ExitStack() as stack:
        try:
            dsn = stack.enter_context(admin_dsn())
        except Exception as exc:  # a missing server fails the run, in CI and out
            pytest.fail(f"cannot start the embedded Postgres: {exc}")
        yield dsn


@pytest.fixture(scope="session")
async def pg_template(pg_admin_dsn: str) -> str:
    """Name of a database with every migration applied."""
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(with_database(pg_admin_dsn, TEMPLATE))
    try:
        await db.migrate(conn)
    finally:
        await conn.close()
    return TEMPLATE


@pytest.fixture
async def database_url(pg_admin_dsn: str, pg_template: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = "t_" + uuid.uuid4().hex[:16]
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    finally:
        await admin.close()
    yield with_database(pg_admin_dsn, name)
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[db.Pool]:
    """An asyncpg pool on the test's database."""
    created = await db.connect_pool(database_url, max_size=4)
    yield created
    await created.close()

"""``strata index rebuild``: the bucket is the record (issue 14, acceptance 5).

Traces of several handlers (more than ``keep_latest`` on one) and 404s are written by a
real server to a local store and indexed in a real Postgres; the index tables are then
emptied (Postgres lost), and the command, run as a user would, restores every row, the
pins (each handler's latest 10) and the unmatched summary. A second run changes nothing.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg

from tests.canvases import shop
from tests.cli_support import strata
from tests.harness import serve
from trace_store.document import codec

TABLES = ("traces", "pins", "pin_outbox", "unmatched")


async def _snapshot(conn: asyncpg.Connection) -> dict[str, Any]:
    rows = await conn.fetch(
        "SELECT canvas, handler_id, trace_id, started_at, object_key, size_bytes, sha256,"
        " status, functions, has_error, adopted, object_offset FROM traces ORDER BY trace_id"
    )
    pins = await conn.fetch("SELECT trace_id, object_key FROM pins ORDER BY trace_id")
    unmatched = await conn.fetch(
        "SELECT canvas, method, path, count FROM unmatched ORDER BY method, path"
    )
    return {
        "rows": [dict(r) for r in rows],
        "pins": [(r["trace_id"], r["object_key"]) for r in pins],
        "unmatched": [dict(r) for r in unmatched],
    }


async def test_the_index_is_rebuilt_from_the_objects(database_url: str, tmp_path: Path) -> None:
    async with serve(database_url, tmp_path, {"shop": shop}) as server:
        for i in range(14):
            async with server.http.get(server.gateway + f"/users/{i}") as response:
                assert response.status == 200
        for path in ("/pair", "/chain", "/nowhere", "/nowhere", "/missing/page"):
            async with server.http.get(server.gateway + path) as response:
                await response.read()
        await server.flush()
    store = f"file://{tmp_path / 'objects'}"
    conn = await asyncpg.connect(database_url)
    try:
        before = await _snapshot(conn)
        assert len(before["rows"]) == 16
        assert len(before["pins"]) == 12  # 10 of get_user's 14, and pair's and chain's
        assert {(u["path"], u["count"]) for u in before["unmatched"]} == {
            ("/nowhere", 2),
            ("/missing/page", 1),
        }
        # An object strata did not write, under a key that looks like one of its own.
        junk = tmp_path / "objects" / "traces" / "shop" / "get_user" / f"{uuid.uuid4()}.json.zst"
        junk.write_bytes(codec.encode({"canvas": "shop", "handler": {"id": "other"}}))
        await conn.execute(f"TRUNCATE {', '.join(TABLES)}")  # Postgres lost

        env = {"STRATA_DATABASE_URL": database_url, "STRATA_DATA_DIR": str(tmp_path)}
        code, out, err = await strata("index", "rebuild", "--store", store, env=env)
        assert code == 0, err
        assert "indexed 16 traces and 3 unmatched requests" in out, out
        assert "does not match its key" in err
        after = await _snapshot(conn)
        assert after == before
        outbox = await conn.fetch("SELECT object_key, pinned FROM pin_outbox")
        # One pin per object: get_user's 14 share segments (one per writer batch).
        pinned_objects = sorted({key for _, key in before["pins"]})
        assert sorted(r["object_key"] for r in outbox if r["pinned"]) == pinned_objects
        objects = len({r["object_key"] for r in before["rows"]})

        code, out, err = await strata("index", "rebuild", "--store", store, env=env)
        assert code == 0, err
        assert f"{objects} of them already indexed" in out, out
        assert "indexed 0 traces and 0 unmatched" in out, out
        assert await _snapshot(conn) == before

        await conn.execute(f"TRUNCATE {', '.join(TABLES)}")
        code, out, _ = await strata(
            "index", "rebuild", "--store", store, "--since", "2999-01-01", env=env
        )
        assert code == 0
        assert "older than --since" in out, out
        assert "indexed 0 traces" in out, out
        assert await conn.fetchval("SELECT count(*) FROM traces") == 0
    finally:
        await conn.close()


async def test_a_bad_since_is_one_line(tmp_path: Path) -> None:
    code, _, err = await strata(
        "index", "rebuild", "--since", "last tuesday", env={"STRATA_DATA_DIR": str(tmp_path)}
    )
    assert code == 2
    assert "--since" in err
    assert "7d" in err

"""A handler's trace list pages and filters (SPEC §14): status class, error, time
range, function called; bad filters are 400s that name the parameter."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.canvases_dev import dev
from tests.harness import Server, serve
from trace_store import keys
from trace_store.db.index import IndexRow, insert_rows

API = "/api/v1/canvases/dev/handlers/order/traces"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def _uuid7(moment: datetime, n: int) -> str:
    ms = int(moment.timestamp() * 1000)
    return str(uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62) | n))


def _row(n: int) -> IndexRow:
    """Trace ``n`` of 1,000: six seconds apart; every 10th a 500 that raised, every 7th a
    404, every 3rd calling ``price``."""
    moment = T0 + timedelta(seconds=6 * n)
    trace_id = _uuid7(moment, n)
    status = 500 if n % 10 == 0 else 404 if n % 7 == 0 else 200
    return IndexRow(
        canvas="dev",
        handler_id="order",
        trace_id=trace_id,
        started_at=moment,
        object_key=keys.trace_key("dev", "order", trace_id),
        size_bytes=100,
        sha256=b"\0" * 32,
        status=status,
        duration_ms=1.0,
        functions=("price",) if n % 3 == 0 else (),
        has_error=status == 500,
    )


ROWS = [_row(n) for n in range(1000)]


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    async with serve(database_url, tmp_path, {"dev": dev}) as running:
        await insert_rows(running.running.services.pool, ROWS)
        yield running


async def _all(server: Server, token: str, query: str) -> list[str]:
    """Every trace id the filtered list gives, page by page (200 a page)."""
    found: list[str] = []
    cursor = ""
    while True:
        status, body = await server.api(f"{API}?limit=200{query}{cursor}", token)
        assert status == 200, body
        found += [t["trace_id"] for t in body["traces"]]
        if body["next"] is None:
            return found
        cursor = f"&before={body['next']}"


def _expected(keep: object) -> list[str]:
    return [r.trace_id for r in sorted(ROWS, key=lambda r: r.trace_id, reverse=True) if keep(r)]  # type: ignore[operator]


async def test_every_filter_and_paging_over_a_thousand_traces(server: Server) -> None:
    token = await server.token("dev")
    assert await _all(server, token, "") == _expected(lambda r: True)
    assert await _all(server, token, "&status=5xx") == _expected(lambda r: r.status == 500)
    assert await _all(server, token, "&status=4xx") == _expected(lambda r: r.status == 404)
    assert await _all(server, token, "&status=2xx") == _expected(lambda r: r.status == 200)
    assert await _all(server, token, "&status=3xx") == []
    assert await _all(server, token, "&status=error") == _expected(lambda r: r.has_error)
    assert await _all(server, token, "&function=price") == _expected(lambda r: r.functions)
    since, until = T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)
    window = f"&since={quote(since.isoformat())}&until={until.isoformat().replace('+00:00', 'Z')}"
    assert await _all(server, token, window) == _expected(lambda r: since <= r.started_at < until)
    both = await _all(server, token, f"{window}&status=2xx&function=price")
    assert both == _expected(
        lambda r: since <= r.started_at < until and r.status == 200 and r.functions
    )
    assert 0 < len(both) < 100
    empty = "&since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z"
    assert await _all(server, token, empty) == []


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("status=6xx", "status"),
        ("status=", "status"),
        ("since=yesterday", "since"),
        ("until=2026-12-01T00:00:00", "until"),  # no zone
        ("function=no-such-name!", "function"),
    ],
)
async def test_a_bad_filter_is_a_400_naming_it(server: Server, query: str, named: str) -> None:
    token = await server.token("dev")
    status, body = await server.api(f"{API}?{query}", token)
    assert status == 400, body
    assert named in body["error"]["message"]

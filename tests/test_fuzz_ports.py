"""Hostile traffic on both ports of a real ``strata serve`` (SPEC §12, issue 13).

Hypothesis builds raw HTTP requests (odd methods, paths, percent-escapes, headers with
bytes that are not UTF-8, bodies that lie about their length, deep or broken JSON,
secrets marked ``LOGLEAK``) and sends them, 100 in flight, over plain sockets to the
grand-user and editor ports. Throughout:

- no answer is a 5xx of strata's own (a handler that raises answers 500
  ``handler_error``: that is the canvas's bug, and it is traced);
- ``/healthz`` on both ports, probed every 20 ms from this process, answers within
  100 ms at p99 (a stalled event loop there is a slow probe here);
- nothing is stored for a request strata rejected before a handler ran: every stored
  object is a request that reached a handler or the unmatched path;
- the server's log holds no header value, token or body, and stays short.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.probe import Probe, p99
from tests.test_serve_process import strata_serve
from trace_store.document import codec

BATCH = 100
BATCHES = 55  # per port: 2 x 55 x 100 = 11,000 requests
CONCURRENCY = 100
ADMIN = "fuzz-admin-token-0123456789"
LEAK = "LOGLEAK"

#: Answers strata gives before any handler runs: nothing may be stored for them.
REJECTED = {"bad_request", "request_timeout", "too_large", "unknown_canvas"}

GATEWAY_PATHS = [
    "/hello",
    "/users/42",
    "/orders",
    "/chain",
    "/dice",
    "/files/a/b",
    "/boom",
    "/nothing/here",
    "/",
    "/users/",
    "/files/",
]
EDITOR_PATHS = [
    "/api/v1/canvases",
    "/api/v1/canvases/demo/handlers",
    "/api/v1/canvases/demo/handlers/get_user/traces",
    "/api/v1/canvases/demo/traces/01a2314e-11bf-757d-8d79-2bfa1936ed63",
    "/api/v1/canvases/demo/unmatched",
    "/objects/traces/demo/x.json.zst",
    "/static/app.js",
    "/",
    "/metrics",
    "/api/v1/openapi.json",
]

odd_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
) | st.sampled_from(
    [
        "..",
        "%00",
        "%C2%B2",
        "%ff",
        "²",
        "a" * 300,
        "../../etc/passwd",
        "🦄",
        "%2e%2e%2f",
        "\\",
        "  ",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
    ]
)


def _quote(text: str) -> str:
    # Keep the request line parseable most of the time; raw bytes still go in sometimes.
    return "".join(
        c
        if c.isascii() and c.isprintable() and c not in " ?#"
        else "".join(f"%{b:02X}" for b in c.encode())
        for c in text
    )


@st.composite
def paths(draw: Any, known: list[str]) -> str:
    base = draw(st.sampled_from(known))
    if draw(st.booleans()):
        base = base.rstrip("/") + "/" + _quote(draw(odd_text))
    if draw(st.booleans()):
        key = draw(st.sampled_from(["limit", "before", "password", "token", "verbose", "x"]))
        base += f"?{key}={_quote(draw(odd_text))}"
        if draw(st.booleans()):
            base += f"&api_key={LEAK}-q{draw(st.integers(0, 999))}"
    return base


header_values = st.binary(max_size=60) | st.sampled_from(
    [b"Bearer " + LEAK.encode() + b"-authz\x01", b"Bearer \xff", b"", b"x" * 9000, b"\xc3\xa9"]
)
header_names = st.sampled_from(
    [
        b"Authorization",
        b"Cookie",
        b"X-Api-Key",
        b"Content-Type",
        b"Last-Event-ID",
        b"Range",
        b"Accept",
        b"X-Custom",
        b"Bad Name",
        b"\xff",
        b"Transfer-Encoding",
    ]
)
bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    st.just(b"[" * 2000 + b"]" * 2000),
    st.just(
        orjson.dumps(
            {"items": [{"sku": "tea", "qty": 2, "price": 3.5}], "password": LEAK + "-body"}
        )
    ),
    st.just(b'{"args": [{"$strata": "decimal", "v": "x"}]}'),
    st.just(b'{"items": [{"qty": "x"}]}'),
)


@st.composite
def raw_requests(draw: Any, known: list[str], host: bytes) -> bytes:
    method = draw(
        st.sampled_from(
            [b"GET", b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"BREW", b"G\x00T"]
        )
    )
    path = draw(paths(known)).encode()
    if draw(st.integers(0, 19)) == 0:
        path = draw(st.binary(min_size=1, max_size=30))  # a request line that is not one
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: " + host, b"Connection: close"]
    if draw(st.booleans()):
        lines.append(b"Authorization: Bearer " + ADMIN.encode())
    for _ in range(draw(st.integers(0, 3))):
        lines.append(draw(header_names) + b": " + draw(header_values))
    body = draw(bodies)
    length = len(body)
    if draw(st.integers(0, 9)) == 0:
        length += draw(st.integers(-len(body), 50))  # a length that lies
    if body or draw(st.booleans()):
        lines.append(b"Content-Length: " + str(length).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _generate(known: list[str], host: bytes) -> list[bytes]:
    """``BATCHES`` x ``BATCH`` requests, drawn by Hypothesis (sent later, all at once:
    a server behind a real socket is too slow to shrink against, and one slow request
    must not hold a whole batch)."""
    drawn: list[bytes] = []

    @settings(
        max_examples=BATCHES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.lists(raw_requests(known, host), min_size=BATCH, max_size=BATCH))
    def draw(batch: list[bytes]) -> None:
        drawn.extend(batch)

    draw()
    return drawn


async def _send(port: int, payload: bytes) -> tuple[int, bytes]:
    """Send one raw request; the first answer's status (0 if none came) and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b""
    try:
        writer.write(payload)
        await writer.drain()
        async with asyncio.timeout(15):
            while chunk := await reader.read(65536):
                data += chunk
    except (ConnectionError, TimeoutError):
        pass  # reset after answering (a length that lied), or an answer that never ends
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), body


def _code(body: bytes) -> str:
    try:
        return str(orjson.loads(body)["error"]["code"])
    except Exception:
        return ""


async def test_hostile_traffic_on_both_ports(tmp_path: Path, database_url: str) -> None:
    log = tmp_path / "serve.log"
    env = {
        "STRATA_DATA_DIR": str(tmp_path / "data"),
        "STRATA_DATABASE_URL": database_url,
        "STRATA_ADMIN_TOKEN": ADMIN,
        "STRATA_QUEUE_TRACES": "100000",  # measure what is stored, not what is shed
        "STRATA_BODY_TIMEOUT": "0.5",
    }
    requests = {
        "gateway": _generate(GATEWAY_PATHS, b"demo.localhost"),
        "editor": _generate(EDITOR_PATHS, b"127.0.0.1"),
    }
    answered: dict[str, list[tuple[int, str]]] = {"gateway": [], "editor": []}
    with strata_serve(["--app", "examples.demo:canvas"], env, log=log) as printed:
        ports = {role: int(printed[role].rsplit(":", 1)[1]) for role in answered}
        probe = Probe([printed["gateway"], printed["editor"]], interval=0.02)
        probe.start()
        in_flight = asyncio.Semaphore(CONCURRENCY)
        strata_5xx: list[tuple[int, bytes, bytes]] = []

        async def one(role: str, request: bytes) -> None:
            async with in_flight:
                status, body = await _send(ports[role], request)
            code = _code(body)
            answered[role].append((status, code))
            if status >= 500 and code != "handler_error":
                strata_5xx.append((status, body[:300], request[:300]))

        try:
            await asyncio.gather(*(one(role, r) for role, rs in requests.items() for r in rs))
        finally:
            await asyncio.to_thread(probe.stop)
        assert strata_5xx == []
        stored_expected = sum(
            1 for status, code in answered["gateway"] if status and code not in REJECTED
        )
        objects = await _settled_objects(tmp_path / "data" / "objects", database_url)

    total = sum(len(v) for v in answered.values())
    assert total >= 10_000
    assert probe.failures == []
    worst = p99(probe.all())
    assert worst < 0.1, f"/healthz p99 {worst * 1000:.0f} ms over {len(probe.all())} probes"
    assert objects == stored_expected
    text = log.read_text(errors="replace")
    assert LEAK not in text
    assert ADMIN not in text
    assert len(text.splitlines()) < 200, text[-3000:]


async def _settled_objects(root: Path, database_url: str) -> int:
    """Traces in the local store (a segment holds several), once they and the index rows
    stop changing."""
    conn = await asyncpg.connect(database_url)
    try:
        last: tuple[int, int] = (-1, -1)
        for _ in range(60):
            now = (
                # Pins are links under .pins/, not objects of their own.
                sum(
                    len(list(codec.frames(path.read_bytes())))
                    for kind in ("traces", "unmatched")
                    for path in (root / kind).rglob("*.zst")
                ),
                int(await conn.fetchval("SELECT count(*) FROM traces")),
            )
            if now == last:
                break
            last = now
            await asyncio.sleep(1.0)
        return last[0]
    finally:
        await conn.close()

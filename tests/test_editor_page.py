"""The editor page in a real headless Chromium (SPEC §13), with the local store and with
S3 on moto cross-origin: a live dot, the trace from its signed URL, rerun and a
function run folded by merge.js, readable errors, and a 10 MB trace.

Screenshots and the latency figures go to ``test-artifacts/`` (not committed).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import orjson

from tests.canvases import shop
from tests.fixtures_cloud import S3Server
from tests.harness import Server, serve
from trace_store.document.build import TraceLimits

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
ORDER = {"items": [{"sku": "tea", "price": 3.5, "qty": 2}, {"sku": "cup", "price": 4, "qty": 1}]}


class NetworkLog:
    """Every response the page saw: URL, status, resource type and headers."""

    def __init__(self, page: Any) -> None:
        self.entries: list[dict[str, Any]] = []
        page.on("response", self._record)

    def _record(self, response: Any) -> None:
        self.entries.append(
            {
                "url": response.url,
                "status": response.status,
                "type": response.request.resource_type,
                "headers": response.headers,
            }
        )

    def matching(self, needle: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if needle in e["url"]]


async def open_editor(browser: Any, server: Server, token: str) -> tuple[Any, Any, NetworkLog]:
    """A fresh page with the token entered, once the event stream is live."""
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    log = NetworkLog(page)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(server.editor + "/")
    await page.fill("#token-input", token)
    await page.click("#token-form button[type=submit]")
    await expect(page.locator(".handler-row[data-handler-id='create-order']")).to_be_visible()
    await expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    assert errors == [], errors
    return context, page, log


async def post_order(server: Server) -> None:
    async with server.http.post(server.gateway + "/orders", json=ORDER) as response:
        assert response.status == 201


async def exercise_page(browser: Any, server: Server, name: str, base_prefix: str) -> None:
    """The acceptance path of issue 7 on one store; ``base_prefix`` is where bases live."""
    from playwright.async_api import expect

    token = await server.token("shop")
    context, page, log = await open_editor(browser, server, token)
    try:
        dots = page.locator(".handler-row[data-handler-id='create-order'] .dot")
        await expect(dots).to_have_count(0)
        await page.evaluate("window.__sameDocument = true")

        await post_order(server)
        # The dot comes from the event stream: no reload, no polling.
        await expect(dots).to_have_count(1, timeout=5000)
        assert await page.evaluate("window.__sameDocument === true")

        await dots.first.click()
        await expect(page.locator("#input-path")).to_have_text("/orders")
        order_total = page.locator("#calls .call[data-function='order_total']").first
        await expect(order_total.locator(":scope > .call-args")).to_contain_text('"sku": "tea"')
        await expect(order_total.locator(":scope > .call-result")).to_contain_text("13.2")
        add_tax = page.locator("#calls .call[data-function='add_tax']").first
        # 11.0 stays a float on the page (and in the function run below).
        await expect(add_tax.locator(":scope > .call-args")).to_contain_text("11.0,")
        await expect(page.locator("#result")).to_have_attribute("data-source", "base")
        await expect(page.locator("#result .result-body")).to_contain_text('"total": 13.2')
        # The browser decoded Content-Encoding: zstd itself.
        await expect(page.locator("#trace-meta")).to_have_attribute("data-decoder", "native")
        # The code beside it, explained from the base this store holds.
        await expect(page.locator("#code-panel")).to_have_attribute(
            "data-explained", "yes", timeout=10_000
        )

        # The base came straight from the signed URL, not through the API.
        bases = log.matching(base_prefix)
        assert len(bases) == 1, log.entries
        assert bases[0]["status"] == 200
        assert bases[0]["type"] == "fetch"
        assert "/api/" not in bases[0]["url"]
        assert bases[0]["headers"].get("content-encoding") == "zstd"
        api_calls = [e for e in log.entries if "/api/" in e["url"]]
        assert all(e["headers"].get("content-encoding") != "zstd" for e in api_calls)

        # A run of the base's own call lands on it: a strata.trace/2 base stores no
        # args_hash for user calls, so the page derived add_tax(11.0, 0.2)'s
        # (argshash.js) to the hash the server gave the run.
        await add_tax.locator(":scope > .call-meta .run-function").click()
        await expect(page.locator("#patches")).to_have_attribute("data-applied", "1")
        await expect(add_tax.locator(":scope > .call-latest")).to_contain_text("13.2")

        await page.click("#rerun")
        await expect(page.locator("#patches")).to_have_attribute("data-applied", "2")
        result = page.locator("#result")
        await expect(result).not_to_have_attribute("data-source", "base")
        await expect(result.locator(".source")).to_contain_text("patch")
        await expect(result.locator(".result-body")).to_contain_text('"total": 13.2')
        await expect(page.locator("#recorded")).to_have_count(1)

        await page.locator("#calls .call[data-function='add_tax'] .run-function").first.click()
        await expect(page.locator("#patches")).to_have_attribute("data-applied", "3")
        run = page.locator(".function-run[data-function='add_tax']").last
        await expect(run).to_contain_text("13.2")
        # Same args hash as the recorded call: the run shows on that call in the tree.
        latest = page.locator("#calls .call[data-function='add_tax'] .call-latest")
        await expect(latest).to_contain_text("13.2")

        # "Run again" under the recorded execution runs too (it used to do nothing).
        await page.locator("#recorded > summary").click()
        recorded_run = page.locator("#recorded-calls .call[data-function='subtotal'] .run-function")
        await recorded_run.first.click()
        await expect(page.locator("#patches")).to_have_attribute("data-applied", "4")
        await expect(page.locator(".function-run[data-function='subtotal']")).to_contain_text(
            "11.0"
        )

        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / f"editor-{name}.png"), full_page=True)
        (ARTIFACTS / f"editor-{name}-network.json").write_bytes(
            orjson.dumps(log.entries, option=orjson.OPT_INDENT_2)
        )
    finally:
        await context.close()


async def test_page_with_the_local_store(browser: Any, database_url: str, tmp_path: Path) -> None:
    async with serve(database_url, tmp_path, {"shop": shop}) as server:
        await exercise_page(browser, server, "local", server.editor + "/objects/")


async def test_page_with_s3_on_moto_cross_origin(
    browser: Any, database_url: str, tmp_path: Path, moto_server: S3Server, moto_bucket: str
) -> None:
    store_url = f"s3://{moto_bucket}?endpoint={moto_server.endpoint}&region=us-east-1"
    async with serve(database_url, tmp_path, {"shop": shop}, store_url=store_url) as server:
        assert server.editor.split(":")[2] != moto_server.endpoint.split(":")[2]  # cross-origin
        await server.running.services.store.set_cors([server.editor])
        await exercise_page(browser, server, "s3", moto_server.endpoint + f"/{moto_bucket}/")
        # The bucket answered with CORS for the editor's origin, as configured.
        rules = moto_server.client().get_bucket_cors(Bucket=moto_bucket)["CORSRules"]
        assert any(server.editor in rule["AllowedOrigins"] for rule in rules)


async def exercise_segment(browser: Any, server: Server, base_prefix: str) -> None:
    """Requests answered together share one segment: each of its traces opens from its
    own byte range, sha256 checked, decoded by fzstd (Chromium has no zstd stream)."""
    import asyncio

    from playwright.async_api import expect

    token = await server.token("shop")
    context, page, log = await open_editor(browser, server, token)
    try:
        await asyncio.gather(*(post_order(server) for _ in range(6)))
        dots = page.locator(".handler-row[data-handler-id='create-order'] .dot")
        await expect(dots).to_have_count(6, timeout=5000)
        rows = await server.running.services.pool.fetch(
            "SELECT trace_id::text, object_key, object_offset FROM traces"
        )
        assert len({r["object_key"] for r in rows}) == 1  # one object for the six
        assert all(r["object_offset"] is not None for r in rows)
        has_zstd_stream = await page.evaluate(
            "(() => { try { new DecompressionStream('zstd'); return true }"
            " catch { return false } })()"
        )
        for i in range(6):
            await dots.nth(i).click()
            meta = page.locator("#trace-meta")
            trace_id = await dots.nth(i).get_attribute("data-trace-id")
            await expect(meta).to_have_attribute("data-trace-id", trace_id or "")
            await expect(meta).to_have_attribute("data-verified", "true")
            await expect(meta).to_have_attribute(
                "data-decoder", "native" if has_zstd_stream else "fzstd"
            )
            await expect(page.locator("#input-path")).to_have_text("/orders")
        bases = log.matching(base_prefix)
        assert len(bases) == 6, log.entries
        assert {b["status"] for b in bases} == {206}
        # Ranged reads carry no Content-Encoding: Chromium fails those that do.
        assert all("content-encoding" not in b["headers"] for b in bases)
    finally:
        await context.close()


async def test_every_trace_of_a_segment_opens_with_the_local_store(
    browser: Any, database_url: str, tmp_path: Path
) -> None:
    async with serve(database_url, tmp_path, {"shop": shop}) as server:
        await exercise_segment(browser, server, server.editor + "/objects/")


async def test_every_trace_of_a_segment_opens_from_s3_on_moto(
    browser: Any, database_url: str, tmp_path: Path, moto_server: S3Server, moto_bucket: str
) -> None:
    store_url = f"s3://{moto_bucket}?endpoint={moto_server.endpoint}&region=us-east-1"
    async with serve(database_url, tmp_path, {"shop": shop}, store_url=store_url) as server:
        await server.running.services.store.set_cors([server.editor])
        await exercise_segment(browser, server, moto_server.endpoint + f"/{moto_bucket}/")


async def test_page_says_when_the_base_object_is_missing(
    browser: Any, database_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    async with serve(database_url, tmp_path, {"shop": shop}) as server:
        await post_order(server)
        await server.flush()
        # Backdoor: remove the object behind the index row, as a lifecycle rule would.
        (found,) = [p for p in (tmp_path / "objects").rglob("*") if p.is_file()]
        found.unlink()
        context, page, _ = await open_editor(browser, server, await server.token("shop"))
        try:
            await page.locator(".dot").first.click()
            error = page.locator(".trace-error")
            await expect(error).to_have_attribute("data-kind", "missing")
            await expect(error).to_contain_text("missing from the store")
        finally:
            await context.close()


async def _median_manifest_ms(server: Server, token: str, trace_id: str, rounds: int) -> float:
    path = f"/api/v1/canvases/shop/traces/{trace_id}"
    await server.api(path, token)  # warm the token cache and the connection
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        status, _ = await server.api(path, token)
        times.append((time.perf_counter() - started) * 1000)
        assert status == 200
    return statistics.median(times)


async def test_a_10_mb_trace_opens_and_its_manifest_is_as_fast_as_a_small_one(
    browser: Any, database_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    limits = TraceLimits(max_body_bytes=8 * 1024 * 1024)
    async with serve(database_url, tmp_path, {"shop": shop}, limits=limits) as server:
        token = await server.token("shop")
        # Hex text: JSON-safe, and only 2:1 compressible, so the object stays big too.
        body = os.urandom(2_600_000).hex().encode()
        async with server.http.post(server.gateway + "/echo", data=body) as response:
            assert response.status == 200
        async with server.http.get(server.gateway + "/users/1") as response:
            assert response.status == 200
        await server.flush()
        _, listed = await server.api("/api/v1/canvases/shop/handlers/echo/traces", token)
        big = listed["traces"][0]["trace_id"]
        _, listed = await server.api("/api/v1/canvases/shop/handlers/get_user/traces", token)
        small = listed["traces"][0]["trace_id"]
        _, big_manifest = await server.api(f"/api/v1/canvases/shop/traces/{big}", token)
        _, small_manifest = await server.api(f"/api/v1/canvases/shop/traces/{small}", token)
        doc = await server.trace_doc("shop", token, big)
        doc_bytes = len(orjson.dumps(doc))
        assert doc_bytes >= 10_000_000

        small_ms = await _median_manifest_ms(server, token, small, 30)
        big_ms = await _median_manifest_ms(server, token, big, 30)
        # The manifest signs a URL and reads one index row: its cost does not depend on
        # the trace's size. Generous bounds: the machine is shared.
        assert big_ms < 3 * small_ms + 10, (small_ms, big_ms)

        context, page, _ = await open_editor(browser, server, token)
        try:
            started = time.perf_counter()
            await page.locator(".handler-row[data-handler-id='echo'] .dot").first.click()
            await expect(page.locator("#input-path")).to_have_text("/echo", timeout=30_000)
            await expect(page.locator("#input .body")).to_contain_text("characters, first")
            # Within the limits: no warning that a rerun would see a cut body.
            await expect(page.locator("#rerun-cut")).to_have_count(0)
            open_ms = (time.perf_counter() - started) * 1000
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "editor-10mb.png"))
        finally:
            await context.close()
        figures = {
            "small_trace": {"object_bytes": small_manifest["base"]["bytes"]},
            "big_trace": {"object_bytes": big_manifest["base"]["bytes"], "json_bytes": doc_bytes},
            "manifest_median_ms": {"small": round(small_ms, 2), "big": round(big_ms, 2)},
            "page_open_big_ms": round(open_ms, 1),
        }
        (ARTIFACTS / "manifest-latency.json").write_bytes(
            orjson.dumps(figures, option=orjson.OPT_INDENT_2)
        )
        print(figures)


async def test_the_editor_link_make_run_prints_signs_in_and_leaves_no_token_in_the_url(
    browser: Any, database_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    async with serve(database_url, tmp_path, {"shop": shop}) as server:
        token = await server.token("shop")
        context = await browser.new_context()
        try:
            page = await context.new_page()
            await page.goto(f"{server.editor}/#token={token}")
            await expect(
                page.locator(".handler-row[data-handler-id='create-order']")
            ).to_be_visible()
            assert page.url == server.editor + "/"  # the token left the address bar
            assert await page.evaluate("sessionStorage.getItem('strata.token')") == token
            await expect(page.locator("#token-form")).to_be_hidden()
        finally:
            await context.close()


async def open_echo(browser: Any, server: Server, body: bytes) -> tuple[Any, Any]:
    """POST ``body`` to /echo, then a page open on that trace."""
    from playwright.async_api import expect

    async with server.http.post(server.gateway + "/echo", data=body) as response:
        assert response.status == 200
    context, page, _ = await open_editor(browser, server, await server.token("shop"))
    dot = page.locator(".handler-row[data-handler-id='echo'] .dot")
    await expect(dot).to_have_count(1, timeout=5000)
    await dot.click()
    return context, page


async def test_a_rerun_of_a_cut_body_is_announced(
    browser: Any, database_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    limits = TraceLimits(max_body_bytes=1024)
    async with serve(database_url, tmp_path, {"shop": shop}, limits=limits) as server:
        context, page = await open_echo(browser, server, b"x" * 4096)
        try:
            warning = page.locator("#rerun-cut")
            await expect(warning).to_contain_text("4,096 bytes were sent")
            await expect(warning).to_contain_text("a rerun runs on the cut body")
        finally:
            await context.close()


async def test_a_5_mb_body_opens_formatted_expands_and_downloads(
    browser: Any, database_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    limits = TraceLimits(max_body_bytes=8 * 1024 * 1024)
    items = [{"sku": f"item-{i}", "price": 1.0, "qty": i} for i in range(120_000)]
    body = orjson.dumps({"items": items})
    assert len(body) > 5_000_000
    async with serve(database_url, tmp_path, {"shop": shop}, limits=limits) as server:
        context, page = await open_echo(browser, server, body)
        try:
            shown = page.locator("#input .body")
            # Formatted (one key a line, floats kept), cut for the first view.
            await expect(shown).to_contain_text('"sku": "item-0",\n        "price": 1.0,')
            first = await shown.evaluate("el => el.textContent.length")
            assert first < 100_000
            await page.locator("#input .show-all").click()
            whole = await shown.evaluate("el => el.textContent.length")
            assert whole > len(body)  # all of it, indented
            async with page.expect_download() as waiting:
                await page.locator("#input .download").click()
            download = await waiting.value
            assert download.suggested_filename == "body.json"
            saved = Path(await download.path()).read_bytes()
            assert saved == body
        finally:
            await context.close()


async def test_a_20_call_trace_fits_one_screen_with_names_args_and_results(
    browser: Any, database_url: str, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    async with serve(database_url, tmp_path, {"shop": shop}) as server:
        token = await server.token("shop")
        async with server.http.get(server.gateway + "/chain") as response:
            assert response.status == 200
        context, page, _ = await open_editor(browser, server, token)
        try:
            dot = page.locator(".handler-row[data-handler-id='chain'] .dot")
            await expect(dot).to_have_count(1, timeout=5000)
            await dot.click()
            await expect(page.locator("#code-panel")).to_have_attribute(
                "data-explained", "yes", timeout=10_000
            )
            calls = page.locator("#calls .call[data-function='step']")
            await expect(calls).to_have_count(20)
            # Parameter names from the source, the argument and the result on one line.
            await expect(calls.first.locator(".call-args")).to_have_text("(value=1)")
            await expect(calls.first.locator(".call-result")).to_have_text("→ 31")
            await expect(calls.first.locator(".duration")).to_contain_text("µs")
            box = await page.locator("#calls").bounding_box()
            assert box is not None
            assert box["height"] <= 1000, box  # the viewport's height
        finally:
            await context.close()

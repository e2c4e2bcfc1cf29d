"""A handler's traces in the page (SPEC §14), in headless Chromium: 1,000 traces paged
50 at a time, and each filter (status class, error, time range, function called)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.canvases_dev import dev
from tests.harness import Server, serve
from tests.test_trace_filters import ROWS, T0
from trace_store.db.index import insert_rows


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    async with serve(database_url, tmp_path, {"dev": dev}) as running:
        await insert_rows(running.running.services.pool, ROWS)
        yield running


async def test_a_thousand_traces_page_and_filter(browser: Any, server: Server) -> None:
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="UTC")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        await page.goto(server.editor + "/")
        await page.fill("#token-input", await server.token("dev"))
        await page.click("#token-form button[type=submit]")
        row = page.locator(".handler-row[data-handler-id='order']")
        await row.locator(".list-toggle").click()
        listing = row.locator(".trace-list")
        await expect(listing).to_have_attribute("data-count", "50")
        older = listing.locator(".older")
        for pages in range(2, 21):
            await older.click()
            await expect(listing).to_have_attribute("data-count", str(50 * pages))
        await expect(older).to_be_hidden()
        ids = await listing.locator(".trace-row").evaluate_all(
            "rows => rows.map(r => r.dataset.traceId)"
        )
        assert ids == [r.trace_id for r in sorted(ROWS, key=lambda r: r.trace_id, reverse=True)]

        async def settled() -> None:
            await expect(listing).to_have_attribute("data-loading", "no")

        async def filtered(expected: int) -> None:
            await listing.locator("button[type=submit]").click()
            await settled()
            while await older.is_visible():
                await older.click()
                await settled()
            await expect(listing).to_have_attribute("data-count", str(expected))

        await listing.locator(".filter-status").select_option("5xx")
        await filtered(sum(r.status == 500 for r in ROWS))
        await listing.locator(".filter-status").select_option("error")
        await filtered(sum(r.has_error for r in ROWS))
        await listing.locator(".filter-status").select_option("")
        await listing.locator(".filter-function").fill("price")
        await filtered(sum(bool(r.functions) for r in ROWS))
        await listing.locator(".filter-function").fill("")
        since, until = T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)
        await listing.locator(".filter-since").fill(since.strftime("%Y-%m-%dT%H:%M:%S"))
        await listing.locator(".filter-until").fill(until.strftime("%Y-%m-%dT%H:%M:%S"))
        await filtered(sum(since <= r.started_at < until for r in ROWS))
        assert errors == [], errors
    finally:
        await context.close()

"""The editor page as the place where a handler is written (SPEC §14), in headless
Chromium against a real ``serve --reload``: the handler's source beside the trace, the
lines that ran marked, the others greyed, each line's values at its end, the code
explained again when its file changes, and a file that does not load shown at its line.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Server, serve_module

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

CODE = """from runtime import Canvas

app = Canvas("live")


@app.function()
def price(item, qty):
    base = {"tea": 2.5}.get(item, 1.0)
    return base * qty


@app.http("GET", "/order/:item")
def order(request):
    item = request.params["item"]
    if item == "unicorn":
        note = "rare"
    else:
        note = "common"
    totals = []
    for i in range(3):
        totals.append(price(item, i + 1))
    return {"note": note, "total": sum(totals)}
"""


def _line(text: str, code: str = CODE) -> int:
    (number,) = [n for n, line in enumerate(code.splitlines(), 1) if line.strip() == text]
    return number


@pytest.fixture
async def live(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Server, Path]]:
    async with serve_module(database_url, tmp_path, CODE) as running:
        yield running


async def _open(browser: Any, server: Server) -> tuple[Any, Any, list[str]]:
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(server.editor + "/")
    await page.fill("#token-input", await server.token("live"))
    await page.click("#token-form button[type=submit]")
    await expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    return context, page, errors


async def test_the_code_shows_what_ran_with_its_values_and_follows_the_file(
    browser: Any, live: tuple[Server, Path]
) -> None:
    from playwright.async_api import expect

    server, module = live
    context, page, errors = await _open(browser, server)
    try:
        async with server.http.get(server.gateway + "/order/tea") as response:
            assert response.status == 200
        dots = page.locator(".handler-row[data-handler-id='order'] .dot")
        await expect(dots).to_have_count(1, timeout=5000)
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "editor-start.png"))
        await dots.first.click()
        panel = page.locator("#code-panel")
        await expect(panel).to_have_attribute("data-explained", "yes", timeout=10_000)

        def row(text: str) -> Any:
            return page.locator(f"#code .code-line[data-line='{_line(text)}']")

        await expect(row('note = "common"')).to_have_class("code-line ran")
        await expect(row('note = "rare"')).to_have_class("code-line not-run")
        await expect(row('note = "common"').locator(".value")).to_have_text('note = "common"')
        await expect(row("for i in range(3):").locator(".hits")).to_have_text("×4")
        await expect(row("for i in range(3):").locator(".value")).to_have_text("i = 2")
        append = row("totals.append(price(item, i + 1))")
        await expect(append.locator(".value")).to_have_text("totals = [2.5, 5.0, 7.5]")
        item = row('item = request.params["item"]')
        await expect(item.locator(".value")).to_have_text('item = "tea"')
        # Each call of the user function, expandable, with its arguments and values.
        frames = page.locator("#code-panel .frame[data-function='price']")
        await expect(frames).to_have_count(3)
        await frames.nth(1).locator("summary").click()
        await expect(frames.nth(1).locator("summary")).to_have_text('price(item="tea", qty=2)')
        base_at = _line('base = {"tea": 2.5}.get(item, 1.0)')
        base_line = frames.nth(1).locator(f".code-line[data-line='{base_at}']")
        await expect(base_line.locator(".value")).to_have_text("base = 2.5")
        returned = frames.nth(1).locator(f".code-line[data-line='{_line('return base * qty')}']")
        await expect(returned).to_have_class("code-line ran")
        # The float the handler returned stays a float in the body (it was shown as 15).
        await expect(page.locator("#result .result-body")).to_contain_text('"total": 15.0')
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "editor-code.png"), full_page=True)

        # Editing the handler re-explains the open trace with the new code.
        changed = CODE.replace('note = "common"', 'note = "plain"')
        module.write_text(changed)
        plain_at = _line('note = "plain"', changed)
        new_row = page.locator(f"#code .code-line[data-line='{plain_at}']")
        await expect(new_row.locator(".value")).to_have_text('note = "plain"', timeout=15_000)
        await expect(page.locator("#differs")).to_be_visible()

        # A file that does not load: the error at its line, the old code still serving.
        broken = changed.replace("    return {", "    return {{", 1)
        started = time.monotonic()
        module.write_text(broken)
        await expect(page.locator("#message")).to_contain_text("SyntaxError", timeout=15_000)
        # At its line, with the line's text, above the code that keeps serving.
        load_error = page.locator("#load-error")
        at = next(n for n, text in enumerate(broken.splitlines(), 1) if "return {{" in text)
        await expect(load_error).to_contain_text(f":{at}:")
        await expect(load_error).to_contain_text("return {{")
        assert time.monotonic() - started < 15
        async with server.http.get(server.gateway + "/order/tea") as response:
            assert (await response.json())["note"] == "plain"

        # A rerun with code that now fails colours the trace's dot by that rerun, on
        # this page at once and on a fresh one from the trace list.
        module.write_text(
            changed.replace("    return {", "    raise ValueError(note)\n    return {", 1)
        )
        await expect(page.locator("#message")).to_be_hidden(timeout=15_000)
        await page.click("#rerun")
        await expect(page.locator("#patches")).to_have_attribute("data-applied", "1")
        await expect(dots.first).to_have_class(re.compile(r"\bstatus-5xx\b"))
        await page.reload()
        await expect(dots.first).to_have_class(re.compile(r"\bstatus-5xx\b"), timeout=10_000)
        assert errors == [], errors
    finally:
        await context.close()


async def test_a_404_becomes_a_handler_from_its_scaffold_live_on_the_page(
    browser: Any, live: tuple[Server, Path]
) -> None:
    from playwright.async_api import expect

    server, module = live
    context, page, errors = await _open(browser, server)
    try:
        async with server.http.get(server.gateway + "/new/thing?count=2") as response:
            assert response.status == 404
        entry = page.locator(".unmatched-entry button")
        await expect(entry).to_have_count(1, timeout=5000)
        await entry.click()
        panel = page.locator("#scaffold-panel")
        await expect(panel).to_have_attribute("data-route", "/new/thing")
        code = await page.locator("#scaffold").text_content()
        assert code is not None
        assert '@app.http("GET", "/new/thing")' in code
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "editor-scaffold.png"), full_page=True)

        # Pasting the scaffold into the module adopts the stored request, live.
        name = await panel.get_attribute("data-function-name")
        with module.open("a") as handle:
            handle.write("\n\n" + code)
        row = page.locator(f".handler-row[data-handler-id='{name}']")
        dot = row.locator(".dot")
        await expect(dot).to_have_count(1, timeout=15_000)
        title = await dot.get_attribute("title")
        assert title is not None
        assert "[object Object]" not in title, title
        assert title.endswith(" 0 ms"), title
        await dot.click()
        # An adopted trace has no handler in its document: the header still names it.
        await expect(page.locator(".trace-head h2")).to_contain_text(f"GET /new/thing {name}")
        await expect(page.locator("#code-panel")).to_have_attribute(
            "data-explained", "yes", timeout=10_000
        )
        async with server.http.get(server.gateway + "/new/thing?count=3") as response:
            assert response.status == 200
            assert (await response.json())["count"] == "3"
        assert errors == [], errors
    finally:
        await context.close()


async def test_comparing_traces_and_reruns_and_running_a_function_with_edited_args(
    browser: Any, live: tuple[Server, Path]
) -> None:
    from playwright.async_api import expect

    server, module = live
    for item in ("tea", "unicorn"):
        async with server.http.get(server.gateway + f"/order/{item}") as response:
            assert response.status == 200
        await asyncio.sleep(0.005)  # trace ids order by the millisecond: tea first
    context, page, errors = await _open(browser, server)
    try:
        dots = page.locator(".handler-row[data-handler-id='order'] .dot")
        await expect(dots).to_have_count(2, timeout=5000)
        await dots.first.click()  # the oldest: tea
        await expect(page.locator("#input-path")).to_have_text("/order/tea")
        other = await dots.nth(1).get_attribute("data-trace-id")
        await page.locator("#compare-with").select_option(other)
        comparison = page.locator("#trace-comparison")
        await expect(comparison).to_have_attribute("data-differences", re.compile(r"^[1-9]"))
        inputs = page.locator("#trace-comparison-panel .compare-part[data-part='input']")
        await expect(inputs).to_contain_text('"tea"')
        await expect(inputs).to_contain_text('"unicorn"')
        await expect(comparison.locator(".compare-part[data-part='body']")).to_contain_text("rare")

        # A rerun with changed code against the recorded execution.
        module.write_text(CODE.replace('note = "common"', 'note = "plain"'))
        await expect(page.locator("#differs")).to_be_visible(timeout=15_000)
        await page.click("#rerun")
        rerun = page.locator("#rerun-comparison")
        await expect(rerun).to_have_attribute("data-differences", re.compile(r"^[1-9]"))
        body = rerun.locator(".compare-part[data-part='body']")
        await expect(body.locator(".diff-before")).to_contain_text("common")
        await expect(body.locator(".diff-after")).to_contain_text("plain")

        # Run price with arguments edited on the page; bad ones are refused before sending.
        call = page.locator("#calls .call[data-function='price']").first
        await call.locator(".edit-function").click()
        area = call.locator(".args-input")
        await area.fill('["unicorn", 2')
        await call.locator(".edit-args button[type=submit]").click()
        await expect(call.locator(".args-problem")).to_contain_text("not valid JSON")
        await expect(page.locator("#patches")).to_have_attribute("data-applied", "1")
        await area.fill('["unicorn", 2]')
        await call.locator(".edit-args button[type=submit]").click()
        await expect(page.locator("#patches")).to_have_attribute("data-applied", "2")
        runs = page.locator(".function-run[data-function='price']")
        await expect(runs).to_contain_text("2.0")  # not in the canvas's price list: 1.0 * 2
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "editor-compare.png"), full_page=True)
        assert errors == [], errors
    finally:
        await context.close()

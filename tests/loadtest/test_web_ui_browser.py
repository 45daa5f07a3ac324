# tests/loadtest/test_web_ui_browser.py
#
# The Locust web UI as a user drives it, in a real browser: Debian's headless
# Chromium under Playwright opens the page, unticks LongUser, picks `coro`
# from the lab's target drop-down, presses Start and sees request counts
# rise; the coro server (not the default threads one) got the requests.
# Without Chromium this test skips loudly, and fails in CI (`make test`
# installs Debian's chromium when it runs as root).

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import expect, sync_playwright

from services import VARIANTS
from tests.conftest import Server, unavailable

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_pick_a_variant_in_the_browser_and_run_it(
    web_ui: str, threads_server: Server, coro_server: Server
):
    chromium = CHROMIUM or unavailable("Debian's chromium", "apt-get install chromium")
    before = coro_server.metric("fib_requests_total", n="1", outcome="ok")
    threads_before = threads_server.metric("fib_requests_total", n="1", outcome="ok")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{web_ui}/")
            page.get_by_role("row", name="LongUser").get_by_role("checkbox").uncheck()
            page.get_by_role("button", name="Custom parameters").click()
            target = page.locator("select[name=fibTarget]")
            assert target.locator("option").all_inner_texts() == list(VARIANTS)
            assert target.input_value() == "threads", "the default target"
            target.select_option("coro")
            page.get_by_role("button", name="Start").click()

            row = page.get_by_role("row").filter(has_text="fib(1)")
            expect(row).to_be_visible()
            counts: list[int] = []
            for _ in range(40):  # up to 20 s: the count must rise while we watch
                counts.append(int(row.get_by_role("cell").nth(2).inner_text()))
                if len(counts) > 2 and counts[-1] > counts[0] > 0:
                    break
                page.wait_for_timeout(500)
            assert counts[-1] > counts[0] > 0, f"request counts seen: {counts}"
            page.get_by_role("button", name="Stop").click()
        finally:
            browser.close()

    assert coro_server.metric("fib_requests_total", n="1", outcome="ok") > before + 100
    assert threads_server.metric("fib_requests_total", n="1", outcome="ok") == threads_before

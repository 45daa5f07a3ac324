# tests/loadtest/test_web_ui_browser.py
#
# The Locust web UI as a user drives it, in a real browser: Debian's headless
# Chromium under Playwright opens the page and finds what the README's
# convoy walk-through says: the header's Host is the default target, both
# user classes are ticked, the lab's fields are under "Custom parameters".
# A bad Host fails the start with a message naming it; Host `tcp://coro`
# with 1 user runs a ShortUser on the coro server (not the default threads
# one), and the header shows it. Without Chromium this test skips loudly,
# and fails in CI (`make test` installs Debian's chromium when it runs as
# root). Screenshots of each step land in the test's tmp_path.

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import Server, unavailable

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def start(page: Page, host: str) -> None:
    field = page.get_by_label("Host")
    field.fill(host)
    field.blur()  # Locust's URL hint under the field appears now, not mid-click
    page.get_by_role("button", name="Start").click()


def test_the_convoy_walk_through_in_the_browser(
    web_ui: str, threads_server: Server, coro_server: Server, tmp_path: Path
):
    chromium = CHROMIUM or unavailable("Debian's chromium", "apt-get install chromium")
    before = coro_server.metric("fib_requests_total", n="1", outcome="ok")
    threads_before = threads_server.metric("fib_requests_total", n="1", outcome="ok")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.set_default_timeout(20_000)
            page.goto(f"{web_ui}/")
            header = page.locator("header")
            expect(header.get_by_text("tcp://threads")).to_be_visible()
            for user_class in ("ShortUser", "LongUser"):
                row = page.get_by_role("row", name=user_class)
                expect(row.get_by_role("checkbox")).to_be_checked()
            expect(page.get_by_label("Number of users")).to_have_value("1")
            page.get_by_role("button", name="Custom parameters").click()
            expect(page.get_by_label("Fib Long N")).to_have_value("30")
            page.screenshot(path=tmp_path / "1-form.png", full_page=True)

            start(page, "http://127.0.0.1:1")
            expect(page.get_by_role("alert")).to_contain_text("Host 'http://127.0.0.1:1'")
            page.screenshot(path=tmp_path / "2-bad-host.png", full_page=True)

            start(page, "tcp://coro")
            expect(header.get_by_text("tcp://coro")).to_be_visible()
            row = page.get_by_role("row").filter(has_text="fib(1)")
            expect(row).to_be_visible()
            counts: list[int] = []
            for _ in range(40):  # up to 20 s: the count must rise while we watch
                counts.append(int(row.get_by_role("cell").nth(2).inner_text()))
                if len(counts) > 2 and counts[-1] > counts[0] > 0:
                    break
                page.wait_for_timeout(500)
            assert counts[-1] > counts[0] > 0, f"request counts seen: {counts}"
            # fib(1)'s times in the table (ms): Locust's own buckets made its
            # 95th percentile 0; the median column rounds to 2 decimals.
            headers = page.get_by_role("table").filter(has=row).get_by_role("columnheader")
            cells = row.get_by_role("cell").all_inner_texts()
            shown = dict(zip(headers.all_inner_texts(), cells, strict=True))
            assert 0.01 <= float(shown["Median (ms)"]) < 1.0, shown
            assert float(shown["95%ile (ms)"]) > 0.01, shown
            # One user of both classes is a ShortUser: no long request at all.
            expect(page.get_by_role("row").filter(has_text="fib(30)")).to_have_count(0)
            page.screenshot(path=tmp_path / "3-running.png", full_page=True)
            page.get_by_role("button", name="Stop").click()
        finally:
            browser.close()

    assert coro_server.metric("fib_requests_total", n="1", outcome="ok") > before + 100
    assert threads_server.metric("fib_requests_total", n="1", outcome="ok") == threads_before

"""Live Logs (replay, then live lines; pause, search, clear, download), the Log Library
and Log Volume, with hostile output: HTML in log lines stays text."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import create_worker, delete_worker, open_app, shot
from tests.helpers import wait_for

pytestmark = pytest.mark.timeout(120)

CHATTY = r"""
import sys, time
i = 0
while True:
    i += 1
    print(f'line {i} <img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> &amp;', flush=True)
    print(f'\x1b[31mERROR red {i}\x1b[0m done', flush=True)
    if i % 3 == 0:
        print(f'WARN slow {i}', file=sys.stderr, flush=True)
    time.sleep(0.25)
"""


@pytest.fixture
def chatty(gui):
    create_worker(gui, {"name": "chatty", "exec": "python3", "params": ["-u", "-c", CHATTY]})
    try:
        tail = "/api/v1/workers/chatty/logs?lines=50"
        wait_for(
            lambda: any(x["stream"] == "err" for x in gui.admin.get(tail).json()["lines"]),
            timeout=30,
            what="stderr output",
        )
        yield "chatty"
    finally:
        delete_worker(gui, "chatty")


def last_number(page):
    texts = page.locator(".logview .ll-text").all_text_contents()
    nums = [int(m.group(1)) for t in texts for m in [re.match(r"line (\d+)", t)] if m]
    return max(nums) if nums else 0


def test_live_logs_replay_then_live_and_xss_stays_text(gui, page, chatty):
    open_app(page, gui, "#/logs/chatty")
    expect(page.locator(".logview .ll").first).to_be_visible()
    first = last_number(page)
    assert first >= 2  # the replay
    wait_for(lambda: last_number(page) > first + 2, timeout=10, what="live lines")
    # Hostile markup is text: no <img>, no script ran, the characters are shown as typed.
    assert page.locator(".logview img, .logview script").count() == 0
    assert page.evaluate("window.__xss") is None
    expect(page.locator(".logview .ll-text", has_text="<img src=x").first).to_be_visible()
    expect(page.locator(".logview .ll-text", has_text="&amp;").first).to_be_visible()
    # ANSI colours become classes; levels and stderr are marked.
    expect(page.locator(".logview .a-fg1", has_text="ERROR red").first).to_be_attached()
    expect(page.locator(".logview .ll.lvl-error").first).to_be_attached()
    expect(page.locator(".logview .ll.s-err.lvl-warn").first).to_be_attached()
    shot(page, "live-logs-dark")

    # Pause: the view holds still while new lines queue up.
    page.get_by_role("button", name="Pause").click()
    held = page.locator(".logview .ll").count()
    expect(page.locator("button", has_text=re.compile(r"Resume \(\d+ new\)"))).to_be_visible(timeout=10000)
    assert page.locator(".logview .ll").count() == held
    page.get_by_role("button", name=re.compile("Resume")).click()
    wait_for(lambda: page.locator(".logview .ll").count() > held, what="lines after resume")

    # Regex search filters and highlights.
    page.get_by_role("button", name="Regular expression").click()
    page.get_by_label("Search the lines").fill(r"ERROR red \d*5\b")
    expect(page.locator(".log-count")).to_contain_text("match")
    for text in page.locator(".logview .ll-text").all_text_contents():
        assert re.search(r"ERROR red \d*5\b", text), text
    expect(page.locator(".logview mark").first).to_be_visible()
    page.get_by_label("Search the lines").fill("(")
    expect(page.locator(".search-error")).to_contain_text("Not a valid regular expression")
    page.get_by_label("Search the lines").fill("")

    # Only stderr.
    page.locator(".segmented label", has_text="stderr").click()
    wait_for(lambda: page.locator(".logview .ll").count() > 0, what="stderr lines")
    assert page.locator(".logview .ll:not(.s-err)").count() == 0
    page.locator(".segmented label", has_text="All").click()

    # Clear empties the view; new lines keep coming.
    page.get_by_role("button", name="Clear").click()
    wait_for(lambda: 0 < page.locator(".logview .ll").count() < 20, what="new lines after clear")

    # Save the lines shown (a file made in the page), then the server's files.
    with page.expect_download() as saved:
        page.get_by_role("button", name="Save view").click()
    assert saved.value.suggested_filename == "chatty-view.log"
    with open(saved.value.path(), encoding="utf-8") as f:
        assert "chatty#1 out | line" in f.read()
    href = page.get_by_role("link", name="Download").get_attribute("href")
    assert href == "/api/v1/workers/chatty/logs/download?strip=1"
    body = page.request.get(gui.url(href.lstrip("/"))).text()
    assert "ERROR red" in body and "\x1b[" not in body


def test_all_workers_live(gui, page, chatty):
    open_app(page, gui, "#/logs")
    expect(page.get_by_label("Worker", exact=True)).to_have_value("")
    expect(page.locator(".logview .ll-src", has_text="chatty").first).to_be_visible(timeout=10000)
    page.get_by_label("Worker", exact=True).select_option("chatty")
    expect(page).to_have_url(re.compile(r"#/logs/chatty$"))
    expect(page.locator(".logview .ll").first).to_be_visible()


def test_log_library_and_volume(gui, page, chatty):
    open_app(page, gui, "#/library")
    expect(page.locator(".lib-table")).to_contain_text("chatty")
    shot(page, "log-library-dark")
    page.locator(".lib-item", has_text="chatty").click()
    expect(page.locator(".logview .ll").first).to_be_visible()
    expect(page.locator(".logview .ll-ts").first).to_have_text(re.compile(r"\d\d:\d\d:\d\d\.\d{3}"))
    page.locator(".segmented label", has_text="Errors").click()
    for cls in page.locator(".logview .ll").evaluate_all("els => els.map(e => e.className)"):
        assert "lvl-error" in cls
    page.get_by_label("Search the logs").fill("WARN slow")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator(".log-status")).to_contain_text(re.compile(r"[1-9]\d* match"))
    page.locator(".segmented label", has_text="All levels").click()
    expect(page.locator(".logview .ll-text", has_text="WARN slow").first).to_be_visible()
    assert page.locator(".logview img").count() == 0

    page.goto(gui.url("#/volume"))
    expect(page.locator(".vol-totals")).to_contain_text("chatty")
    expect(page.locator(".view-volume canvas")).to_be_visible()
    shot(page, "log-volume-dark")

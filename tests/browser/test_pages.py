"""Theme switch, keyboard shortcuts and their help, the bell, Server Info, and a
screenshot of every page (dark, light, phone) saved under tests/browser/artifacts/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    PASSWORD,
    PHONE,
    create_worker,
    delete_worker,
    new_context,
    open_app,
    reset_settings,
    shot,
)

pytestmark = pytest.mark.timeout(150)

PAGES = [
    ("workers", "#/workers"),
    ("workers-cards", "#/workers"),
    ("worker", "#/workers/shop-api"),
    ("worker-logs", "#/workers/shop-api?tab=logs"),
    ("worker-config", "#/workers/shop-api?tab=config"),
    ("worker-history", "#/workers/flaky?tab=history"),
    ("new-worker", "#/new"),
    ("live-logs", "#/logs/shop-api"),
    ("log-library", "#/library"),
    ("log-volume", "#/volume"),
    ("server-info", "#/server"),
    ("settings-general", "#/settings/general"),
    ("settings-appearance", "#/settings/ui"),
    ("settings-security", "#/settings/security"),
    ("settings-alerts", "#/settings/alerts"),
]
TALKER = "import time,sys\nn=0\nwhile True:\n    n+=1\n    print(f'GET /api/items/{n} 200 {n%7}ms', flush=True)\n    time.sleep(0.5)\n"


@pytest.fixture(scope="module")
def fleet(gui):
    made = [
        {"name": "shop-api", "exec": "python3", "params": ["-u", "-c", TALKER], "namespace": "shop", "instances": 2},
        {"name": "shop-worker", "exec": "sleep", "params": ["300"], "namespace": "shop"},
        {"name": "mailer", "exec": "sleep", "params": ["300"], "namespace": "infra"},
        {"name": "reports", "exec": "sleep", "params": ["300"], "enabled": False},
        {"name": "flaky", "exec": "sh", "params": ["-c", "echo starting; echo 'ERROR: cannot connect' >&2; exit 3"]},
    ]
    for cfg in made:
        create_worker(gui, cfg)
    yield [c["name"] for c in made]
    for cfg in made:
        delete_worker(gui, cfg["name"])


def test_theme_switch_is_saved(gui, page):
    open_app(page, gui, "#/settings/ui")
    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", "dark")
    page.locator(".segmented label", has_text="Light").click()
    expect(html).to_have_attribute("data-theme", "light")
    expect(page.locator(".save-status.ok")).to_have_text("Saved")
    assert gui.admin.get("/api/v1/settings").json()["ui"]["theme"] == "light"
    shot(page, "settings-appearance-light")
    page.reload()
    expect(html).to_have_attribute("data-theme", "light")
    # The accent colour and compact mode apply at once too.
    page.get_by_role("radio", name="#22c55e").click()
    expect(html).to_have_attribute("style", re.compile("--accent: #22c55e"))
    page.get_by_role("switch", name="Compact").click(force=True)
    expect(html).to_have_class(re.compile("compact"))
    # "t" flips dark/light from anywhere.
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("t")
    expect(html).to_have_attribute("data-theme", "dark")
    reset_settings(gui)


def test_keyboard_shortcuts_and_help(gui, page, fleet):
    open_app(page, gui)
    page.keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_dialog).to_be_visible()
    # The overlay is the actions table: every action with a key is listed.
    expect(help_dialog.locator("dd", has_text="Restart")).to_be_visible()
    expect(help_dialog.locator("dd", has_text="Go to Server Info")).to_be_visible()
    shot(page, "help-overlay-dark")
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()
    page.keyboard.press("g")
    page.keyboard.press("i")
    expect(page.get_by_role("heading", name="Server Info")).to_be_visible()
    page.keyboard.press("g")
    page.keyboard.press("w")
    expect(page.locator("tr.wrow").first).to_be_visible()
    page.keyboard.press("/")
    expect(page.get_by_label("Search workers")).to_be_focused()
    page.keyboard.type("mail")
    expect(page.locator("tr.wrow")).to_have_count(1)
    page.keyboard.press("Enter")  # leaves the box and selects the first row
    expect(page.locator("tr.wrow.selected")).to_have_attribute("data-name", "mailer")
    page.keyboard.press("x")
    expect(page.locator('tr.wrow[data-name="mailer"] .pill')).to_have_text("stopped")
    page.keyboard.press("s")
    expect(page.locator('tr.wrow[data-name="mailer"] .pill')).to_have_text("running")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="mailer", exact=True)).to_be_visible()
    page.keyboard.press("n")
    expect(page.get_by_role("heading", name="New worker")).to_be_visible()


def test_bell_lists_crashes(gui, page, fleet):
    open_app(page, gui)
    expect(page.locator(".bell .badge")).to_be_visible(timeout=10000)
    page.get_by_role("button", name=re.compile("^Notifications")).click()
    panel = page.get_by_role("dialog", name="Notifications")
    expect(panel).to_be_visible()
    expect(panel.locator(".bell-item", has_text="flaky").first).to_be_visible()
    shot(page, "notifications-dark")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(page.locator(".bell .badge")).to_be_hidden()


def test_server_info_answers_even_without_internet(gui, page):
    # Unroutable targets: the card must say "unreachable"/"timeout" within the probe limit, not spin.
    gui.admin.patch("/api/v1/settings", {"general": {"latency_targets": ["192.0.2.1:443", "127.0.0.1:1"]}})
    open_app(page, gui, "#/server")
    expect(page.locator(".lat-value")).to_have_text(re.compile(r"\d+(\.\d+)? ms"))
    targets = page.locator(".lat-target")
    expect(targets).to_have_count(2, timeout=8000)
    expect(targets.nth(0)).to_contain_text(re.compile("unreachable|timeout"))
    expect(targets.nth(1)).to_contain_text("unreachable")
    expect(page.locator(".info-card", has_text="Load average")).to_be_visible()
    expect(page.locator(".net-table")).to_contain_text("lo")
    gui.admin.patch("/api/v1/settings", {"general": {"latency_targets": ["8.8.8.8:443", "1.1.1.1:443", "9.9.9.9:443"]}})


PHONE_PAGES = {
    "workers",
    "worker",
    "worker-history",
    "new-worker",
    "live-logs",
    "log-library",
    "log-volume",
    "server-info",
    "settings-general",
    "settings-appearance",
    "settings-security",
    "settings-alerts",
}
VARIANTS = [("dark", False), ("light", False), ("dark", True), ("light", True)]


@pytest.mark.parametrize("theme,phone", VARIANTS, ids=["dark", "light", "phone-dark", "phone-light"])
def test_screenshots_of_every_page(gui, browser, fleet, console, theme, phone):
    suffix = f"phone-{theme}" if phone else theme
    gui.admin.patch("/api/v1/settings", {"ui": {"theme": theme, "view_mode": "table"}})
    ctx = new_context(browser, viewport=PHONE if phone else None)
    assert ctx.request.post(gui.url("api/v1/auth/login"), data={"password": PASSWORD}).status == 200
    page = ctx.new_page()
    console.attach(page)
    open_app(page, gui)
    expect(page.locator('[data-name="shop-api"]').first).to_be_visible()
    expect(page.locator("html")).to_have_attribute("data-theme", theme)
    for name, route in PAGES:
        if phone and (name not in PHONE_PAGES or (theme == "light" and name not in ("workers", "worker", "live-logs"))):
            continue
        if name == "workers-cards":
            gui.admin.patch("/api/v1/settings", {"ui": {"view_mode": "card"}})
            page.goto(gui.url(route))
            page.reload()
            expect(page.locator(".wcard").first).to_be_visible()
        else:
            page.goto(gui.url(route))
        page.wait_for_selector(".view > *")
        page.wait_for_timeout(350)
        shot(page, f"{name}-{suffix}")
        if name == "workers-cards":
            gui.admin.patch("/api/v1/settings", {"ui": {"view_mode": "table"}})
    if phone:
        page.goto(gui.url("#/workers"))
        page.get_by_role("button", name="Menu").click()
        expect(page.locator(".sidebar")).to_be_in_viewport()
        shot(page, f"drawer-{suffix}")
    ctx.close()
    reset_settings(gui)
    assert not console.unexpected(), console.errors

"""Settings pushed live: a change made in one tab (or by an API client) reaches every other
open tab on the stream's `settings` event, without a reload."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import create_worker, delete_worker, open_app, reset_settings, shot

pytestmark = pytest.mark.timeout(150)


def test_settings_change_in_one_tab_shows_in_another(gui, page, context, console):
    create_worker(gui, {"name": "push-demo", "exec": "sleep", "params": ["300"]})
    a = page
    b = context.new_page()
    console.attach(b)
    try:
        open_app(a, gui, "#/settings/ui")
        open_app(b, gui, "#/workers")
        expect(b.locator('tr.wrow[data-name="push-demo"]')).to_be_visible()
        b_html = b.locator("html")
        expect(b_html).to_have_attribute("data-theme", "dark")
        # Nothing in tab B reloads: a marker on its window survives every change below.
        b.evaluate("window.__noReload = 1")

        a.locator(".segmented label", has_text="Light").click()
        expect(b_html).to_have_attribute("data-theme", "light")
        a.get_by_role("radio", name="#22c55e").click()
        expect(b_html).to_have_attribute("style", re.compile("--accent: #22c55e"))
        a.get_by_label("Font size").evaluate("el => { el.value = '16'; el.dispatchEvent(new Event('change')); }")
        expect(b_html).to_have_attribute("style", re.compile("--font-size: 16px"))
        a.locator(".segmented label", has_text="Cards").click()
        expect(b.locator('.wcard[data-name="push-demo"]')).to_be_visible()
        shot(b, "settings-pushed-tab-b")

        # Tab B on the Appearance page redraws it with the values chosen in tab A...
        b.goto(gui.url("#/settings/ui"))
        expect(b.locator(".seg-input[value=card]")).to_be_checked()
        a.locator(".segmented label", has_text="Table").click()
        expect(b.locator(".seg-input[value=table]")).to_be_checked()
        # ...and a change from an API client (no tab at all) arrives too, with refresh settings.
        assert (
            gui.admin.patch("/api/v1/settings", {"ui": {"theme": "dark"}, "general": {"auto_refresh": False}}).status
            == 200
        )
        expect(b_html).to_have_attribute("data-theme", "dark")
        expect(a.locator("html")).to_have_attribute("data-theme", "dark")
        expect(a.locator(".segmented .seg-input[value=dark]")).to_be_checked()
        b.goto(gui.url("#/settings/general"))
        expect(b.get_by_role("switch", name=re.compile("Auto refresh"))).not_to_be_checked()
        assert gui.admin.patch("/api/v1/settings", {"general": {"auto_refresh": True}}).status == 200
        expect(b.get_by_role("switch", name=re.compile("Auto refresh"))).to_be_checked()
        assert b.evaluate("window.__noReload") == 1
    finally:
        b.close()
        delete_worker(gui, "push-demo")
        reset_settings(gui)


def test_own_save_is_not_redrawn_by_its_echo(gui, page):
    """The tab that saved gets its own change back on the stream: nothing redraws (the
    "Saved" note stays).  A later change from elsewhere proves the echo has arrived."""
    open_app(page, gui, "#/settings/general")
    box = page.get_by_label("Tail lines")
    box.fill("321")
    box.press("Tab")
    expect(page.locator(".save-status.ok").first).to_have_text("Saved")
    page.evaluate("window.__card = document.querySelector('.settings-panel .card')")
    # Events arrive in order: once this one applied, the echo of the save was handled before it.
    assert gui.admin.patch("/api/v1/settings", {"ui": {"accent": "#ec4899"}}).status == 200
    expect(page.locator("html")).to_have_attribute("style", re.compile("--accent: #ec4899"))
    assert page.evaluate("window.__card.isConnected"), "the General page was redrawn by its own echo"
    assert gui.admin.get("/api/v1/settings").json()["general"]["tail_lines"] == 321
    reset_settings(gui)
    gui.admin.patch("/api/v1/settings", {"general": {"tail_lines": 200}})

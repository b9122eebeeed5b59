"""Settings → Log Alerts: add, edit, switch off, delete (checked through the API), the
pattern hint and the daemon's error next to the field, bad cooldowns, the test-a-line box,
and an alert firing from a worker's output showing up in the notifications bell."""

from __future__ import annotations

import re
from typing import Any, Dict, Iterator, List

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD, PHONE, create_worker, delete_worker, new_context, open_app, shot
from tests.helpers import wait_for

pytestmark = pytest.mark.timeout(150)


def alerts(gui: Any) -> List[Dict[str, Any]]:
    r = gui.admin.get("/api/v1/logs/alerts")
    assert r.status == 200, r
    return r.json()["alerts"]  # type: ignore[no-any-return]


def set_alerts(gui: Any, items: List[Dict[str, Any]]) -> None:
    r = gui.admin.put("/api/v1/logs/alerts", {"alerts": items})
    assert r.status == 200, r


@pytest.fixture
def no_alerts(gui: Any) -> Iterator[None]:
    set_alerts(gui, [])
    yield
    set_alerts(gui, [])


def alert_dialog(page: Page) -> Any:
    return page.locator("dialog.modal-alert")


def test_add_edit_disable_delete_an_alert(gui, page, no_alerts):
    open_app(page, gui, "#/settings/alerts")
    expect(page.locator(".settings-link.active")).to_have_text("Log Alerts")
    expect(page.locator(".alert-empty")).to_be_visible()

    # Add: every field of the object, cooldown in minutes, channel "Both" (with the Telegram note).
    page.get_by_role("button", name="New alert").click()
    dlg = alert_dialog(page)
    expect(dlg).to_be_visible()
    dlg.get_by_label("Name").fill("payments")
    dlg.get_by_label("Pattern").fill(r"PAYMENT (FAILED|DECLINED)")
    expect(dlg.locator(".pattern-hint")).to_have_class(re.compile(r"\bok\b"))
    dlg.get_by_label("Cooldown", exact=True).fill("2")
    dlg.get_by_label("Cooldown unit").select_option("min")
    dlg.get_by_role("switch", name="Ignore case").check(force=True)
    dlg.get_by_label("Channel").select_option("both")
    expect(dlg.locator(".form-info")).to_contain_text("Telegram delivery needs the Telegram settings")
    dlg.get_by_label("Try it on a line").fill("12:00 payment failed: card 4242")
    expect(dlg.locator(".sample-result.hit mark")).to_have_text("payment failed")
    shot(page, "settings-alerts-edit-dark")
    dlg.get_by_role("button", name="Add alert").click()
    expect(dlg).to_be_hidden()
    expect(page.locator('.alert-row[data-name="payments"]')).to_be_visible()
    assert alerts(gui) == [
        {
            "name": "payments",
            "pattern": "PAYMENT (FAILED|DECLINED)",
            "cooldown_ms": 120_000,
            "enabled": True,
            "ignore_case": True,
            "channel": "both",
        }
    ]

    # Edit: the form opens with the saved values; change pattern and cooldown.
    row = page.locator('.alert-row[data-name="payments"]')
    expect(row).to_contain_text("2 minutes")
    row.get_by_role("button", name="Edit alert payments").click()
    expect(dlg.get_by_label("Cooldown", exact=True)).to_have_value("2")
    expect(dlg.get_by_label("Cooldown unit")).to_have_value("min")
    expect(dlg.get_by_label("Channel")).to_have_value("both")
    dlg.get_by_label("Pattern").fill(r"PAYMENT (FAILED|DECLINED|TIMEOUT)")
    dlg.get_by_label("Cooldown", exact=True).fill("45")
    dlg.get_by_label("Cooldown unit").select_option("s")
    dlg.get_by_label("Channel").select_option("app")
    dlg.get_by_role("button", name="Save alert").click()
    expect(dlg).to_be_hidden()
    wait_for(lambda: alerts(gui)[0]["cooldown_ms"] == 45_000, what="the edited alert on the daemon")
    saved = alerts(gui)[0]
    assert saved["pattern"] == "PAYMENT (FAILED|DECLINED|TIMEOUT)" and saved["channel"] == "app", saved
    expect(row).to_contain_text("45 seconds")

    # The test box: each alert says whether the sample line matches.
    page.get_by_label("Sample log line").fill("payment timeout for order 7")
    expect(row.locator(".alert-test")).to_have_text("matches")
    page.get_by_label("Sample log line").fill("all good")
    expect(row.locator(".alert-test")).to_have_text("no match")

    # Switch it off without deleting it.
    row.get_by_role("switch", name="Alert payments enabled").uncheck(force=True)
    wait_for(lambda: alerts(gui)[0]["enabled"] is False, what="the alert switched off on the daemon")
    expect(row).to_have_class(re.compile(r"\boff\b"))
    assert len(alerts(gui)) == 1
    shot(page, "settings-alerts-dark", full_page=True)

    # Delete asks first; Cancel keeps it.
    row.get_by_role("button", name="Delete alert payments").click()
    confirm = page.get_by_role("dialog", name="Delete alert payments?")
    confirm.get_by_role("button", name="Cancel").click()
    assert len(alerts(gui)) == 1
    row.get_by_role("button", name="Delete alert payments").click()
    confirm.get_by_role("button", name="Delete alert").click()
    expect(page.locator(".alert-empty")).to_be_visible()
    assert alerts(gui) == []


def test_daemon_error_shows_next_to_the_pattern(gui, page, no_alerts):
    set_alerts(gui, [{"name": "oom", "pattern": "OOM"}])
    open_app(page, gui, "#/settings/alerts")
    page.get_by_role("button", name="New alert").click()
    dlg = alert_dialog(page)
    pattern = dlg.get_by_label("Pattern")

    # Valid for the browser, not for Python (variable-width look-behind): the daemon decides.
    pattern.fill("(?<=a+)b")
    expect(dlg.locator(".pattern-hint")).to_have_class(re.compile(r"\bok\b"))
    dlg.get_by_role("button", name="Add alert").click()
    err = dlg.locator(".field.invalid .field-error")
    expect(err).to_contain_text("is not a valid regular expression")
    expect(err).to_contain_text("look-behind")
    expect(err).to_contain_text("(?<=a+)b")
    expect(dlg).to_be_visible()
    shot(page, "settings-alerts-error-dark")

    # Invalid for both: the browser's hint warns while typing; the daemon's message on save.
    pattern.fill("(unclosed")
    expect(err).to_be_hidden()  # typing clears the old error
    expect(dlg.locator(".pattern-hint")).to_have_class(re.compile(r"\bwarn\b"))
    expect(dlg.locator(".pattern-hint")).to_contain_text("the daemon checks it when you save")
    dlg.get_by_role("button", name="Add alert").click()
    expect(err).to_contain_text("missing )")

    # Client-side checks name the value and what to do.
    pattern.fill("")
    dlg.get_by_role("button", name="Add alert").click()
    expect(err).to_contain_text("The pattern is empty")
    pattern.fill("ERROR")
    dlg.get_by_label("Cooldown", exact=True).fill("soon")
    dlg.get_by_role("button", name="Add alert").click()
    expect(dlg.locator(".field.invalid .field-error")).to_contain_text("“soon” is not a number of minutes")
    dlg.get_by_label("Cooldown", exact=True).fill("-5")
    dlg.get_by_role("button", name="Add alert").click()
    expect(dlg.locator(".field.invalid .field-error")).to_contain_text("“-5”")
    dlg.get_by_label("Cooldown", exact=True).fill("10")
    dlg.get_by_label("Name").fill("oom")
    dlg.get_by_role("button", name="Add alert").click()
    expect(dlg.locator(".field.invalid .field-error")).to_contain_text("An alert named “oom” exists already")

    # Nothing reached the daemon.
    dlg.get_by_role("button", name="Cancel").click()
    assert [a["name"] for a in alerts(gui)] == ["oom"]


def test_alert_from_worker_output_reaches_the_bell(gui, page, no_alerts):
    set_alerts(gui, [{"name": "boom-alert", "pattern": r"KABOOM \d+", "cooldown_ms": 60_000}])
    open_app(page, gui, "#/settings/alerts")
    expect(page.locator(".alert-recent")).to_contain_text("No alert has fired")
    create_worker(gui, {"name": "alerter", "exec": "sh", "params": ["-c", "echo 'KABOOM 42 <b>x</b>'; exec sleep 300"]})
    try:
        # The Recent alerts card updates live from the stream; the text stays text.
        recent = page.locator(".alert-recent-item", has_text="boom-alert")
        expect(recent).to_be_visible(timeout=15000)
        expect(recent).to_contain_text("KABOOM 42 <b>x</b>")
        expect(recent.locator("b")).to_have_count(0)
        expect(page.locator(".toast", has_text="boom-alert").first).to_be_visible()
        page.get_by_role("button", name="Open notifications").click()
        panel = page.get_by_role("dialog", name="Notifications")
        expect(panel).to_be_visible()
        item = panel.locator(".bell-item", has_text="boom-alert").first
        expect(item).to_contain_text("alert")
        expect(item.get_by_role("link", name="alerter")).to_be_visible()
        shot(page, "alert-in-bell-dark")
    finally:
        delete_worker(gui, "alerter")


def test_alerts_page_on_a_phone(gui, browser, console, no_alerts):
    set_alerts(
        gui,
        [
            {"name": "errors", "pattern": "ERROR|CRITICAL|Traceback|OOM", "cooldown_ms": 300_000, "ignore_case": True},
            {"name": "a-very-long-alert-name-that-must-not-overflow", "pattern": "x" * 120, "enabled": False},
        ],
    )
    for theme in ("dark", "light"):
        gui.admin.patch("/api/v1/settings", {"ui": {"theme": theme}})
        ctx = new_context(browser, viewport=PHONE)
        try:
            assert ctx.request.post(gui.url("api/v1/auth/login"), data={"password": PASSWORD}).status == 200
            page = ctx.new_page()
            console.attach(page)
            open_app(page, gui, "#/settings/alerts")
            expect(page.locator(".alert-row")).to_have_count(2)
            # Nothing wider than the screen.
            overflow = page.evaluate("document.querySelector('.main-scroll').scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the page is {overflow}px wider than the phone"
            shot(page, f"settings-alerts-phone-{theme}", full_page=True)
            page.locator(".alert-row").first.get_by_role("button", name="Edit alert errors").click()
            expect(alert_dialog(page)).to_be_visible()
            shot(page, f"settings-alerts-edit-phone-{theme}")
        finally:
            ctx.close()
    gui.admin.patch("/api/v1/settings", {"ui": {"theme": "dark"}})
    assert not console.unexpected(), console.errors

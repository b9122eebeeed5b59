"""First run with the setup token, login, the login rate limit, lock + PIN unlock,
the inactivity lock, and the "Session ended" veil when the daemon goes away."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, PHONE, new_context, open_app, shot
from tests.helpers import wait_for

pytestmark = pytest.mark.timeout(120)


def test_first_run_setup_with_the_token(fresh_gui, browser, console):
    ctx = new_context(browser)
    page = ctx.new_page()
    console.attach(page)
    page.goto(fresh_gui.url())
    expect(page.get_by_role("heading", name="Welcome to apm")).to_be_visible()
    token_box = page.get_by_label("Setup token")
    expect(token_box).to_be_focused()
    shot(page, "setup-dark")

    # A short password is refused before anything is sent; the meter says so.
    token_box.fill(fresh_gui.setup_token)
    page.get_by_label("Password", exact=True).fill("short")
    expect(page.locator(".strength .sm-label")).to_have_text("Strength: Too short")
    page.get_by_label("Confirm password").fill("short")
    page.get_by_role("button", name="Set password and continue").click()
    expect(page.get_by_role("alert")).to_contain_text("at least 8 characters")

    # A wrong token is refused by the daemon.
    token_box.fill("AAAAA-BBBBB-CCCCC-DDDDD")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    expect(page.locator(".strength")).to_have_attribute("data-score", "4")
    page.get_by_label("Confirm password").fill(PASSWORD)
    page.get_by_role("button", name="Set password and continue").click()
    expect(page.get_by_role("alert")).to_contain_text("setup token is wrong")

    token_box.fill(fresh_gui.setup_token.lower())
    page.get_by_role("button", name="Set password and continue").click()
    expect(page.locator(".shell")).to_be_visible()
    expect(page.locator(".conn-dot.conn-open")).to_be_attached()
    expect(page.get_by_role("heading", name="No workers yet")).to_be_visible()
    status = fresh_gui.api().get("/api/v1/auth/status").json()
    assert status["password_set"] and not status["setup_required"]
    # The token is single use: a fresh browser now gets the login page.
    other = new_context(browser, viewport=PHONE)
    p2 = other.new_page()
    p2.goto(fresh_gui.url())
    expect(p2.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(p2, "login-phone-dark")
    other.close()
    ctx.close()
    assert not console.unexpected(), console.errors


def test_login_and_logout(gui, context, console):
    page = context.new_page()
    console.attach(page)
    page.goto(gui.url())
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "login-dark")
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator(".shell")).to_be_visible()
    expect(page.locator(".conn-dot.conn-open")).to_be_attached()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator(".form-info")).to_have_text("You are logged out.")
    # The cookie is gone for real: a reload still asks for the password.
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert not console.unexpected(), console.errors


@pytest.mark.gui_env({"APM_GUI_LOGIN_LIMITS": "1,3,10,900"})
def test_wrong_passwords_are_rate_limited(fresh_gui, browser, console):
    fresh_gui.login_api()  # first-run setup through the API
    ctx = new_context(browser)
    page = ctx.new_page()
    console.attach(page)
    console.allowed += ["403 (Forbidden)", "429 (Too Many Requests)"]
    page.goto(fresh_gui.url())
    box = page.get_by_label("Password")
    submit = page.get_by_role("button", name="Sign in")
    box.fill("not the password")
    submit.click()
    expect(page.locator(".form-error")).to_have_text("Wrong password.")
    box.fill("still not it")
    submit.click()
    # The second failure costs a 3 s wait: the button is disabled with a countdown...
    expect(page.locator(".form-wait")).to_contain_text("Try again in")
    expect(submit).to_be_disabled()
    # ...and even the right password is refused (429) while the wait runs.
    status = fresh_gui.api().post("/api/v1/auth/login", {"password": PASSWORD}).status
    assert status == 429
    shot(page, "login-rate-limited")
    # After the wait the right password works.
    expect(submit).to_be_enabled(timeout=8000)
    box.fill(PASSWORD)
    submit.click()
    expect(page.locator(".shell")).to_be_visible()
    ctx.close()
    assert not console.unexpected(), console.errors


def test_lock_with_pin_and_unlock(gui, page, console):
    console.allowed += ["403 (Forbidden)"]
    open_app(page, gui, "#/settings/security")
    pin_card = page.locator(".settings-card", has=page.get_by_role("heading", name="PIN quick unlock"))
    pin_card.get_by_label("PIN (4 or 6 digits)").fill("4821")
    pin_card.get_by_label("Current password").fill(PASSWORD)
    pin_card.get_by_role("button", name="Set PIN").click()
    expect(page.locator(".settings-card .pill", has_text="PIN set")).to_be_visible()
    shot(page, "settings-security-dark")

    page.get_by_role("button", name="Lock screen").click()
    lock = page.get_by_role("dialog", name="Dashboard locked")
    expect(lock).to_be_visible()
    expect(page.locator(".shell")).to_have_attribute("inert", "")
    pin = lock.get_by_label("PIN")
    expect(pin).to_be_focused()
    shot(page, "lock-screen-dark")
    # While locked the API answers 423 to anything but unlock.
    assert page.evaluate("fetch('/api/v1/workers').then(r => r.status)") == 423
    pin.fill("0000")
    pin.press("Enter")
    expect(lock.locator(".form-error")).to_have_text("Wrong PIN.")
    pin.fill("4821")
    pin.press("Enter")
    expect(lock).to_be_hidden()
    expect(page.locator(".shell")).not_to_have_attribute("inert", "")
    expect(page.locator(".conn-dot.conn-open")).to_be_attached()
    assert gui.admin.delete("/api/v1/auth/pin").status == 200


def test_inactivity_locks_the_session(gui, page):
    open_app(page, gui)
    assert gui.admin.patch("/api/v1/settings", {"security": {"lock_timeout": 2}}).status == 200
    page.reload()  # the page reads the timeout at start (the session has been idle longer already)
    lock = page.get_by_role("dialog", name="Dashboard locked")
    expect(lock).to_be_visible(timeout=10000)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Unlock").click()
    expect(lock).to_be_hidden()
    unlocked = time.monotonic()
    # Input keeps it open...
    for _ in range(6):
        page.mouse.move(100 + _ * 10, 200)
        page.wait_for_timeout(500)
    expect(lock).to_be_hidden()
    # ...and 2 s without any locks it again.
    expect(lock).to_be_visible(timeout=10000)
    assert time.monotonic() - unlocked >= 3.5
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Unlock").click()
    expect(lock).to_be_hidden()
    assert gui.admin.patch("/api/v1/settings", {"security": {"lock_timeout": 0}}).status == 200


def test_session_ended_veil_when_the_daemon_stops(fresh_gui, browser, console):
    fresh_gui.login_api()
    ctx = new_context(browser)
    r = ctx.request.post(fresh_gui.url("api/v1/auth/login"), data={"password": PASSWORD})
    assert r.status == 200
    page = ctx.new_page()
    console.attach(page)
    console.allowed += ["ERR_CONNECTION_REFUSED", "Failed to load resource"]
    open_app(page, fresh_gui)
    fresh_gui.apm("exit", "daemon")
    veil = page.get_by_role("alertdialog", name="Session ended")
    expect(veil).to_be_visible(timeout=10000)
    expect(page.locator(".shell")).to_have_class("shell dimmed")
    shot(page, "session-ended-dark")
    # The daemon comes back: the page reconnects by itself (the session survived on disk).
    fresh_gui.restart_daemon()
    expect(veil).to_be_hidden(timeout=20000)
    wait_for(lambda: page.evaluate("!!document.querySelector('.conn-dot.conn-open')"), timeout=10, what="reconnect")
    ctx.close()
    assert not console.unexpected(), console.errors

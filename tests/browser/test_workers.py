"""Workers: the form built from the option table (create, edit), row actions (stop,
start, restart, delete with confirm), the worker page, XSS in config values."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import create_worker, delete_worker, open_app, shot
from tests.helpers import wait_for

pytestmark = pytest.mark.timeout(120)

XSS = '<img src=x onerror="window.__xss=1">'


def row(page, name):
    return page.locator(f'tr.wrow[data-name="{name}"]')


def test_create_a_worker_from_the_form_and_see_it_run(gui, page):
    open_app(page, gui)
    page.get_by_role("button", name="New worker").first.click()
    expect(page.get_by_role("heading", name="New worker")).to_be_visible()
    schema = gui.admin.get("/api/v1/schema/worker").json()["options"]
    # Every option of the table has a field, grouped by section.
    expect(page.locator(".field[data-option]")).to_have_count(len(schema))  # fields render after the schema fetch
    sections = {o["section"] for o in schema}
    expect(page.locator("details.form-section")).to_have_count(len(sections))
    page.get_by_label("Name", exact=True).fill("formmade")
    page.get_by_label("Exec").fill("sleep")
    page.get_by_label("Params").fill("300")
    page.get_by_label("Instances").fill("2")
    page.get_by_label("Env", exact=True).fill(f"GREETING=hello\nPAYLOAD={XSS}")
    shot(page, "worker-new-dark")
    page.get_by_role("button", name="Create and start").click()
    expect(page.get_by_role("heading", name="formmade", exact=True)).to_be_visible()
    expect(page.locator(".summary .pill")).to_have_text("running", timeout=15000)
    expect(page.locator(".itable tbody tr")).to_have_count(2)
    info = gui.admin.get("/api/v1/workers/formmade").json()
    assert info["origin"]["kind"] == "gui"
    assert info["options"]["env"] == ["GREETING=hello", f"PAYLOAD={XSS}"]
    assert info["instances_running"] == 2
    # The list shows it running too.
    page.get_by_role("link", name="Workers").first.click()
    expect(row(page, "formmade").locator(".pill")).to_have_text("running")
    # The config tab renders the payload as text.
    page.goto(gui.url("#/workers/formmade?tab=config"))
    expect(page.locator(".cfg-row", has_text="PAYLOAD=")).to_contain_text(XSS)
    page.get_by_role("button", name="Show the environment of instance #1").click()
    expect(page.locator(".env-list")).to_contain_text(XSS)
    assert page.locator(".view img").count() == 0
    assert page.evaluate("window.__xss") is None
    delete_worker(gui, "formmade")


def test_form_errors_point_at_the_option(gui, page):
    open_app(page, gui, "#/new")
    page.get_by_label("Name", exact=True).fill(XSS)
    page.get_by_label("Exec").fill("sleep")
    page.get_by_label("Instances").fill("1.5")
    page.get_by_role("button", name="Create and start").click()
    expect(page.locator('.field[data-option="instances"] .field-error')).to_have_text("Must be a whole number.")
    page.get_by_label("Instances").fill("")
    page.get_by_role("button", name="Create and start").click()
    expect(page.locator('.field[data-option="name"] .field-error')).to_contain_text("worker name")
    expect(page.get_by_label("Name", exact=True)).to_be_focused()
    assert page.locator(".view img").count() == 0 and page.evaluate("window.__xss") is None


def test_stop_start_restart_and_delete(gui, page):
    create_worker(gui, {"name": "acts", "exec": "sleep", "params": ["300"]})
    open_app(page, gui)
    r = row(page, "acts")
    expect(r.locator(".pill")).to_have_text("running")
    pid = gui.admin.get("/api/v1/workers/acts").json()["instances"][0]["pid"]

    r.locator('[data-action="worker.stop"]').click()
    expect(r.locator(".pill")).to_have_text("stopped")
    expect(r.locator('[data-action="worker.start"]')).to_be_visible()
    r.locator('[data-action="worker.start"]').click()
    expect(r.locator(".pill")).to_have_text("running")

    new_pid = gui.admin.get("/api/v1/workers/acts").json()["instances"][0]["pid"]
    assert new_pid != pid
    r.locator('[data-action="worker.restart"]').click()
    expect(page.locator(".toast", has_text="acts restarted")).to_be_visible()
    wait_for(
        lambda: gui.admin.get("/api/v1/workers/acts").json()["instances"][0]["pid"] not in (None, new_pid),
        what="a new pid",
    )

    # Delete from the row's menu: a confirmation first; Cancel keeps it.
    r.get_by_role("button", name="More actions for acts").click()
    page.get_by_role("menuitem", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete acts?")
    expect(dialog).to_be_visible()
    shot(page, "confirm-delete-dark")
    dialog.get_by_role("button", name="Cancel").click()
    expect(r).to_be_visible()
    r.click()
    page.keyboard.press("Delete")  # the same action from the keyboard
    page.get_by_role("dialog", name="Delete acts?").get_by_role("button", name="Delete").click()
    expect(r).to_have_count(0)
    assert gui.admin.get("/api/v1/workers/acts").status == 404


def test_edit_and_save(gui, page):
    create_worker(gui, {"name": "editme", "exec": "sleep", "params": ["300"], "namespace": "before"})
    open_app(page, gui, "#/workers/editme")
    page.get_by_role("button", name="Edit").first.click()
    expect(page.get_by_role("heading", name="Edit editme")).to_be_visible()
    ns = page.get_by_label("Namespace", exact=True)
    expect(ns).to_have_value("before")
    ns.fill("after")
    page.get_by_label("Env", exact=True).fill("MODE=edited")
    page.locator("summary", has_text="Shutdown").click()  # a closed section opens
    page.get_by_label("Kill timeout").fill("3s")
    shot(page, "worker-edit-dark")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name="editme", exact=True)).to_be_visible()
    expect(page.locator(".page-sub")).to_contain_text("after")
    opts = gui.admin.get("/api/v1/workers/editme").json()["options"]
    assert opts["namespace"] == "after" and opts["env"] == ["MODE=edited"] and opts["kill_timeout"] == 3000
    # Only what changed was sent: the command is untouched.
    assert opts["exec"] == "sleep" and opts["params"] == ["300"]
    # The sidebar lists the new namespace; clicking it filters the list.
    page.locator(".ns-link", has_text="after").click()
    expect(page.locator("tr.wrow")).to_have_count(1)
    expect(row(page, "editme")).to_be_visible()
    # Clearing a field puts the default back (sends null).
    page.goto(gui.url("#/workers/editme/edit"))
    expect(page.locator("details", has_text="Shutdown").locator(".chip")).to_have_text("1 set")
    page.locator("summary", has_text="Shutdown").click()
    page.get_by_label("Kill timeout").fill("")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name="editme", exact=True)).to_be_visible()
    wait_for(
        lambda: gui.admin.get("/api/v1/workers/editme").json()["options"]["kill_timeout"] == 2000, what="default back"
    )
    delete_worker(gui, "editme")


def test_worker_page_enabled_switch_and_history(gui, page):
    create_worker(gui, {"name": "detail", "exec": "sleep", "params": ["300"]})
    open_app(page, gui, "#/workers/detail")
    expect(page.locator(".summary .pill")).to_have_text("running")
    expect(page.locator(".chart canvas")).to_have_count(2)
    switch = page.get_by_role("switch", name="Enabled")
    expect(switch).to_be_checked()
    switch.click(force=True)
    expect(page.locator(".summary .pill")).to_have_text("disabled")
    expect(page.locator(".page-sub")).to_contain_text("disabled")
    assert gui.admin.get("/api/v1/workers/detail").json()["enabled"] is False
    page.get_by_role("switch", name="Enabled").click(force=True)
    expect(page.locator(".summary .pill")).to_have_text("running", timeout=15000)
    # The restart history has the disable (a stop) and the start after it, newest first.
    page.get_by_role("tab", name="History").click()
    expect(page.locator('.hist-row[data-kind="stop"]').first).to_be_visible()
    kinds = page.locator(".hist-row").evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert kinds[:2] == ["start", "stop"], kinds
    expect(page.locator('.hist-row[data-kind="stop"]').first).to_contain_text("disabled")
    delete_worker(gui, "detail")

"""Worker page → History: the restart history (GET /workers/{name}/history?limit=N) as a
table, refreshed when the worker changes state; an older daemon without the endpoint;
and a real crash + restart showing up."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from typing import Any, Dict, List

import pytest
from playwright.sync_api import Route, expect

from tests.browser.conftest import PASSWORD, PHONE, create_worker, delete_worker, new_context, open_app, shot
from tests.helpers import wait_for

pytestmark = pytest.mark.timeout(150)


def is_restart_history(url: str) -> bool:
    return "/history" in url and "limit=" in url


def fake_events(now: float, stopped: bool = False) -> List[Dict[str, Any]]:
    events: List[Dict[str, Any]] = [
        {
            "time": now - 30,
            "instance": 1,
            "kind": "restart",
            "pid": 4242,
            "exit_code": None,
            "signal": None,
            "reason": "restart_err after exit code 3",
            "uptime": None,
        },
        {
            "time": now - 31,
            "instance": 1,
            "kind": "crash",
            "pid": 4100,
            "exit_code": 3,
            "signal": None,
            "reason": "exited with code 3 <b>bold?</b>",
            "uptime": 12.5,
        },
        {
            "time": now - 600,
            "instance": 2,
            "kind": "exit",
            "pid": 4000,
            "exit_code": None,
            "signal": "SIGKILL",
            "reason": "killed by SIGKILL",
            "uptime": 7300.0,
        },
        {
            "time": now - 3700,
            "instance": 1,
            "kind": "start",
            "pid": 4100,
            "exit_code": None,
            "signal": None,
            "reason": "start",
            "uptime": None,
        },
    ]
    if stopped:
        events.insert(
            0,
            {
                "time": now - 1,
                "instance": 1,
                "kind": "stop",
                "pid": 4242,
                "exit_code": 0,
                "signal": None,
                "reason": "stopped by the user",
                "uptime": 29.0,
            },
        )
    return events


def test_history_table_refreshes_on_state_changes(gui, page):
    create_worker(gui, {"name": "hist-mock", "exec": "sleep", "params": ["300"]})
    calls: List[str] = []
    state = {"stopped": False}

    def answer(route: Route) -> None:
        calls.append(route.request.url)
        body = {"worker": "hist-mock", "events": fake_events(time.time(), state["stopped"])}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    try:
        page.route(is_restart_history, answer)
        open_app(page, gui, "#/workers/hist-mock?tab=history")
        rows = page.locator(".hist-row")
        expect(rows).to_have_count(4)
        assert "limit=" in calls[0]
        crash = page.locator('.hist-row[data-kind="crash"]')
        expect(crash.locator(".pill")).to_have_class(re.compile("tone-err"))
        expect(crash).to_contain_text("#1")
        expect(crash).to_contain_text("code 3")
        expect(crash).to_contain_text("12s")
        expect(crash.locator(".c-reason")).to_have_text("exited with code 3 <b>bold?</b>")  # text, not markup
        expect(crash.locator("b")).to_have_count(0)
        expect(crash.locator("time")).to_have_text(re.compile(r"^\d+ s ago$"))
        expect(crash.locator("time")).to_have_attribute("title", re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
        expect(page.locator('.hist-row[data-kind="restart"] .pill')).to_have_class(re.compile("tone-warn"))
        expect(page.locator('.hist-row[data-kind="exit"]')).to_contain_text("SIGKILL")
        expect(page.locator('.hist-row[data-kind="exit"]')).to_contain_text("2h 1m")
        expect(page.locator(".hist-summary")).to_contain_text("1 crash")
        shot(page, "worker-history-dark")

        # The worker changes state on the stream -> the table is fetched again.
        before = len(calls)
        state["stopped"] = True
        assert gui.admin.post("/api/v1/workers/hist-mock/stop").status == 200
        expect(page.locator('.hist-row[data-kind="stop"]')).to_be_visible()
        expect(rows).to_have_count(5)
        assert len(calls) > before

        # Hidden on another tab it only goes stale; showing the tab again fetches.
        page.get_by_role("tab", name="Overview").click()
        n = len(calls)
        assert gui.admin.post("/api/v1/workers/hist-mock/start").status == 200
        expect(page.locator(".summary .pill")).to_have_text("running")
        page.wait_for_timeout(600)
        assert len(calls) == n, "the hidden history tab fetched"
        page.get_by_role("tab", name="History").click()
        wait_for(lambda: len(calls) > n, what="a fetch when the History tab shows again")
    finally:
        delete_worker(gui, "hist-mock")


def test_history_on_a_phone(gui, browser, console):
    create_worker(gui, {"name": "hist-phone", "exec": "sleep", "params": ["300"]})
    try:
        for theme in ("dark", "light"):
            gui.admin.patch("/api/v1/settings", {"ui": {"theme": theme}})
            ctx = new_context(browser, viewport=PHONE)
            try:
                assert ctx.request.post(gui.url("api/v1/auth/login"), data={"password": PASSWORD}).status == 200
                page = ctx.new_page()
                console.attach(page)
                page.route(
                    is_restart_history,
                    lambda route: route.fulfill(
                        status=200,
                        content_type="application/json",
                        body=json.dumps({"worker": "hist-phone", "events": fake_events(time.time())}),
                    ),
                )
                open_app(page, gui, "#/workers/hist-phone?tab=history")
                expect(page.locator(".hist-row")).to_have_count(4)
                overflow = page.evaluate("document.querySelector('.main-scroll').scrollWidth - window.innerWidth")
                assert overflow <= 0, f"the page is {overflow}px wider than the phone"
                shot(page, f"worker-history-phone-{theme}")
            finally:
                ctx.close()
    finally:
        gui.admin.patch("/api/v1/settings", {"ui": {"theme": "dark"}})
        delete_worker(gui, "hist-phone")
    assert not console.unexpected(), console.errors


@pytest.mark.parametrize(
    "status,body",
    [
        (404, {"error": {"kind": "not_found", "message": "no route GET /api/v1/workers/hist-old/history"}}),
        (200, {"interval": 5, "t": [], "cpu": [], "memory": []}),  # the CPU history, ignoring ?limit
    ],
    ids=["404", "cpu-history"],
)
def test_history_without_the_endpoint(gui, page, console, status, body):
    create_worker(gui, {"name": "hist-old", "exec": "sleep", "params": ["300"]})
    try:
        page.route(
            is_restart_history,
            lambda route: route.fulfill(status=status, content_type="application/json", body=json.dumps(body)),
        )
        open_app(page, gui, "#/workers/hist-old?tab=history")
        expect(page.locator(".hist-empty")).to_contain_text("does not keep a restart history yet")
        expect(page.locator(".form-error")).to_have_count(0)
    finally:
        delete_worker(gui, "hist-old")


def test_history_shows_bad_answers_as_errors(gui, page, console):
    create_worker(gui, {"name": "hist-bad", "exec": "sleep", "params": ["300"]})
    console.allowed.append("the server responded with a status of 5")
    try:
        page.route(
            is_restart_history,
            lambda route: route.fulfill(
                status=500,
                content_type="application/json",
                body=json.dumps({"error": {"message": "history store is broken", "hint": "check the daemon log"}}),
            ),
        )
        open_app(page, gui, "#/workers/hist-bad?tab=history")
        expect(page.locator(".form-error")).to_have_text(
            "Cannot load the restart history: history store is broken — check the daemon log"
        )
        # Malformed events (not objects, bad times, odd kinds) still draw a table.
        page.unroute(is_restart_history)
        odd = [None, 7, {"kind": "<i>odd</i>", "time": "yesterday"}, {"kind": "crash", "time": time.time() - 5}]
        page.route(
            is_restart_history,
            lambda route: route.fulfill(
                status=200, content_type="application/json", body=json.dumps({"worker": "hist-bad", "events": odd})
            ),
        )
        page.get_by_role("button", name="Refresh").click()
        expect(page.locator(".hist-row")).to_have_count(2)
        expect(page.locator('.hist-row[data-kind="<i>odd</i>"] .pill')).to_have_text("<i>odd</i>")
        expect(page.locator('.hist-row[data-kind="crash"]')).to_be_visible()
    finally:
        delete_worker(gui, "hist-bad")


def test_crash_and_restart_appear_in_the_history(gui, page):
    """End to end against the daemon's own restart history."""
    # Crashes once (exit 3), then runs: exactly one crash, one backoff, two starts.
    flag = os.path.join(tempfile.mkdtemp(prefix="apm-crasher-"), "crashed")
    script = f"test -e {flag} && exec sleep 300; touch {flag}; sleep 0.3; exit 3"
    create_worker(
        gui,
        {"name": "crasher", "exec": "sh", "params": ["-c", script], "restart_err": True, "err_delay": 200},
    )
    try:
        open_app(page, gui, "#/workers/crasher?tab=history")
        crash = page.locator('.hist-row[data-kind="crash"]').first
        expect(crash).to_be_visible(timeout=15000)
        expect(crash).to_contain_text("code 3")
        # The policy restarts it: a backoff, then the instance starts again (newest first: above the crash).
        backoff = page.locator('.hist-row[data-kind="backoff"]').first
        expect(backoff).to_be_visible(timeout=15000)
        expect(backoff.locator(".c-reason")).to_have_text(re.compile(r"^crash · next start in \d+\.\d s$"))
        expect(page.locator('.hist-row[data-kind="start"]')).to_have_count(2, timeout=15000)
        kinds = page.locator(".hist-row").evaluate_all("rows => rows.map(r => r.dataset.kind)")
        assert kinds.index("start") < kinds.index("crash"), kinds
        api = gui.admin.get("/api/v1/workers/crasher/history?limit=50").json()
        assert {"crash", "backoff", "start"} <= {e["kind"] for e in api["events"]}, api
        expect(page.locator(".hist-summary")).to_contain_text("crash")
        # A manual restart is a "restart" event.
        assert gui.admin.post("/api/v1/workers/crasher/restart").status == 200
        expect(page.locator('.hist-row[data-kind="restart"]').first).to_be_visible(timeout=15000)
        shot(page, "worker-history-crash-dark")
    finally:
        delete_worker(gui, "crasher")
        shutil.rmtree(os.path.dirname(flag), ignore_errors=True)

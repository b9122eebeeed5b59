"""Browser tests: Playwright (sync API) driving Debian's /usr/bin/chromium against a real
daemon from dist/apm with the GUI on a free loopback port.

    def test_x(gui, page):          # shared daemon (password set), a fresh logged-in page
        page.goto(gui.url("#/workers"))
        shot(page, "workers")       # -> tests/browser/artifacts/workers.png

    def test_y(fresh_gui, browser): # a daemon of its own, no password yet

Fixtures:
    browser    one headless Chromium per session (Playwright gives it a new temp
               user-data-dir; every test gets a new context: no cookies, no storage)
    gui        one daemon for the whole session, first-run setup done through the API
    fresh_gui  a daemon for one test (first run, rate limits, daemon stop)
    page       a new context logged in on `gui` (session cookie from the API), the
               settings reset to a known state; console errors fail the test
Every daemon is stopped and its process tree killed at teardown (tests.integration's Apm).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Dict, Iterator, List, Optional

import pytest

from tests.helpers import wait_for
from tests.integration.conftest import APM_BIN, Apm
from tests.integration.web_support import PASSWORD, Api, free_port

pytest.importorskip("playwright")
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

CHROMIUM = os.environ.get("APM_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
BASE_SETTINGS: Dict[str, Any] = {
    "general": {"confirm_delete": True, "confirm_stop": False, "auto_refresh": True, "refresh_interval": 1},
    "ui": {"theme": "dark", "accent": "#3b82f6", "compact": False, "view_mode": "table", "font_size": 14},
    "security": {"lock_timeout": 0},
}

expect.set_options(timeout=10_000)  # a shared 2-core machine: state changes can take seconds


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "gui_env(env): environment for the test's own daemon (fresh_gui)")


class AdminApi(Api):
    """The tests' own API session: unlocks itself when an inactivity test locked it."""

    def request(self, method: str, path: str, *args: Any, **kw: Any) -> Any:
        resp = super().request(method, path, *args, **kw)
        if resp.status == 423 and not path.startswith("/api/v1/auth/"):
            assert super().request("POST", "/api/v1/auth/unlock", {"password": PASSWORD}).status == 200
            resp = super().request(method, path, *args, **kw)
        return resp


class GuiDaemon:
    """A private daemon with the GUI on 127.0.0.1:<free port>."""

    def __init__(self, env: Optional[Dict[str, str]] = None) -> None:
        if not os.path.exists(APM_BIN):
            pytest.exit(f"{APM_BIN} is missing: run `python3 build.py` first", returncode=2)
        self.home = tempfile.mkdtemp(prefix="apm-browser-")
        os.chmod(self.home, 0o755)
        self.apm = Apm(self.home)
        self.port = free_port()
        self.apm.env["APM_GUI_PORT"] = str(self.port)
        self.apm.env["APM_GUI_LOGIN_LIMITS"] = "100,0,1000,1"
        self.apm.env.update(env or {})
        self.start_info = self.apm.json("gui")
        self.setup_token: Optional[str] = self.start_info.get("setup_token")

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def api(self) -> Api:
        return Api(self.port)

    def login_api(self) -> Api:
        """An HTTP client with a session (runs the first-run setup when needed)."""
        api = AdminApi(self.port)
        if api.get("/api/v1/auth/status").json()["setup_required"]:
            token = self.setup_token or self.apm.json("gui", "setup-token")["setup_token"]
            r = api.post("/api/v1/auth/setup", {"setup_token": token, "password": PASSWORD})
        else:
            r = api.post("/api/v1/auth/login", {"password": PASSWORD})
        assert r.status == 200, r
        return api

    def restart_daemon(self) -> None:
        """Start the daemon again (same home, same port) after it stopped."""
        self.start_info = self.apm.json("gui")

    def close(self) -> None:
        self.apm.cleanup()
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        # tests/run.sh installs it: a missing browser is a broken setup, not a reason to pass quietly.
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (tests/run.sh does this)", pytrace=False)
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_instance: Any) -> Iterator[Browser]:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # this run's screenshots only
    os.makedirs(ARTIFACTS, exist_ok=True)
    b = playwright_instance.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
    yield b
    b.close()


@pytest.fixture(scope="session")
def gui() -> Iterator[GuiDaemon]:
    daemon = GuiDaemon()
    daemon.admin = daemon.login_api()  # type: ignore[attr-defined]
    yield daemon
    daemon.close()


@pytest.fixture
def fresh_gui(request: pytest.FixtureRequest) -> Iterator[GuiDaemon]:
    marker = request.node.get_closest_marker("gui_env")
    daemon = GuiDaemon(marker.args[0] if marker else None)
    yield daemon
    daemon.close()


class Console:
    """Errors the page logged (console.error, uncaught exceptions).  Chromium also logs every
    4xx answer as "Failed to load resource"; those are API answers the page handles (wrong
    password, 423 while locked...), so they do not count."""

    def __init__(self) -> None:
        self.errors: List[str] = []
        self.allowed: List[str] = ["the server responded with a status of 4"]

    def attach(self, page: Page) -> None:
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def unexpected(self) -> List[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]


def new_context(browser: Browser, viewport: Optional[Dict[str, int]] = None, **kw: Any) -> BrowserContext:
    ctx = browser.new_context(viewport=viewport or DESKTOP, color_scheme="dark", **kw)
    ctx.set_default_timeout(15000)
    return ctx


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = new_context(browser)
    yield ctx
    ctx.close()


@pytest.fixture
def page(gui: GuiDaemon, context: BrowserContext, console: Console) -> Iterator[Page]:
    reset_settings(gui)
    r = context.request.post(gui.url("api/v1/auth/login"), data={"password": PASSWORD})
    assert r.status == 200, r.text()
    p = context.new_page()
    console.attach(p)
    yield p
    errors = console.unexpected()
    assert not errors, "the page logged errors:\n" + "\n".join(errors)


def reset_settings(gui: GuiDaemon) -> None:
    r = gui.admin.patch("/api/v1/settings", BASE_SETTINGS)  # type: ignore[attr-defined]
    assert r.status == 200, r


def shot(page: Page, name: str, full_page: bool = False) -> str:
    """Save a screenshot as a test artifact (tests/browser/artifacts/<name>.png)."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, f"{name}.png")
    page.wait_for_timeout(150)  # let the last frame paint (charts draw on animation frames)
    page.screenshot(path=path, full_page=full_page)
    return path


def open_app(page: Page, gui: GuiDaemon, route: str = "#/workers") -> None:
    page.goto(gui.url(route))
    page.wait_for_selector(".shell")
    wait_for(
        lambda: page.evaluate("document.querySelector('.conn-dot.conn-open') !== null"),
        timeout=15,
        what="the live stream",
    )


def create_worker(gui: GuiDaemon, config: Dict[str, Any]) -> Dict[str, Any]:
    r = gui.admin.post("/api/v1/workers", {"config": config})  # type: ignore[attr-defined]
    assert r.status == 201, r
    return r.json()  # type: ignore[no-any-return]


def delete_worker(gui: GuiDaemon, name: str) -> None:
    gui.admin.delete(f"/api/v1/workers/{name}")  # type: ignore[attr-defined]

"""The HTTP API against a real daemon: CSRF, CORS, bad bodies, XSS, workers, logs, server info, settings, static."""

from __future__ import annotations

import json
import re
import socket
import time

import pytest

from tests.helpers import wait_for
from tests.integration.web_support import SseReader, start_gui

pytestmark = pytest.mark.timeout(120)

XSS = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert('pwned')</script>"


def _no_cors(resp):
    return not [k for k, _ in resp.headers if k.lower().startswith("access-control-")]


def test_csrf_header_is_required_for_changes(apm):
    gui = start_gui(apm)
    api = gui.login()
    body = {"config": {"name": "c", "exec": "sleep", "params": ["60"]}}
    missing = api.post("/api/v1/workers", body, csrf=False)
    assert missing.status == 403 and missing.error["kind"] == "csrf"
    wrong = api.post("/api/v1/workers", body, headers={"X-CSRF-Token": "forged"})
    assert wrong.status == 403 and wrong.error["kind"] == "csrf"
    assert apm.json("list")["workers"] == []
    assert api.post("/api/v1/auth/logout", csrf=False).status == 403  # even logout (no forced logouts)
    # Reads need no CSRF header; changes with it work.
    assert api.get("/api/v1/workers").status == 200
    assert api.post("/api/v1/workers", body).status == 201
    assert [w["name"] for w in apm.json("list")["workers"]] == ["c"]


def test_no_cors_for_foreign_origins(apm):
    gui = start_gui(apm)
    api = gui.login()
    evil = {"Origin": "http://evil.example"}
    pre = api.request(
        "OPTIONS",
        "/api/v1/workers",
        headers={**evil, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-csrf-token"},
    )
    assert pre.status == 405 and _no_cors(pre)
    read = api.get("/api/v1/workers", headers=evil)
    assert _no_cors(read)  # the browser will not let the foreign page read it
    change = api.post("/api/v1/system/save", headers=evil)
    assert change.status == 403 and change.error["kind"] == "csrf" and _no_cors(change)
    cross_site = api.post("/api/v1/system/save", headers={"Sec-Fetch-Site": "cross-site"})
    assert cross_site.status == 403
    login = gui.api().post("/api/v1/auth/login", {"password": "whatever-123"}, headers=evil)
    assert login.status == 403 and _no_cors(login)
    # A form post (no JSON) cannot log in either.
    form = gui.api().request(
        "POST", "/api/v1/auth/login", raw=b"password=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert form.status == 415
    same = api.post("/api/v1/system/save", headers={"Origin": f"http://127.0.0.1:{gui.port}"})
    assert same.status == 200 and _no_cors(same)
    # DNS rebinding: a loopback GUI serves only loopback Host names.
    rebound = api.get("/api/v1/workers", headers={"Host": f"evil.example:{gui.port}"})
    assert rebound.status == 403
    assert api.get("/api/v1/workers", headers={"Host": f"localhost:{gui.port}"}).status == 200


def test_malformed_bodies_are_clean_400s(apm):
    gui = start_gui(apm)
    api = gui.login()
    h = {"Content-Type": "application/json"}
    cases = [
        (b"{", 400, "not valid JSON"),
        (b'{"config": }', 400, "line 1 column 12"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'"text"', 400, "must be a JSON object"),
        (b"\xff\xfe", 400, "UTF-8"),
        (b'{"config": NaN}', 400, "NaN"),
        (b"[" * 100000 + b"]" * 100000, 400, ""),
        (b'{"config": "sleep"}', 400, "must be an object"),
        (b'{"config": {"exec": "sleep", "instances": "many"}}', 400, "instances"),
    ]
    for raw, status, text in cases:
        r = api.request("POST", "/api/v1/workers", raw=raw, headers=h)
        assert r.status == status, (raw[:40], r)
        assert r.header("Content-Type") == "application/json; charset=utf-8"
        assert text in r.error["message"] + r.error.get("hint", ""), (raw[:40], r.error)
    wrong_type = api.request("POST", "/api/v1/workers", raw=b'{"config": {}}', headers={"Content-Type": "text/plain"})
    assert wrong_type.status == 415
    big = api.request("POST", "/api/v1/workers", raw=b"{" + b" " * (2 * 1024 * 1024) + b"}", headers=h)
    assert big.status == 413
    assert api.request("PATCH", "/api/v1/settings", raw=b'{"ui": {"theme": "neon"}}', headers=h).status == 400
    assert api.get("/api/v1/workers/nope").status == 404
    assert api.request("PUT", "/api/v1/workers").status == 405
    assert api.get("/api/v1/nothing-here").status == 404
    # The daemon is unharmed.
    assert api.get("/api/v1/workers").status == 200
    assert apm.json("list")["workers"] == []


def test_xss_payloads_are_inert(apm):
    gui = start_gui(apm)
    api = gui.login()
    bad_name = api.post("/api/v1/workers", {"config": {"name": XSS, "exec": "sleep", "params": ["60"]}})
    assert bad_name.status == 400
    assert b"<" not in bad_name.body
    from urllib.parse import quote

    echoed = api.get("/api/v1/workers/" + quote(XSS, safe=""))  # the 404 names the worker
    assert echoed.status == 404 and b"<" not in echoed.body and XSS in echoed.error["message"]
    config = {
        "name": "xss",
        "exec": "sh",
        "params": ["-c", f'echo "{SCRIPT}"; sleep 60'],
        "env": [f"TITLE={XSS}"],
    }
    created = api.post("/api/v1/workers", {"config": config})
    assert created.status == 201, created
    stream = SseReader(api, "/api/v1/stream?logs=xss&tail=50")
    try:
        line = wait_for(
            lambda: [x for x in api.get("/api/v1/workers/xss/logs").json()["lines"] if SCRIPT in x["text"]],
            what="the script line in the log",
        )
        assert line
        for path in (
            "/api/v1/workers",
            "/api/v1/workers/xss",
            "/api/v1/workers/xss/logs",
            "/api/v1/logs/search?q=script",
        ):
            r = api.get(path)
            assert r.status == 200
            assert r.header("Content-Type") == "application/json; charset=utf-8"
            assert r.header("X-Content-Type-Options") == "nosniff"
            assert b"<" not in r.body and b">" not in r.body, path
            assert XSS in r.body.decode() or SCRIPT in json.dumps(r.json()), path
        assert XSS in json.dumps(api.get("/api/v1/workers/xss").json()["config"])
        stream.wait("log", lambda d: any(SCRIPT in x["text"] for x in d["lines"]))
        assert not any(b"<" in chunk for chunk in stream.raw)
        dl = api.get("/api/v1/workers/xss/logs/download")
        assert dl.status == 200 and SCRIPT.encode() in dl.body
        assert dl.header("Content-Type") == "text/plain; charset=utf-8"
        assert dl.header("Content-Disposition") == 'attachment; filename="xss.log"'
        assert dl.header("X-Content-Type-Options") == "nosniff"
    finally:
        stream.close()
    page = api.get("/")
    assert page.status == 200 and page.header("Content-Type") == "text/html; charset=utf-8"
    csp = page.header("Content-Security-Policy") or ""
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.header("X-Frame-Options") == "DENY" and page.header("Referrer-Policy") == "no-referrer"


def test_worker_crud_and_actions_show_in_apm_list(apm, tmp_path):
    gui = start_gui(apm)
    api = gui.login()
    names = lambda: {w["name"]: w for w in apm.json("list")["workers"]}  # noqa: E731
    created = api.post(
        "/api/v1/workers",
        {"config": {"name": "web", "exec": "sleep", "params": ["300"], "path": str(tmp_path)}, "wait": True},
    )
    assert created.status == 201, created
    assert created.json()["origin"] == {"kind": "gui", "file": None}
    assert names()["web"]["status"] == "running"
    assert names()["web"]["origin"]["kind"] == "gui"
    assert api.post("/api/v1/workers", {"config": {"name": "web", "exec": "sleep"}}).status == 409

    up = api.patch("/api/v1/workers/web", {"config": {"instances": 2}})
    assert up.status == 200 and up.json()["instances_wanted"] == 2
    wait_for(lambda: names()["web"]["instances_running"] == 2, what="two instances")

    assert api.post("/api/v1/workers/web/stop").json()["status"] == "stopped"
    assert names()["web"]["status"] == "stopped"
    assert api.post("/api/v1/workers/web/start", {"wait": True}).json()["status"] == "running"
    pids = [i["pid"] for i in names()["web"]["instances"]]
    restarted = api.post("/api/v1/workers/web/restart", {"wait": True}).json()
    assert restarted["status"] == "running"
    assert [i["pid"] for i in names()["web"]["instances"]] != pids
    assert api.post("/api/v1/workers/web/reload", {"wait": True}).status == 200
    sent = api.post("/api/v1/workers/web/signal", {"signal": "SIGCONT", "instance": 2})
    assert sent.status == 200 and [s["instance"] for s in sent.json()["sent"]] == [2]
    assert api.post("/api/v1/workers/web%231/stop").status == 200  # one instance: web#1
    wait_for(lambda: names()["web"]["instances_running"] == 1, what="web#1 stopped")

    assert api.post("/api/v1/workers/web/disable").json()["enabled"] is False
    assert names()["web"]["status"] == "disabled"
    refused = api.post("/api/v1/workers/web/start")
    assert refused.status == 409 and "disabled" in refused.error["message"]
    assert api.post("/api/v1/workers/web/enable").json()["enabled"] is True

    assert api.post("/api/v1/workers/web/rename", {"new": "site"}).json()["name"] == "site"
    assert api.post("/api/v1/workers/site/copy", {"new": "site2"}).status == 201
    assert set(names()) == {"site", "site2"}
    info = api.get("/api/v1/workers/site").json()
    assert info["options"]["instances"] == 2
    assert api.get("/api/v1/workers/site/env").json()["env"]["APM_INDEX"] == "0"
    assert any(o["name"] == "exec" for o in api.get("/api/v1/schema/worker").json()["options"])

    gone = api.delete("/api/v1/workers/site2")
    assert gone.status == 200 and gone.json() == {"removed": "site2"}
    assert set(names()) == {"site"}
    assert api.post("/api/v1/workers/stopall").status == 200
    assert names()["site"]["status"] == "stopped"
    missing = api.post("/api/v1/workers/nope/start")
    assert missing.status == 404 and missing.error["type"] == "NotFound"
    failed = api.post("/api/v1/workers", {"config": {"name": "bad", "exec": "/no/such/program"}})
    assert failed.status in (400, 500) and failed.error["type"] in ("StartFailed", "ConfigError")


def test_history_is_sampled(apm):
    gui = start_gui(apm)
    api = gui.login()
    apm("run", "sleep", "300", "--name", "h")
    data = wait_for(
        lambda: (d := api.get("/api/v1/workers/h/metrics?range=1h").json()) and any(m for m in d["memory"] if m) and d,
        timeout=15,
        what="a history point",
    )
    assert data["interval"] == 5 and data["range"] == "1h"
    assert len(data["t"]) == len(data["cpu"]) == len(data["memory"])
    assert api.get("/api/v1/workers/h/metrics?range=24h").json()["interval"] == 60
    assert api.get("/api/v1/workers/h/metrics?range=1y").status == 400
    assert api.get("/api/v1/workers/nope/metrics?range=1h").status == 404
    # GET /workers serves CPU and memory from the sampler's cache: the same numbers the history saw.
    listed = api.get("/api/v1/workers").json()["workers"][0]["instances"][0]
    assert listed["memory"] and listed["memory"] > 0 and listed["cpu"] is not None


def test_logs_tail_search_download_clear(apm):
    gui = start_gui(apm)
    api = gui.login()
    apm(
        "run",
        "sh",
        "--name",
        "talker",
        "--",
        "-c",
        "for i in 1 2 3 4 5; do echo line-$i; echo oops-$i >&2; done; sleep 300",
    )
    wait_for(lambda: "line-5" in json.dumps(api.get("/api/v1/workers/talker/logs").json()), what="output")
    tail = api.get("/api/v1/workers/talker/logs?lines=3&stream=out").json()
    assert [x["text"] for x in tail["lines"]] == ["line-3", "line-4", "line-5"]
    assert all(x["stream"] == "out" and "ts" in x for x in tail["lines"])
    errs = api.get("/api/v1/workers/talker/logs?stream=err").json()["lines"]
    assert [x["text"] for x in errs] == [f"oops-{i}" for i in range(1, 6)]
    assert api.get("/api/v1/workers/talker/logs?lines=0").status == 400

    found = wait_for(  # the files may trail the ring buffer by a moment
        lambda: (f := api.get("/api/v1/logs/search?q=oops-[24]&worker=talker").json())["matches"] and f,
        what="matches in the files",
    )
    assert [m["line"].split()[-1] for m in found["matches"]] == ["oops-2", "oops-4"]
    assert all(m["worker"] == "talker" for m in found["matches"])
    assert api.get("/api/v1/logs/search?q=(").status == 400
    assert api.get("/api/v1/logs/search").status == 400

    dl = api.get("/api/v1/workers/talker/logs/download?strip=1")
    assert dl.status == 200 and b"line-1" in dl.body and b"oops-5" in dl.body and b"\x1b[" not in dl.body
    library = api.get("/api/v1/logs").json()["workers"]
    assert library[0]["worker"] == "talker" and library[0]["size"] > 0
    volume = api.get("/api/v1/logs/volume?worker=talker").json()
    assert sum(r["out"] for r in volume["rows"]) >= 5

    cleared = api.delete("/api/v1/workers/talker/logs")
    assert cleared.status == 200 and cleared.json() == {"cleared": "talker"}
    assert api.get("/api/v1/workers/talker/logs").json()["lines"] == []
    assert api.get("/api/v1/workers/talker/logs/download").body == b""


def test_server_info_latency_and_settings(apm):
    gui = start_gui(apm)
    api = gui.login()
    info = api.get("/api/v1/system/info").json()
    host = info["host"]
    for key in ("cpu", "memory", "os", "kernel", "arch", "uptime", "network", "load"):
        assert key in host, key
    assert host["cpu"]["threads"] >= 1 and host["memory"]["total"] > 0
    assert any(n["name"] == "lo" and n["rx_bytes"] is not None for n in host["network"])
    assert info["daemon"]["workers"] == 0 and info["gui"]["running"] is True
    stats = api.get("/api/v1/system/stats").json()
    assert 0 <= stats["host"]["memory"]["percent"] <= 100
    assert api.get("/api/v1/ping").json()["pong"] is True

    # Unreachable targets answer quickly instead of hanging (an air-gapped host).
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    targets = [f"127.0.0.1:{dead_port}", "no-such-host.invalid:443"]
    assert api.patch("/api/v1/settings", {"general": {"latency_targets": targets}}).status == 200
    started = time.monotonic()
    probes = api.get("/api/v1/system/latency").json()["targets"]
    assert time.monotonic() - started < 5
    assert [p["target"] for p in probes] == targets
    assert all(p["ok"] is False and p["error"] for p in probes)

    settings = api.get("/api/v1/settings").json()
    assert settings["ui"]["theme"] == "system" and settings["general"]["tail_lines"] == 200
    changed = api.patch(
        "/api/v1/settings", {"ui": {"theme": "dark", "accent": "#ff8800"}, "general": {"tail_lines": 500}}
    )
    assert changed.status == 200 and changed.json()["ui"]["theme"] == "dark"
    bad = api.patch("/api/v1/settings", {"ui": {"theme": "light", "accent": "red"}})
    assert bad.status == 400 and "accent" in bad.error["message"]
    assert api.get("/api/v1/settings").json()["ui"]["theme"] == "dark"  # all or nothing
    assert api.patch("/api/v1/settings", {"ui": {"nope": 1}}).status == 400
    schema = api.get("/api/v1/settings/schema").json()["settings"]
    assert {"section": "security", "key": "lock_timeout"}.items() <= next(
        s for s in schema if s["key"] == "lock_timeout"
    ).items()
    # Settings survive a daemon restart.
    apm("exit", "daemon")
    apm.json("gui")
    api2 = gui.login()
    assert api2.get("/api/v1/settings").json()["ui"]["accent"] == "#ff8800"


def test_static_files(apm):
    gui = start_gui(apm)
    api = gui.api()
    index = api.get("/")
    assert index.status == 200 and b"<html" in index.body.lower()
    assert index.header("Cache-Control") == "no-cache"
    assert api.get("/index.html").body == index.body
    assert api.get("/", headers={"If-None-Match": index.header("ETag") or ""}).status == 304
    assert api.get("/processes/api").body == index.body  # client-side routes get the page
    missing = api.get("/missing.js")
    assert missing.status == 404 and missing.header("Content-Type") == "application/json; charset=utf-8"
    assert api.get("/../../etc/passwd").status == 404
    assert api.get("/%2e%2e/%2e%2e/etc/passwd").status == 404
    assert api.post("/index.html", csrf=False).status == 405
    assert api.get("/api/v1/health").json() == {"ok": True}
    assert api.get("/").header("Server") == "apm"


def test_assets_are_immutable_under_a_content_hash(apm):
    gui = start_gui(apm)
    api = gui.api()
    page = api.get("/").body.decode()
    tags = set(re.findall(r'(?:href|src)="/a/([0-9a-f]{12})/', page))
    assert len(tags) == 1, page[:600]
    tag = tags.pop()
    # Every stylesheet, module preload, the app script and the favicon moved under the prefix; API preloads did not.
    assert 'src="/a/' + tag + '/js/app.js"' in page and 'href="/a/' + tag + '/favicon.svg"' in page
    assert re.findall(r'(?:href|src)="/(?!a/|api/)', page) == []
    assert 'href="/api/v1/workers"' in page
    app = api.get(f"/a/{tag}/js/app.js")
    assert app.status == 200 and app.header("Cache-Control") == "public, max-age=31536000, immutable"
    assert app.header("Content-Type") == "text/javascript; charset=utf-8"
    assert app.body == api.get("/js/app.js").body  # old unprefixed paths still work, revalidated
    assert api.get("/js/app.js").header("Cache-Control") == "no-cache"
    assert "default-src 'self'" in (app.header("Content-Security-Policy") or "")
    assert app.header("X-Content-Type-Options") == "nosniff"
    css = api.get(f"/a/{tag}/css/base.css")
    assert css.status == 200 and css.header("Content-Type") == "text/css; charset=utf-8"
    assert api.get(f"/a/{tag}/js/app.js", headers={"If-None-Match": app.header("ETag") or ""}).status == 304
    wrong = api.get("/a/000000000000/js/app.js")
    assert wrong.status == 404 and "reload" in wrong.error["hint"]
    for bad in (
        f"/a/{tag}/../../etc/passwd",
        f"/a/{tag}/%2e%2e/%2e%2e/etc/passwd",
        f"/a/{tag}/..%2f..%2fetc%2fpasswd",
        f"/a/{tag}/no/such.js",
        f"/a/{tag}/",
        f"/a/{tag}",
        "/a/",
    ):
        r = api.get(bad)
        assert r.status == 404 and r.header("Cache-Control") == "no-store", (bad, r)

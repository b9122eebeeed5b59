"""Web GUI auth against a real daemon: setup token, login, rate limit, PIN, lock, tokens, bind rules, TLS, secrets."""

from __future__ import annotations

import os
import re
import socket
import ssl
import stat
import subprocess
import time

import pytest

from tests.helpers import wait_for
from tests.integration.web_support import PASSWORD, Api, free_port, start_gui

pytestmark = pytest.mark.timeout(120)


def test_setup_token_flow_is_single_use(apm):
    gui = start_gui(apm)
    assert gui.start["running"] and gui.start["setup_required"]
    token = gui.start["setup_token"]
    assert re.fullmatch(r"[0-9A-Z]{5}(-[0-9A-Z]{5}){3}", token)
    assert "setup token" in gui.daemon_log()  # the daemon log prints one too
    api = gui.api()
    status = api.get("/api/v1/auth/status").json()
    assert status == {**status, "setup_required": True, "authenticated": False, "password_set": False}

    # Nothing else works before setup; login has no password to check yet.
    assert api.get("/api/v1/workers").status == 401
    assert api.post("/api/v1/auth/login", {"password": PASSWORD}).status == 409

    bad = api.post("/api/v1/auth/setup", {"setup_token": "AAAAA-BBBBB-CCCCC-DDDDD", "password": PASSWORD})
    assert bad.status == 403 and bad.error["kind"] == "wrong_secret"
    short = api.post("/api/v1/auth/setup", {"setup_token": token, "password": "short"})
    assert short.status == 400 and "at least 8" in short.error["hint"]

    ok = api.post("/api/v1/auth/setup", {"setup_token": token.lower(), "password": PASSWORD})
    assert ok.status == 200, ok
    cookie = ok.header("Set-Cookie")
    assert cookie is not None
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; the TLS test checks Secure
    assert api.get("/api/v1/workers").status == 200

    # Single use: the same token (or any) cannot set a password again.
    again = gui.api().post("/api/v1/auth/setup", {"setup_token": token, "password": "Another-Pass-99"})
    assert again.status == 409
    assert apm("gui", "setup-token", check=False).returncode == 4
    # ...and the old password still logs in.
    assert gui.login().get("/api/v1/workers").status == 200


def test_login_logout_and_401s(apm):
    gui = start_gui(apm)
    gui.login()
    anon = gui.api()
    for method, path in (("GET", "/api/v1/workers"), ("GET", "/api/v1/system/info"), ("GET", "/api/v1/stream")):
        r = anon.request(method, path)
        assert r.status == 401, (path, r)
        assert r.error["kind"] == "unauthorized"
    forged = Api(gui.port)
    forged.cookie = "not-a-session"
    assert forged.get("/api/v1/workers").status == 401
    bad_bearer = anon.get("/api/v1/workers", headers={"Authorization": "Bearer apm_nope"})
    assert bad_bearer.status == 401
    assert anon.get("/api/v1/workers", headers={"Authorization": "Basic Zm9vOmJhcg=="}).status == 401

    wrong = anon.post("/api/v1/auth/login", {"password": "wrong password"})
    assert wrong.status == 403 and wrong.error["kind"] == "wrong_secret"
    api = gui.login()
    assert api.get("/api/v1/auth/status").json()["via"] == "session"
    out = api.post("/api/v1/auth/logout")
    assert out.status == 200
    assert "Max-Age=0" in (out.header("Set-Cookie") or "")
    old = Api(gui.port)
    old.cookie = api.cookie or "x"
    assert api.get("/api/v1/workers").status == 401


def test_wrong_password_rate_limit_and_lockout(apm):
    # 2 free failures, then 2 s, 4 s...; the 5th failure locks the client out for 4 s.
    # (Seconds, not less: each check must land inside its window even on a loaded machine.)
    gui = start_gui(apm, env={"APM_GUI_LOGIN_LIMITS": "2,2,5,4"})
    gui.login()
    api = gui.api()
    login = lambda pw: api.post("/api/v1/auth/login", {"password": pw})  # noqa: E731
    assert login("wrong-1").status == 403
    assert login("wrong-2").status == 403
    third = login("wrong-3")  # from now on each failure makes the client wait
    assert third.status == 403 and "wait 2 s" in third.error["hint"]
    early = login(PASSWORD)
    assert early.status == 429, early
    assert early.header("Retry-After") in ("1", "2")
    assert early.error["detail"]["locked_out"] is False
    time.sleep(2.1)
    fourth = login("wrong-4")  # 4th failure: wait 4 s
    assert fourth.status == 403 and "wait 4 s" in fourth.error["hint"]
    assert login(PASSWORD).status == 429
    time.sleep(4.1)
    assert login("wrong-5").status == 403  # 5th failure: lockout
    started = time.monotonic()
    locked = login(PASSWORD)
    assert locked.status == 429 and locked.error["detail"]["locked_out"] is True
    assert locked.header("Retry-After") in ("3", "4")
    assert "locked out" in locked.error["message"]
    wait_for(lambda: login(PASSWORD).status == 200, timeout=10, interval=0.25, what="lockout to end")
    assert time.monotonic() - started >= 3
    # A success resets the count: two fresh failures cost nothing again.
    assert login("wrong-again").status == 403
    assert login(PASSWORD).status == 200


def test_pin_unlocks_but_never_logs_in(apm):
    gui = start_gui(apm)
    api = gui.login()
    assert api.put("/api/v1/auth/pin", {"pin": "12a4", "password": PASSWORD}).status == 400
    assert api.put("/api/v1/auth/pin", {"pin": "1234", "password": "nope-nope"}).status == 403
    assert api.put("/api/v1/auth/pin", {"pin": "482915", "password": PASSWORD}).status == 200
    assert api.get("/api/v1/settings").json()["security"]["has_pin"] is True

    # The PIN never logs in fresh.
    fresh = gui.api()
    assert fresh.post("/api/v1/auth/login", {"pin": "482915"}).status == 400
    assert fresh.post("/api/v1/auth/login", {"password": "482915"}).status == 403
    assert fresh.post("/api/v1/auth/unlock", {"pin": "482915"}, csrf=False).status == 401

    assert api.post("/api/v1/auth/lock").status == 200
    locked = api.get("/api/v1/workers")
    assert locked.status == 423 and locked.error["kind"] == "locked"
    assert api.get("/api/v1/auth/status").json()["session"]["locked"] is True
    wrong = api.post("/api/v1/auth/unlock", {"pin": "000000"})
    assert wrong.status == 403 and wrong.error["kind"] == "wrong_secret"
    assert api.post("/api/v1/auth/unlock", {"pin": "482915"}).status == 200
    assert api.get("/api/v1/workers").status == 200

    # Five wrong PINs disable the PIN for this session; the password still unlocks.
    api.post("/api/v1/auth/lock")
    for _ in range(5):
        assert api.post("/api/v1/auth/unlock", {"pin": "111111"}).status == 403
    blocked = api.post("/api/v1/auth/unlock", {"pin": "482915"})
    assert blocked.status == 403 and "disabled" in blocked.error["message"]
    assert api.post("/api/v1/auth/unlock", {"password": PASSWORD}).status == 200
    assert api.delete("/api/v1/auth/pin").status == 200
    assert api.get("/api/v1/auth/status").json()["has_pin"] is False


def test_inactivity_lock_is_enforced_by_the_server(apm):
    gui = start_gui(apm)
    api = gui.login()
    assert api.patch("/api/v1/settings", {"security": {"lock_timeout": 4}}).status == 200
    # Mutating calls and /auth/activity count as activity; plain reads do not.
    for _ in range(3):
        time.sleep(1.5)
        assert api.post("/api/v1/auth/activity").status == 200
        assert api.get("/api/v1/workers").status == 200
    time.sleep(4.5)
    locked = api.get("/api/v1/workers")
    assert locked.status == 423, locked
    assert api.post("/api/v1/system/save").status == 423
    status = api.get("/api/v1/auth/status").json()
    assert status["session"]["locked"] is True and status["authenticated"] is True
    assert api.post("/api/v1/auth/unlock", {"password": PASSWORD}).status == 200
    assert api.get("/api/v1/workers").status == 200
    assert api.patch("/api/v1/settings", {"security": {"lock_timeout": 0}}).status == 200
    bad = api.patch("/api/v1/settings", {"security": {"lock_timeout": 99999}})
    assert bad.status == 400 and "lock_timeout" in bad.error["message"]


def test_bearer_tokens_create_list_revoke(apm):
    gui = start_gui(apm)
    session = gui.login()
    made = apm.json("token", "create", "--name", "ci")
    secret = made["token"]
    assert secret.startswith("apm_") and made["name"] == "ci"
    listed = apm.json("token", "list")["tokens"]
    assert [t["name"] for t in listed] == ["ci"]
    assert "token" not in listed[0] and secret not in apm("token", "list").stdout
    assert listed[0]["last_used"] is None

    client = gui.api()
    client.token = secret
    r = client.get("/api/v1/workers")
    assert r.status == 200
    # Bearer clients need no CSRF header (no cookies involved)...
    assert client.post("/api/v1/system/save", csrf=False).status == 200
    # ...but cannot manage credentials or shut the daemon down.
    assert client.get("/api/v1/auth/tokens").status == 403
    assert client.post("/api/v1/auth/tokens", {"name": "more"}).status == 403
    assert client.post("/api/v1/auth/password", {"current": PASSWORD, "new": "x" * 12}).status == 403
    assert apm.json("token", "list")["tokens"][0]["last_used"] is not None

    # Tokens made in the GUI are shown once too, and listed without the secret.
    made2 = session.post("/api/v1/auth/tokens", {"name": "gui-made"})
    assert made2.status == 201 and made2.json()["token"].startswith("apm_")
    names = [t["name"] for t in session.get("/api/v1/auth/tokens").json()["tokens"]]
    assert names == ["ci", "gui-made"]
    assert made2.json()["token"] not in session.get("/api/v1/auth/tokens").body.decode()

    revoked = apm.json("token", "revoke", made["id"])
    assert revoked["revoked"]["id"] == made["id"]
    assert client.get("/api/v1/workers").status == 401
    assert apm("token", "revoke", made["id"], check=False).returncode == 3
    assert session.delete("/api/v1/auth/tokens/" + made2.json()["id"]).status == 200
    assert apm.json("token", "list")["tokens"] == []


def test_non_loopback_bind_refused_without_password(apm):
    port = free_port()
    apm.env.update({"APM_GUI_PORT": str(port), "APM_GUI_BIND": "0.0.0.0"})
    r = apm("gui", check=False)
    assert r.returncode == 5, r
    assert "no GUI password is set" in r.stderr
    assert "apm gui --bind 127.0.0.1" in r.stderr and "gui_password" in r.stderr
    with open(os.path.join(apm.home, "apm.log")) as f:
        log = f.read()
    assert "GUI not started" in log and "gui_password" in log
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()

    # Set the password over loopback first, then the wildcard address is fine.
    started = apm.json("gui", "--bind", "127.0.0.1")
    assert started["running"] and started["bind"] == "127.0.0.1"
    api = Api(port)
    # A refused change leaves the running listener alone.
    assert apm("gui", "--bind", "0.0.0.0", check=False).returncode == 5
    assert api.get("/api/v1/health").status == 200
    assert apm.json("gui", "status")["bind"] == "127.0.0.1"
    assert api.post("/api/v1/auth/setup", {"setup_token": started["setup_token"], "password": PASSWORD}).status == 200
    apm("gui", "stop")
    wide = apm.json("gui", "--bind", "0.0.0.0")
    assert wide["running"] and wide["bind"] == "0.0.0.0"
    assert api.get("/api/v1/workers").status == 200  # the cookie still works; 0.0.0.0 includes loopback

    # Forgetting the password takes the wildcard listener down again.
    reset = apm.json("gui", "reset-password")
    assert reset["setup_token"] and not reset["running"] and "stopped" in reset


def _self_signed(tmp_path):
    cert, key = str(tmp_path / "gui.crt"), str(tmp_path / "gui.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_with_a_self_signed_certificate(apm, tmp_path):
    cert, key = _self_signed(tmp_path)
    ctx = ssl.create_default_context(cafile=cert)
    gui = start_gui(apm, env={"APM_GUI_TLS_CERT": cert, "APM_GUI_TLS_KEY": key}, tls=ctx)
    assert gui.start["tls"] is True and gui.start["url"].startswith("https://127.0.0.1:")
    api = gui.api()
    r = api.post("/api/v1/auth/setup", {"setup_token": gui.start["setup_token"], "password": PASSWORD})
    assert r.status == 200
    assert "Secure" in (r.header("Set-Cookie") or "")
    assert api.get("/api/v1/workers").status == 200
    # Plain HTTP on the TLS port gets no answer.
    with socket.create_connection(("127.0.0.1", gui.port), timeout=5) as s:
        s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            data = s.recv(100)
        except (ConnectionResetError, socket.timeout):
            data = b""
    assert not data.startswith(b"HTTP/1.1 200")
    # A client that does not trust the certificate is refused by the handshake.
    with pytest.raises(ssl.SSLError):
        Api(gui.port, ssl.create_default_context()).get("/api/v1/health")


def test_secrets_never_in_responses_logs_or_files(apm):
    gui = start_gui(apm)
    api = gui.login()
    api.put("/api/v1/auth/pin", {"pin": "913572", "password": PASSWORD})
    assert api.patch("/api/v1/settings", {"ui": {"theme": "dark"}}).status == 200
    token = apm.json("token", "create", "--name", "probe")["token"]
    cookie = api.cookie
    config = {"name": "s", "exec": "sleep", "params": ["60"],
              "on_crash": {"url": "http://127.0.0.1:9/hook", "secret": "hmac-key-xyz"}}  # fmt: skip
    assert api.post("/api/v1/workers", {"config": config}).status == 201
    bearer = gui.api()
    bearer.token = token
    for client in (api, bearer):
        for path in ("/api/v1/auth/status", "/api/v1/settings", "/api/v1/workers", "/api/v1/workers/s",
                     "/api/v1/system/config", "/api/v1/system/info", "/api/v1/logs"):  # fmt: skip
            assert client.get(path).status == 200, path
    api.get("/api/v1/auth/tokens")
    api.post("/api/v1/auth/login", {"password": "wrong-guess-123"})
    secrets = [PASSWORD, "913572", token, cookie, "hmac-key-xyz", "wrong-guess-123"]
    bodies = b"\n".join(api.log + bearer.log).decode("utf-8", "replace")
    log = gui.daemon_log()
    state = os.path.join(apm.home, "state")
    files = {}
    for name in os.listdir(state):
        path = os.path.join(state, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                files[name] = f.read().decode("utf-8", "replace")
    for secret in secrets:
        assert secret not in bodies, secret
        assert secret not in log, secret
        for name, text in files.items():
            if not (secret == "hmac-key-xyz" and name == "state.json"):  # the worker's own config keeps it
                assert secret not in text, (secret, name)
    for name in ("auth.json", "settings.json", "state.json"):
        mode = stat.S_IMODE(os.stat(os.path.join(state, name)).st_mode)
        assert mode == 0o600, (name, oct(mode))
    assert "$argon2id$" in files["auth.json"]

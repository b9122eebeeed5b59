"""AuthManager: setup tokens, sessions, lock, PIN, password changes, tokens, persistence (fake clocks)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from alter.errors import Conflict, NotFound, PermissionDenied, UsageError
from alter.web import tokens
from alter.web.auth import MAX_PIN_FAILURES, SESSION_IDLE, SESSION_MAX, SETUP_TTL, Argon2, AuthManager, WrongSecret
from alter.web.errors import Locked, TooManyRequests
from alter.web.ratelimit import Policy, RateLimiter

PW = "Correct-Horse-42"


class FakeArgon(Argon2):
    """Fast stand-in: same interface, no argon2 cost (one test below uses the real one)."""

    def hash(self, secret: str) -> str:
        return "fake$" + tokens.digest("salt" + secret)

    def verify(self, hashed: str, secret: str) -> bool:
        return hashed == self.hash(secret)


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def env(tmp_path):
    wall, mono = Clock(), Clock(100.0)
    timeout = {"value": 300}
    limiter = RateLimiter(Policy(free=3, delay=1.0, max_failures=6, lockout=60.0), clock=mono)

    def make() -> AuthManager:
        return AuthManager(
            str(tmp_path / "auth.json"),
            lock_timeout=lambda: timeout["value"],
            limiter=limiter,
            wall=wall,
            argon=FakeArgon(),
        )

    return make, wall, mono, timeout, tmp_path


def setup_done(auth: AuthManager):
    token = auth.issue_setup_token()
    return auth.setup(token, PW, "10.0.0.1")


def test_setup_token_is_single_use_and_expires(env):
    make, wall, _, _, tmp_path = env
    auth = make()
    assert auth.state()["setup_required"]
    old = auth.issue_setup_token()
    wall.t += SETUP_TTL + 1
    with pytest.raises(WrongSecret):
        auth.setup(old, PW, "c")
    token = auth.issue_setup_token()
    with pytest.raises(UsageError):
        auth.setup(token, "short", "c")  # a weak password does not burn the token
    sid, session = auth.setup(token.lower().replace("-", " "), PW, "c")
    assert sid and auth.find_session(sid) is session
    with pytest.raises(Conflict):
        auth.setup(token, PW, "c")
    with pytest.raises(Conflict):
        auth.issue_setup_token()
    data = json.loads((tmp_path / "auth.json").read_text())
    assert data["setup_tokens"] == [] and data["password"]["source"] == "setup"
    assert token not in (tmp_path / "auth.json").read_text()


def test_login_sessions_expire_and_persist(env):
    make, wall, _, _, _ = env
    auth = make()
    setup_done(auth)
    with pytest.raises(WrongSecret):
        auth.login("nope-nope", "c")
    sid, session = auth.login(PW, "c")
    assert auth.find_session("forged") is None
    # A second manager (daemon restart) knows the session: only its digest is stored.
    again = make()
    assert again.find_session(sid) is not None
    with open(again.file.path) as f:
        assert sid not in f.read()
    wall.t += SESSION_IDLE + 1
    assert again.find_session(sid) is None
    sid2, s2 = again.login(PW, "c")
    # Used every day, a session still ends SESSION_MAX after it began.
    while wall.t + SESSION_IDLE - 10 < s2.created + SESSION_MAX:
        wall.t += SESSION_IDLE - 10
        assert again.find_session(sid2) is not None
    wall.t = s2.created + SESSION_MAX + 1
    assert again.find_session(sid2) is None


def test_inactivity_lock_and_unlock(env):
    make, wall, _, timeout, _ = env
    auth = make()
    _, session = setup_done(auth)
    wall.t += 299
    assert not auth.is_locked(session)
    auth.activity(session)
    wall.t += 299
    assert not auth.is_locked(session)
    wall.t += 2
    assert auth.is_locked(session)
    with pytest.raises(Locked):
        auth.require_unlocked(session)
    auth.activity(session)  # activity does not unlock
    assert auth.is_locked(session)
    auth.unlock(session, "c", password=PW)
    assert not auth.is_locked(session)
    timeout["value"] = 0
    wall.t += 10**6 // 2
    assert not auth.is_locked(session)
    auth.lock(session)
    assert auth.is_locked(session) and auth.session_info(session)["locked"]


def test_pin_rules(env):
    make, _, _, _, _ = env
    auth = make()
    _, session = setup_done(auth)
    auth.lock(session)
    with pytest.raises(Conflict):
        auth.unlock(session, "c", pin="1234")  # no PIN yet
    for bad in ("123", "12345", "abcd", 1234, "1234567"):
        with pytest.raises(UsageError):
            auth.set_pin(bad, PW, "c")
    with pytest.raises(WrongSecret):
        auth.set_pin("1234", "wrong-password", "c")
    auth.set_pin("1234", PW, "c")
    with pytest.raises(UsageError):
        auth.unlock(session, "c", pin="1234", password=PW)
    with pytest.raises(UsageError):
        auth.login("", "c")  # the login never takes a PIN: only a password
    for _ in range(MAX_PIN_FAILURES):
        with pytest.raises(WrongSecret):
            auth.unlock(session, "pin-client", pin="9999")
        auth.limiter.success("pin-client")  # keep the IP limiter out of this test
    with pytest.raises(PermissionDenied):
        auth.unlock(session, "c", pin="1234")
    assert not auth.session_info(session)["pin_allowed"]
    auth.unlock(session, "c", password=PW)
    auth.lock(session)
    auth.unlock(session, "c", pin="1234")  # the password unlock reset the PIN counter
    auth.remove_pin()
    assert not auth.state()["has_pin"]


def test_change_password_ends_other_sessions(env):
    make, _, _, _, _ = env
    auth = make()
    sid_a, a = setup_done(auth)
    sid_b, _ = auth.login(PW, "c")
    ended = []
    auth.on_session_end.append(ended.append)
    with pytest.raises(UsageError):
        auth.change_password(a, PW, "short", "c")
    with pytest.raises(WrongSecret):
        auth.change_password(a, "wrong-one!", "New-Password-1", "c")
    sid_new, fresh = auth.change_password(a, PW, "New-Password-1", "c")
    assert auth.find_session(sid_a) is None and auth.find_session(sid_b) is None
    assert auth.find_session(sid_new) is fresh
    assert len(ended) == 2
    auth.login("New-Password-1", "c")
    assert auth.state()["password_source"] == "gui"


def test_login_rate_limit_uses_the_clock(env):
    make, _, mono, _, _ = env
    auth = make()
    setup_done(auth)
    for _ in range(3):
        with pytest.raises(WrongSecret):
            auth.login("wrong-pass", "9.9.9.9")
    with pytest.raises(WrongSecret):
        auth.login("wrong-pass", "9.9.9.9")  # 4th: now wait 1 s
    with pytest.raises(TooManyRequests) as exc:
        auth.login(PW, "9.9.9.9")
    assert exc.value.retry_after == 1
    auth.login(PW, "8.8.8.8")  # other clients are not affected
    mono.t += 1.0
    with pytest.raises(WrongSecret):
        auth.login("wrong-pass", "9.9.9.9")  # 5th: wait 2 s
    mono.t += 2.0
    with pytest.raises(WrongSecret):
        auth.login("wrong-pass", "9.9.9.9")  # 6th: lockout 60 s
    mono.t += 59
    with pytest.raises(TooManyRequests) as exc:
        auth.login(PW, "9.9.9.9")
    assert exc.value.detail == {"retry_after": 1, "locked_out": True}
    mono.t += 1
    auth.login(PW, "9.9.9.9")


def test_config_password(env):
    make, _, _, _, _ = env
    auth = make()
    auth.apply_config_password("From-Config-1")
    assert auth.state()["password_source"] == "config"
    auth.login("From-Config-1", "c")
    auth.apply_config_password("From-Config-1")  # unchanged: nothing happens
    auth.apply_config_password("Changed-In-File-2")
    auth.login("Changed-In-File-2", "c")
    _, s = auth.login("Changed-In-File-2", "c")
    auth.change_password(s, "Changed-In-File-2", "Set-In-GUI-3", "c")
    auth.apply_config_password("Changed-In-File-4")  # the GUI's password wins now
    auth.login("Set-In-GUI-3", "c")
    auth.apply_config_password("short")  # too short: ignored (logged)


def test_tokens_and_reset(env):
    make, _, _, _, tmp_path = env
    auth = make()
    setup_done(auth)
    made = auth.create_token("ci")
    assert made["token"].startswith("apm_") and made["id"].startswith("tk_")
    assert auth.find_token(made["token"]).token_id == made["id"]
    assert auth.find_token("apm_wrong") is None and auth.find_token("x" * 500) is None
    assert "token" not in auth.list_tokens()[0] and auth.list_tokens()[0]["last_used"] is not None
    assert made["token"] not in (tmp_path / "auth.json").read_text()
    with pytest.raises(NotFound):
        auth.revoke_token("tk_nope")
    with pytest.raises(UsageError):
        auth.create_token("x" * 65)
    token = auth.reset()
    assert auth.state()["setup_required"] and token
    assert auth.list_tokens()  # API tokens survive a password reset
    auth.revoke_token("ci")  # by unique name works too
    assert auth.list_tokens() == []


def test_file_is_0600_and_holds_only_hashes(tmp_path):
    auth = AuthManager(str(tmp_path / "auth.json"), lock_timeout=lambda: 0)  # the real argon2id
    token = auth.issue_setup_token()
    sid, _ = auth.setup(token, PW, "c")
    auth.set_pin("4321", PW, "c")
    text = (tmp_path / "auth.json").read_text()
    assert stat.S_IMODE(os.stat(tmp_path / "auth.json").st_mode) == 0o600
    data = json.loads(text)
    assert data["password"]["hash"].startswith("$argon2id$")
    assert data["pin"]["hash"].startswith("$argon2id$")
    for secret in (PW, "4321", sid, token):
        assert secret not in text
    os.chmod(tmp_path / "auth.json", 0o644)
    AuthManager(str(tmp_path / "auth.json"), lock_timeout=lambda: 0)
    assert stat.S_IMODE(os.stat(tmp_path / "auth.json").st_mode) == 0o600


def test_unreadable_file_is_kept_aside(tmp_path):
    (tmp_path / "auth.json").write_text("{not json")
    auth = AuthManager(str(tmp_path / "auth.json"), lock_timeout=lambda: 0, argon=FakeArgon())
    assert auth.state()["setup_required"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("auth.json.corrupt-")]

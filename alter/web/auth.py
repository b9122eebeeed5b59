"""GUI authentication: password + PIN (argon2id), setup tokens, sessions, lock, API tokens.

State lives in `<state_dir>/auth.json` (0600) and holds only digests:
argon2id hashes of the password and PIN, sha256 of session ids, setup
tokens and API tokens.  Nothing secret is ever logged or returned, except a
new API token or setup token, once, to the one who asked for it.

* First run: no password.  A setup token (printed by `apm gui` and in the
  daemon log; single use, 1 h) plus a new password (>= 8 chars) sets it.
  `gui_password` in apm.conf works too (hashed on load, with a warning).
* Login with the password -> a session: random id in an HttpOnly,
  SameSite=Strict cookie, plus a CSRF token the page sends back in a header
  on every mutating request.  Sessions end after 24 h idle or 7 days.
* Lock: after `security.lock_timeout` seconds without activity (mutating
  requests and POST /auth/activity; not GETs or the stream), or on request.
  A locked session may only unlock (PIN or password), lock, log out or ask
  its status.  The PIN unlocks a locked session; it never logs in fresh, and
  5 wrong PINs disable it for that session.
* Login, setup and unlock attempts are rate-limited per client (ratelimit.py).
* Argon2 runs on the HTTP threads (at most 2 at once), never on the loop.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from alter.errors import Conflict, PermissionDenied, UsageError
from alter.web import tokens
from alter.web.errors import Locked
from alter.web.message import Principal
from alter.web.ratelimit import RateLimiter
from alter.web.store import JsonFile

log = logging.getLogger("apm.web")

SESSION_IDLE = 24 * 3600.0
SESSION_MAX = 7 * 24 * 3600.0
MAX_SESSIONS = 64
SETUP_TTL = 3600.0
MAX_SETUP_TOKENS = 5
MAX_PIN_FAILURES = 5
PERSIST_EVERY = 60.0  # seconds: last-seen / last-used times are saved at most this often
MIN_PASSWORD = 8
MAX_SECRET = 1024
_PIN_RE = re.compile(r"^(\d{4}|\d{6})$")


class WrongSecret(PermissionDenied):
    """Wrong password, PIN or setup token (403: the session, if any, is still fine)."""

    kind = "wrong_secret"


class Session:
    __slots__ = ("key", "csrf", "created", "last_seen", "last_activity", "locked", "pin_failures")

    def __init__(self, key: str, csrf: str, now: float) -> None:
        self.key = key  # sha256 of the cookie value
        self.csrf = csrf
        self.created = now
        self.last_seen = now
        self.last_activity = now
        self.locked = False
        self.pin_failures = 0

    def stored(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def load(cls, data: Any) -> Optional[Session]:
        if not isinstance(data, dict) or not isinstance(data.get("key"), str) or not isinstance(data.get("csrf"), str):
            return None
        try:
            s = cls(data["key"], data["csrf"], float(data["created"]))
            s.last_seen = float(data.get("last_seen") or s.created)
            s.last_activity = float(data.get("last_activity") or s.created)
            s.locked = bool(data.get("locked"))
            s.pin_failures = int(data.get("pin_failures") or 0)
        except (KeyError, TypeError, ValueError):
            return None
        return s


def check_password_policy(password: Any) -> str:
    if not isinstance(password, str):
        raise UsageError("the password must be a string")
    if len(password) < MIN_PASSWORD:
        raise UsageError(
            f"the password is too short ({len(password)} characters)", hint=f"use at least {MIN_PASSWORD} characters"
        )
    if len(password) > MAX_SECRET:
        raise UsageError(f"the password is too long ({len(password)} characters)", hint=f"at most {MAX_SECRET}")
    if not password.strip():
        raise UsageError("the password cannot be only spaces")
    return password


def check_pin_policy(pin: Any) -> str:
    if not isinstance(pin, str) or not _PIN_RE.match(pin):
        raise UsageError("the PIN must be 4 or 6 digits", hint='send it as a string, e.g. "4821"')
    return pin


class Argon2:
    """argon2id hashing (argon2-cffi's RFC 9106 low-memory profile), at most 2 at once."""

    def __init__(self, concurrency: int = 2) -> None:
        self._sem = threading.BoundedSemaphore(concurrency)
        self._hasher: Any = None

    def _ph(self) -> Any:
        if self._hasher is None:
            from alter.native import ensure_native

            ensure_native()
            from argon2 import PasswordHasher, Type

            self._hasher = PasswordHasher(type=Type.ID)
        return self._hasher

    def hash(self, secret: str) -> str:
        with self._sem:
            return str(self._ph().hash(secret))

    def verify(self, hashed: str, secret: str) -> bool:
        ph = self._ph()
        from argon2.exceptions import InvalidHashError, VerificationError

        with self._sem:
            try:
                return bool(ph.verify(hashed, secret))
            except (VerificationError, InvalidHashError):
                return False


class AuthManager:
    def __init__(
        self,
        path: str,
        lock_timeout: Callable[[], int],
        limiter: Optional[RateLimiter] = None,
        wall: Callable[[], float] = time.time,
        argon: Optional[Argon2] = None,
    ) -> None:
        self.file = JsonFile(path)
        self.lock_timeout = lock_timeout
        self.limiter = limiter or RateLimiter()
        self.wall = wall
        self.argon = argon or Argon2()
        self._lock = threading.RLock()
        self._last_save = 0.0
        self._dirty = False
        self.on_session_end: List[Callable[[str], None]] = []  # called with the session key (stream closes)
        data = self.file.load()
        pw = data.get("password")
        self.password: Optional[Dict[str, Any]] = (
            pw if isinstance(pw, dict) and isinstance(pw.get("hash"), str) else None
        )
        pin = data.get("pin")
        self.pin: Optional[Dict[str, Any]] = pin if isinstance(pin, dict) and isinstance(pin.get("hash"), str) else None
        self.setup_tokens: List[Dict[str, Any]] = [
            t for t in data.get("setup_tokens") or [] if isinstance(t, dict) and isinstance(t.get("hash"), str)
        ]
        self.tokens = tokens.BearerTokens(data.get("tokens"))
        self.sessions: Dict[str, Session] = {}
        now = self.wall()
        for raw in data.get("sessions") or []:
            s = Session.load(raw)
            if s is not None and not self._expired(s, now):
                self.sessions[s.key] = s

    # ------------------------------------------------------------------ persistence

    def _save(self) -> None:
        data = {
            "version": 1,
            "password": self.password,
            "pin": self.pin,
            "setup_tokens": self.setup_tokens,
            "tokens": self.tokens.stored(),
            "sessions": [s.stored() for s in self.sessions.values()],
        }
        try:
            self.file.save(data)
        except OSError as exc:
            log.error("cannot save %s: %s", self.file.path, exc.strerror)
            return
        self._dirty = False
        self._last_save = time.monotonic()

    def _touched(self) -> None:
        self._dirty = True
        if time.monotonic() - self._last_save > PERSIST_EVERY:
            self._save()

    def flush(self) -> None:
        with self._lock:
            if self._dirty:
                self._save()

    # ------------------------------------------------------------------ state

    @property
    def password_set(self) -> bool:
        return self.password is not None

    def state(self) -> Dict[str, Any]:
        with self._lock:
            return {
                "password_set": self.password is not None,
                "password_source": self.password.get("source") if self.password else None,
                "has_pin": self.pin is not None,
                "setup_required": self.password is None,
            }

    # ------------------------------------------------------------------ setup tokens

    def issue_setup_token(self) -> str:
        """A fresh single-use setup token (1 h); Conflict once a password exists."""
        with self._lock:
            if self.password is not None:
                raise Conflict(
                    "the GUI password is already set, so there is no setup token",
                    hint="log in with the password, or `apm gui reset-password` to start over",
                )
            now = self.wall()
            token = tokens.new_setup_token()
            live = [t for t in self.setup_tokens if float(t.get("expires") or 0) > now]
            live.append({"hash": tokens.digest(token), "expires": now + SETUP_TTL})
            self.setup_tokens = live[-MAX_SETUP_TOKENS:]
            self._save()
            return token

    def setup(self, setup_token: Any, password: Any, client: str) -> Tuple[str, Session]:
        check_password_policy(password)
        if not isinstance(setup_token, str) or not setup_token.strip() or len(setup_token) > 100:
            raise UsageError("the setup token is required", hint="`apm gui` on the server prints it")
        self.limiter.begin(client)
        try:
            with self._lock:
                self._check_no_password()
                want = tokens.digest(tokens.normalize_setup_token(setup_token))
                now = self.wall()
                match = [
                    t
                    for t in self.setup_tokens
                    if float(t.get("expires") or 0) > now and tokens.same(str(t["hash"]), want)
                ]
            if not match:
                self.limiter.failure(client)
                raise WrongSecret(
                    "the setup token is wrong, used or expired",
                    hint="run `apm gui` on the server for a fresh one (valid 1 h, single use)",
                )
            hashed = self.argon.hash(password)
            with self._lock:
                self._check_no_password()
                self.password = {"hash": hashed, "source": "setup", "changed_at": self.wall()}
                self.setup_tokens = []
                self.limiter.success(client)
                sid, session = self._new_session()
                self._save()
            log.info("GUI password set through the setup page (from %s)", client)
            return sid, session
        finally:
            self.limiter.end(client)

    def _check_no_password(self) -> None:
        if self.password is not None:
            raise Conflict(
                "the GUI password is already set: the setup token is no longer valid",
                hint="log in with the password, or `apm gui reset-password` on the server to start over",
            )

    def reset(self) -> str:
        """Forget the password, PIN and every session; returns a fresh setup token (API tokens stay)."""
        with self._lock:
            self.password = None
            self.pin = None
            keys = list(self.sessions)
            self.sessions.clear()
            self.setup_tokens = []
            self._save()
            token = self.issue_setup_token()
        for key in keys:
            self._ended(key)
        return token

    def apply_config_password(self, plain: Optional[str]) -> None:
        """`gui_password` from apm.conf: hash it (once) unless the password was changed in the GUI since."""
        if not plain:
            return
        log.warning(
            "gui_password is set in the config file in plain text; set the password in the GUI instead "
            "(Settings → Security) and remove it from the file"
        )
        with self._lock:
            current = dict(self.password) if self.password else None
        if current is not None and self.argon.verify(str(current["hash"]), plain):
            return
        if current is not None and current.get("source") != "config":
            log.warning("gui_password in the config file is ignored: the password was changed in the GUI since")
            return
        try:
            check_password_policy(plain)
        except UsageError as exc:
            log.error("gui_password in the config file is not used: %s", exc.message)
            return
        hashed = self.argon.hash(plain)
        with self._lock:
            self.password = {"hash": hashed, "source": "config", "changed_at": self.wall()}
            self.setup_tokens = []
            keys = list(self.sessions)
            self.sessions.clear()
            self._save()
        for key in keys:
            self._ended(key)

    # ------------------------------------------------------------------ sessions

    def _new_session(self) -> Tuple[str, Session]:
        sid = tokens.new_session_id()
        session = Session(tokens.digest(sid), tokens.new_csrf(), self.wall())
        if len(self.sessions) >= MAX_SESSIONS:
            oldest = min(self.sessions.values(), key=lambda s: s.last_seen)
            del self.sessions[oldest.key]
        self.sessions[session.key] = session
        return sid, session

    def _expired(self, s: Session, now: float) -> bool:
        return now - s.last_seen > SESSION_IDLE or now - s.created > SESSION_MAX

    def _ended(self, key: str) -> None:
        for cb in list(self.on_session_end):
            try:
                cb(key)
            except Exception:
                log.exception("session-end callback failed")

    def login(self, password: Any, client: str) -> Tuple[str, Session]:
        if not isinstance(password, str) or not password or len(password) > MAX_SECRET:
            raise UsageError("the password is required", hint='send {"password": "..."}')
        self.limiter.begin(client)
        try:
            with self._lock:
                if self.password is None:
                    raise Conflict(
                        "no GUI password is set yet", hint="finish the first-run setup with the token `apm gui` prints"
                    )
                hashed = str(self.password["hash"])
            if not self.argon.verify(hashed, password):
                wait = self.limiter.failure(client)
                raise WrongSecret(
                    "wrong password", hint=f"wait {int(wait + 0.999)} s before the next attempt" if wait else ""
                )
            self.limiter.success(client)
            with self._lock:
                sid, session = self._new_session()
                self._save()
            return sid, session
        finally:
            self.limiter.end(client)

    def find_session(self, cookie: str) -> Optional[Session]:
        if not cookie or len(cookie) > 200:
            return None
        key = tokens.digest(cookie)
        with self._lock:
            session = self.sessions.get(key)
            if session is None:
                return None
            now = self.wall()
            if self._expired(session, now):
                del self.sessions[key]
                self._touched()
                return None
            session.last_seen = now
            self._touched()
            return session

    def find_token(self, bearer: str) -> Optional[Principal]:
        with self._lock:
            item = self.tokens.find(bearer)
            if item is None:
                return None
            item["last_used"] = self.wall()
            self._touched()
            return Principal("token", token_id=item["id"], name=item["name"])

    def is_locked(self, session: Session) -> bool:
        with self._lock:
            if session.locked:
                return True
            timeout = self.lock_timeout()
            if timeout and self.wall() - session.last_activity > timeout:
                session.locked = True
                self._save()
                return True
            return False

    def alive(self, session: Session) -> bool:
        with self._lock:
            return self.sessions.get(session.key) is session and not self._expired(session, self.wall())

    def require_unlocked(self, session: Session) -> None:
        if self.is_locked(session):
            raise Locked("the session is locked", hint="unlock it with your PIN or password")

    def activity(self, session: Session) -> None:
        with self._lock:
            if not session.locked:
                session.last_activity = self.wall()
                self._touched()

    def lock(self, session: Session) -> None:
        with self._lock:
            session.locked = True
            self._save()

    def logout(self, session: Session) -> None:
        with self._lock:
            self.sessions.pop(session.key, None)
            self._save()
        self._ended(session.key)

    def session_info(self, session: Session) -> Dict[str, Any]:
        locked = self.is_locked(session)
        with self._lock:
            timeout = self.lock_timeout()
            return {
                "locked": locked,
                "csrf": session.csrf,
                "created": session.created,
                "expires": min(session.created + SESSION_MAX, session.last_seen + SESSION_IDLE),
                "lock_timeout": timeout,
                "locks_at": None if locked or not timeout else session.last_activity + timeout,
                "pin_allowed": self.pin is not None and session.pin_failures < MAX_PIN_FAILURES,
            }

    def unlock(self, session: Session, client: str, pin: Any = None, password: Any = None) -> None:
        if (pin is None) == (password is None):
            raise UsageError(
                "unlock needs either a pin or a password", hint='send {"pin": "1234"} or {"password": "..."}'
            )
        if pin is not None:
            check_pin_policy(pin)
        elif not isinstance(password, str) or not password or len(password) > MAX_SECRET:
            raise UsageError("the password must be a non-empty string")
        self.limiter.begin(client)
        try:
            with self._lock:
                if pin is not None:
                    if self.pin is None:
                        raise Conflict(
                            "no PIN is set", hint="unlock with the password, or set a PIN in Settings → Security"
                        )
                    if session.pin_failures >= MAX_PIN_FAILURES:
                        raise PermissionDenied(
                            f"the PIN is disabled for this session after {MAX_PIN_FAILURES} wrong attempts",
                            hint="unlock with the password",
                        )
                    hashed, secret = str(self.pin["hash"]), str(pin)
                else:
                    assert self.password is not None
                    hashed, secret = str(self.password["hash"]), str(password)
            if not self.argon.verify(hashed, secret):
                wait = self.limiter.failure(client)
                with self._lock:
                    if pin is not None:
                        session.pin_failures += 1
                    self._save()
                what = "PIN" if pin is not None else "password"
                raise WrongSecret(
                    f"wrong {what}", hint=f"wait {int(wait + 0.999)} s before the next attempt" if wait else ""
                )
            self.limiter.success(client)
            with self._lock:
                session.locked = False
                session.pin_failures = 0
                session.last_activity = self.wall()
                self._save()
        finally:
            self.limiter.end(client)

    # ------------------------------------------------------------------ changing secrets

    def _verify_password(self, password: Any, client: str) -> None:
        if not isinstance(password, str) or not password or len(password) > MAX_SECRET:
            raise UsageError("the current password is required", hint='send {"current": "..."}')
        self.limiter.begin(client)
        try:
            with self._lock:
                if self.password is None:
                    raise Conflict("no GUI password is set yet")
                hashed = str(self.password["hash"])
            if not self.argon.verify(hashed, password):
                self.limiter.failure(client)
                raise WrongSecret("the current password is wrong")
            self.limiter.success(client)
        finally:
            self.limiter.end(client)

    def change_password(self, session: Session, current: Any, new: Any, client: str) -> Tuple[str, Session]:
        """Set a new password; every other session ends and this one gets a new id."""
        check_password_policy(new)
        self._verify_password(current, client)
        hashed = self.argon.hash(new)
        with self._lock:
            self.password = {"hash": hashed, "source": "gui", "changed_at": self.wall()}
            ended = [k for k in self.sessions if k != session.key]
            self.sessions = {}
            sid, fresh = self._new_session()
            ended.append(session.key)
            self._save()
        for key in ended:
            self._ended(key)
        log.info("GUI password changed (from %s)", client)
        return sid, fresh

    def set_pin(self, pin: Any, password: Any, client: str) -> None:
        check_pin_policy(pin)
        self._verify_password(password, client)
        hashed = self.argon.hash(pin)
        with self._lock:
            self.pin = {"hash": hashed, "set_at": self.wall()}
            for s in self.sessions.values():
                s.pin_failures = 0
            self._save()

    def remove_pin(self) -> None:
        with self._lock:
            self.pin = None
            self._save()

    # ------------------------------------------------------------------ API tokens

    def create_token(self, name: str) -> Dict[str, Any]:
        with self._lock:
            item = self.tokens.create(name)
            self._save()
        log.info("API token %s (%s) created", item["id"], item["name"])
        return item

    def list_tokens(self) -> List[Dict[str, Any]]:
        with self._lock:
            return self.tokens.listing()

    def revoke_token(self, token_id: str) -> Dict[str, Any]:
        with self._lock:
            item = self.tokens.revoke(token_id)
            self._save()
        log.info("API token %s (%s) revoked", item["id"], item["name"])
        self._ended("token:" + item["id"])
        return item

"""Helpers for the web API tests: a GUI-enabled daemon, an HTTP client with a cookie, an SSE reader.

def test_x(apm):
    gui = start_gui(apm)                 # free port, setup token from `apm gui`
    api = gui.login()                    # setup (first time) + session cookie + CSRF header
    r = api.get("/api/v1/workers"); assert r.status == 200
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

PASSWORD = "Correct-Horse-42"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Resp:
    def __init__(self, status: int, headers: List[Tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> Optional[str]:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def headers_named(self, name: str) -> List[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    @property
    def error(self) -> Dict[str, Any]:
        return self.json()["error"]

    def __repr__(self) -> str:
        return f"Resp({self.status}, {self.body[:300]!r})"


class Api:
    """An HTTP client that keeps the session cookie and sends the CSRF header on changes."""

    def __init__(self, port: int, tls: Optional[ssl.SSLContext] = None, host: str = "127.0.0.1") -> None:
        self.port = port
        self.tls = tls
        self.host = host
        self.cookie = ""
        self.csrf = ""
        self.token = ""
        self.log: List[bytes] = []  # every response body, for the secrets test

    def conn(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        if self.tls is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.tls)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Optional[Dict[str, str]] = None,
        raw: Optional[bytes] = None,
        csrf: bool = True,
        cookie: bool = True,
        timeout: float = 60.0,
    ) -> Resp:
        h: Dict[str, str] = {}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if cookie and self.cookie:
            h["Cookie"] = "apm_session=" + self.cookie
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if csrf and self.csrf and method not in ("GET", "HEAD", "OPTIONS"):
            h["X-CSRF-Token"] = self.csrf
        h.update(headers or {})
        c = self.conn(timeout)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            resp = Resp(r.status, r.getheaders(), r.read())
        finally:
            c.close()
        self.log.append(resp.body)
        for value in resp.headers_named("Set-Cookie"):
            if value.startswith("apm_session="):
                self.cookie = value.split(";", 1)[0].split("=", 1)[1]
        if resp.status == 200 and path.startswith("/api/v1/auth/"):
            try:
                session = resp.json().get("session")
            except (ValueError, AttributeError):
                session = None
            if isinstance(session, dict) and session.get("csrf"):
                self.csrf = session["csrf"]
        return resp

    def get(self, path: str, **kw: Any) -> Resp:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Resp:
        return self.request("POST", path, body if body is not None else {}, **kw)

    def patch(self, path: str, body: Any, **kw: Any) -> Resp:
        return self.request("PATCH", path, body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Resp:
        return self.request("PUT", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Resp:
        return self.request("DELETE", path, **kw)


class Gui:
    def __init__(self, apm: Any, port: int, tls: Optional[ssl.SSLContext], start: Dict[str, Any]) -> None:
        self.apm = apm
        self.port = port
        self.tls = tls
        self.start = start

    def api(self) -> Api:
        return Api(self.port, self.tls)

    def setup_token(self) -> str:
        return str(self.apm.json("gui", "setup-token")["setup_token"])

    def login(self, password: str = PASSWORD) -> Api:
        """A logged-in client (runs the first-run setup when no password exists yet)."""
        api = self.api()
        status = api.get("/api/v1/auth/status").json()
        if status["setup_required"]:
            r = api.post("/api/v1/auth/setup", {"setup_token": self.setup_token(), "password": password})
        else:
            r = api.post("/api/v1/auth/login", {"password": password})
        assert r.status == 200, r
        return api

    def daemon_log(self) -> str:
        with open(os.path.join(self.apm.home, "apm.log"), encoding="utf-8", errors="replace") as f:
            return f.read()


def start_gui(apm: Any, env: Optional[Dict[str, str]] = None, tls: Optional[ssl.SSLContext] = None) -> Gui:
    """Give the test's daemon a GUI on a free port (set before the daemon starts) and start it."""
    port = free_port()
    apm.env["APM_GUI_PORT"] = str(port)
    apm.env.setdefault("APM_GUI_LOGIN_LIMITS", "100,0,1000,1")  # tests of the limiter set their own
    apm.env.update(env or {})
    start = apm.json("gui")
    return Gui(apm, port, tls, start)


class SseReader:
    """Reads one live stream in a thread; `wait(event, predicate)` returns the first matching data."""

    def __init__(self, api: Api, path: str = "/api/v1/stream") -> None:
        self.events: List[Tuple[str, Any]] = []
        self.raw: List[bytes] = []
        self.status = 0
        self.done = threading.Event()
        self._cond = threading.Condition()
        self.conn = api.conn(timeout=60)
        headers = {"Cookie": "apm_session=" + api.cookie} if api.cookie else {}
        if api.token:
            headers["Authorization"] = "Bearer " + api.token
        self.conn.request("GET", path, headers=headers)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.content_type = self.resp.getheader("Content-Type")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        event, data = "message", []
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                self.raw.append(line)
                text = line.decode("utf-8").rstrip("\n")
                if text.startswith("event: "):
                    event = text[7:]
                elif text.startswith("data: "):
                    data.append(text[6:])
                elif text == "":
                    if data:
                        with self._cond:
                            self.events.append((event, json.loads("\n".join(data))))
                            self._cond.notify_all()
                    event, data = "message", []
        except (OSError, ValueError):
            pass
        finally:
            self.done.set()
            with self._cond:
                self._cond.notify_all()

    def wait(self, event: str, predicate: Any = None, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for kind, data in self.events[seen:]:
                    if kind == event and (predicate is None or predicate(data)):
                        return data
                seen = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0 or (self.done.is_set() and seen == len(self.events)):
                    kinds = [k for k, _ in self.events]
                    raise AssertionError(f"no {event!r} event matched within {timeout}s; got {kinds[-30:]}")
                self._cond.wait(min(left, 0.5))

    def close(self) -> None:
        try:
            self.conn.sock and self.conn.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
        except OSError:
            pass
        self.conn.close()

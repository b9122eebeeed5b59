"""A fake apm daemon for the CLI tests, plus the `cli` fixture that drives main().

FakeDaemon serves a unique abstract socket from a thread, records every
request and answers from canned replies:

    daemon.reply("list", {"workers": []})
    daemon.reply("start", error=NotFound("no worker named 'x'"))
    daemon.reply("wait", result, events=[("state", {...})])
    daemon.reply("list", raw=b"garbage\\n")              # sent as-is, then closed
    daemon.reply("list", events=[...], close=True)        # closed before the reply

Run as a script (`python3 test_cli_fakedaemon.py daemon --detach`) it serves
APM_SOCKET in the foreground until asked to `exit`: the autostart tests use it
as the daemon launcher.
"""

from __future__ import annotations

import io
import json
import os
import select
import socket
import sys
import threading
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

if __name__ != "__main__":
    import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from alter.errors import ApmError  # noqa: E402


class Reply:
    def __init__(
        self,
        result: Any = None,
        error: Any = None,
        events: Tuple[Tuple[str, Any], ...] = (),
        raw: Optional[bytes] = None,
        close: bool = False,
        func: Optional[Callable[[Dict[str, Any]], Any]] = None,
    ) -> None:
        self.result = result
        self.error = error
        self.events = events
        self.raw = raw
        self.close = close
        self.func = func


class FakeDaemon:
    def __init__(self, name: Optional[str] = None) -> None:
        self.name = name or "apm-test-cli-" + uuid.uuid4().hex[:12]
        self.requests: List[Dict[str, Any]] = []
        self.replies: Dict[str, Reply] = {}
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind("\0" + self.name)
        self.sock.listen(16)
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    # ---------------------------------------------------------------- setup

    def reply(self, cmd: str, result: Any = None, **kw: Any) -> None:
        self.replies[cmd] = Reply(result, **kw)

    def cmds(self) -> List[str]:
        return [r.get("cmd") for r in self.requests]

    def last(self, cmd: Optional[str] = None) -> Dict[str, Any]:
        for r in reversed(self.requests):
            if cmd is None or r.get("cmd") == cmd:
                return r
        raise AssertionError(f"no {cmd} request recorded (got {self.cmds()})")

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        os.write(self._wake_w, b"x")
        if threading.current_thread() is not self.thread:
            self.thread.join(2)

    # ---------------------------------------------------------------- serving

    def _serve(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self.sock, self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                conn, _ = self.sock.accept()
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()
        finally:
            self.sock.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _handle(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            conn.settimeout(5)
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    req = json.loads(line)
                    self.requests.append(req)
                    try:
                        if not self._answer(conn, req):
                            return
                    except OSError:  # the client went away (timeouts, peer-check tests)
                        return

    def _answer(self, conn: socket.socket, req: Dict[str, Any]) -> bool:
        msg_id = req.get("id")
        cmd = req.get("cmd", "")
        spec = self.replies.get(cmd)
        if spec is None:
            if cmd in ("version", "ping"):
                spec = Reply({"version": "9.9.9", "python": "3.11.0", "pid": 4242})
            else:
                spec = Reply(
                    error={
                        "type": "UsageError",
                        "kind": "usage",
                        "message": f"unknown command {cmd!r}",
                        "hint": "",
                        "exit": 2,
                    }
                )
        if spec.raw is not None:
            conn.sendall(spec.raw)
            return False
        for kind, data in spec.events:
            conn.sendall(_line({"id": msg_id, "event": kind, "data": data}))
        if spec.close:
            return False
        error = spec.error
        result = spec.func(req) if spec.func else spec.result
        if isinstance(error, ApmError):
            error = error.to_dict()
        if error is not None:
            conn.sendall(_line({"id": msg_id, "ok": False, "error": error}))
        else:
            conn.sendall(_line({"id": msg_id, "ok": True, "result": result}))
        if cmd == "exit":  # like the real daemon: stop listening after the reply
            self._stop.set()
            os.write(self._wake_w, b"x")
            return False
        return True


def _line(msg: Dict[str, Any]) -> bytes:
    return json.dumps(msg).encode() + b"\n"


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code = code
        self.out = out
        self.err = err

    def json(self) -> Any:
        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out!r}, err={self.err!r})"


def run_cli(socket_name: str, *args: str, env: Optional[Dict[str, str]] = None, tty: bool = False) -> CliResult:
    """main(args) with captured streams and an env pointing at `socket_name`."""
    from alter.cli.context import Ctx
    from alter.cli.main import main

    full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "APM_COLOR", "COLUMNS", "APM_HOME")}
    full_env["APM_SOCKET"] = socket_name
    full_env.update(env or {})

    class Stream(io.StringIO):
        encoding = "utf-8"

        def isatty(self) -> bool:
            return tty

    out, err = Stream(), Stream()
    code = main(list(args), Ctx(out=out, err=err, env=full_env))
    return CliResult(code, out.getvalue(), err.getvalue())


NO_LAUNCH = [sys.executable, "-c", "import sys; sys.stderr.write('launch disabled in tests\\n'); sys.exit(3)"]

if __name__ != "__main__":

    @pytest.fixture
    def daemon(monkeypatch: Any):
        """A FakeDaemon; autostart is disabled (a launch fails at once) so no real daemon ever starts."""
        import alter.control.client as client_mod

        monkeypatch.setattr(client_mod, "launcher_command", lambda argv0=None: list(NO_LAUNCH))
        fake = FakeDaemon()
        yield fake
        fake.close()

    @pytest.fixture
    def cli(daemon: FakeDaemon):
        def call(*args: str, **kw: Any) -> CliResult:
            return run_cli(daemon.name, *args, **kw)

        return call

    def test_fake_daemon_answers_version(daemon: FakeDaemon) -> None:
        from alter.control.client import Client
        from alter.paths import resolve

        client = Client(resolve({"APM_SOCKET": daemon.name}), autostart=False)
        assert client.call("version")["version"] == "9.9.9"
        assert daemon.cmds() == ["version"]


def _serve_forever() -> int:
    """Script mode: the autostart tests' daemon.  Serves APM_SOCKET until `exit`."""
    name = os.environ["APM_SOCKET"]
    fake = FakeDaemon(name)
    fake.reply("list", {"workers": [], "served_by": os.getpid()})
    fake.reply("exit", {"stopped": []})
    fake._stop.wait(60)
    fake.close()
    return 0


if __name__ == "__main__":
    sys.exit(_serve_forever())


# --------------------------------------------------------------------------- sample WorkerStatus replies

NOW = 1763731200.0


def instance(
    index: int,
    pid: Optional[int],
    status: str = "running",
    uptime: Optional[float] = 12.5,
    cpu: float = 0.3,
    memory: int = 31457280,
    clean: int = 0,
    error: int = 0,
    last_exit: Optional[Dict[str, Any]] = None,
    next_start_at: Optional[float] = None,
    port: Optional[int] = None,
) -> Dict[str, Any]:
    return {
        "index": index,
        "pid": pid,
        "status": status,
        "started_at": NOW - uptime if (pid and uptime is not None) else None,
        "uptime": uptime if pid else None,
        "cpu": cpu if pid else None,
        "memory": memory if pid else None,
        "restarts": {"clean": clean, "error": error},
        "last_exit": last_exit,
        "next_start_at": next_start_at,
        "port": port,
    }


def worker(
    name: str,
    status: str = "running",
    instances: Optional[List[Dict[str, Any]]] = None,
    namespace: str = "default",
    config: Optional[Dict[str, Any]] = None,
    clean: int = 0,
    error: int = 0,
    wanted: Optional[int] = None,
    origin: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    instances = instances if instances is not None else [instance(1, 4242)]
    return {
        "name": name,
        "namespace": namespace,
        "status": status,
        "enabled": status != "disabled",
        "instances_wanted": wanted if wanted is not None else len(instances),
        "instances_running": sum(1 for i in instances if i.get("pid")),
        "origin": origin or {"kind": "cli", "file": None},
        "restarts": {"clean": clean, "error": error},
        "config": config if config is not None else {"exec": "node", "params": ["server.js"]},
        "instances": instances,
    }


def sample_workers() -> List[Dict[str, Any]]:
    return [
        worker(
            "api",
            instances=[
                instance(1, 4242, uptime=192.0, cpu=0.3, memory=31457280, error=1),
                instance(2, 4243, uptime=7500.0, cpu=1.2, memory=41943040),
            ],
            error=1,
            config={"exec": "node", "params": ["server.js"], "instances": 2},
        ),
        worker(
            "jobs-nightly-report-generator",
            status="backoff",
            namespace="batch",
            instances=[
                instance(
                    1,
                    None,
                    status="backoff",
                    error=5,
                    last_exit={"code": 1, "signal": None, "at": NOW - 2, "runtime_ms": 90},
                    next_start_at=NOW + 1.5,
                )
            ],
            error=5,
            config={"exec": "python3"},
        ),
        worker(
            "web", instances=[instance(i, 5000 + i, uptime=360000.0 + i, cpu=2.0, memory=1024**3) for i in range(1, 6)]
        ),
        worker("old", status="stopped", instances=[instance(1, None, status="stopped")]),
        worker("off", status="disabled", instances=[], wanted=1),
    ]

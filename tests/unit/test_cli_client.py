"""alter.control.client: daemon selection, peer-uid check, bad replies, autostart."""
# ruff: noqa: F811  (pytest fixtures imported from test_cli_fakedaemon are used as arguments)

from __future__ import annotations

import os
import socket
import struct
import sys
import uuid
import zipfile

import pytest

import alter.control.client as client_mod
from alter.control.client import Client, DaemonNotRunning, launcher_command, select_paths
from alter.errors import DaemonUnavailable, NotFound, PermissionDenied, ProtocolError
from alter.paths import Paths, resolve
from tests.unit.test_cli_fakedaemon import FakeDaemon, cli, daemon, run_cli, worker  # noqa: F401

FAKE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_cli_fakedaemon.py")


def _paths(name: str, log: str = "/nonexistent/apm.log") -> Paths:
    return Paths(
        config_file="/nonexistent/apm.conf",
        state_dir="/nonexistent",
        log_dir="/nonexistent/logs",
        daemon_log=log,
        socket_name=name,
        system=False,
    )


def _unique() -> str:
    return "apm-test-cli-" + uuid.uuid4().hex[:12]


# --------------------------------------------------------------------------- requests


def test_call_returns_result_and_events(daemon: FakeDaemon) -> None:
    daemon.reply("wait", {"ok": 1}, events=(("state", {"status": "starting"}), ("state", {"status": "running"})))
    client = Client(_paths(daemon.name), autostart=False)
    seen = []
    assert client.call("wait", {"name": "a"}, on_event=lambda kind, data: seen.append((kind, data))) == {"ok": 1}
    assert seen == [("state", {"status": "starting"}), ("state", {"status": "running"})]
    gen = client.stream("wait", {"name": "a"})
    assert [e["data"]["status"] for e in gen] == ["starting", "running"]


def test_stream_generator_returns_the_result(daemon: FakeDaemon) -> None:
    daemon.reply("wait", {"done": True}, events=(("state", {}),))
    gen = Client(_paths(daemon.name), autostart=False).stream("wait")
    assert next(gen) == {"event": "state", "data": {}}
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == {"done": True}


def test_error_reply_is_rebuilt(daemon: FakeDaemon) -> None:
    daemon.reply("stop", error=NotFound("no worker named 'x'", hint="apm list"))
    with pytest.raises(NotFound) as info:
        Client(_paths(daemon.name), autostart=False).call("stop", {"name": "x"})
    assert info.value.message == "no worker named 'x'" and info.value.hint == "apm list"
    assert info.value.exit_code == 3


def test_start_failed_detail_is_kept(daemon: FakeDaemon) -> None:
    daemon.reply("start", error={"type": "StartFailed", "message": "m", "exit": 7, "detail": {"stderr": "boom"}})
    with pytest.raises(Exception) as info:
        Client(_paths(daemon.name), autostart=False).call("start")
    assert info.value.detail == {"stderr": "boom"}


@pytest.mark.parametrize(
    ("raw", "error", "text"),
    [
        (b"garbage\n", ProtocolError, "the daemon sent a malformed reply to `list`"),
        (b"[1, 2]\n", ProtocolError, "expected a JSON object"),
        (b'{"id": 1}\n', ProtocolError, "unexpected message in reply to `list`"),
        (b'{"id": 1, "ok": false, "error": "nope"}\n', ProtocolError, "unexpected message"),
        (b'{"id": 1, "ok": tr', DaemonUnavailable, "closed the connection in the middle of a message"),
        (b"", DaemonUnavailable, "closed the connection without answering (request `list`)"),
        (b"\xff\xfe\n", ProtocolError, "malformed reply"),
    ],
)
def test_malformed_replies(daemon: FakeDaemon, raw: bytes, error, text: str) -> None:
    daemon.reply("list", raw=raw)
    with pytest.raises(error) as info:
        Client(_paths(daemon.name), autostart=False).call("list")
    assert text in info.value.message


def test_closed_mid_stream(daemon: FakeDaemon) -> None:
    daemon.reply("wait", events=(("state", {"status": "starting"}),), close=True)
    events = []
    with pytest.raises(DaemonUnavailable) as info:
        Client(_paths(daemon.name), autostart=False).call("wait", on_event=lambda k, d: events.append(k))
    assert events == ["state"]
    assert "closed the connection without answering (request `wait`)" in info.value.message


@pytest.mark.parametrize(
    ("raw", "code", "text"),
    [
        (b"garbage\n", 8, "malformed reply"),
        (b'{"id": 1, "ok"', 6, "in the middle of a message"),
        (b"", 6, "without answering"),
    ],
)
def test_malformed_replies_through_the_cli(cli, daemon: FakeDaemon, raw: bytes, code: int, text: str) -> None:
    daemon.reply("list", raw=raw)
    r = cli("list")
    assert r.code == code
    assert text in r.err and "Traceback" not in r.err
    assert len(r.err.splitlines()) == 2  # message + hint


def test_silent_daemon_times_out(daemon: FakeDaemon) -> None:
    import threading

    release = threading.Event()
    daemon.reply("list", func=lambda req: release.wait(5) and None)
    with pytest.raises(DaemonUnavailable) as info:
        Client(_paths(daemon.name), autostart=False, timeout=0.2).call("list")
    release.set()
    assert "did not answer `list` in time" in info.value.message


# --------------------------------------------------------------------------- peer check


def test_peer_uid_of_another_user_is_refused(daemon: FakeDaemon, monkeypatch) -> None:
    fake = struct.pack("3i", 999, 4321, 4321)
    monkeypatch.setattr(socket.socket, "getsockopt", lambda self, *a: fake)
    with pytest.raises(PermissionDenied) as info:
        Client(_paths(daemon.name), autostart=False).call("list")
    assert "uid 4321" in info.value.message and "pid 999" in info.value.message
    assert daemon.requests == []  # nothing was sent to the squatter


def test_peer_uid_refusal_through_the_cli(cli, daemon: FakeDaemon, monkeypatch) -> None:
    monkeypatch.setattr(socket.socket, "getsockopt", lambda self, *a: struct.pack("3i", 1, 4321, 4321))
    r = cli("list")
    assert r.code == 5 and "held by uid 4321" in r.err
    assert daemon.requests == []


def test_peer_uid_root_or_self_is_accepted(daemon: FakeDaemon, monkeypatch) -> None:
    daemon.reply("list", {"workers": []})
    for uid in (0, os.geteuid()):
        monkeypatch.setattr(socket.socket, "getsockopt", lambda self, *a, uid=uid: struct.pack("3i", 1, uid, uid))
        assert Client(_paths(daemon.name), autostart=False).call("list") == {"workers": []}


def test_real_peer_credentials(daemon: FakeDaemon) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect("\0" + daemon.name)
    try:
        pid, uid, _ = client_mod.peer_credentials(sock)
    finally:
        sock.close()
    assert pid == os.getpid() and uid == os.geteuid()


# --------------------------------------------------------------------------- which daemon


def test_select_paths_rules() -> None:
    env = {"HOME": "/home/bob"}
    yes, no = (lambda: True), (lambda: False)
    up, down = (lambda p: True), (lambda p: False)
    assert select_paths(env, 0).socket_name == "apm"
    assert select_paths(env, 1000, in_group=yes, root_running=up).socket_name == "apm"
    assert select_paths(env, 1000, in_group=yes, root_running=up).system is True
    assert select_paths(env, 1000, in_group=yes, root_running=down).socket_name == "apm.1000"
    assert select_paths(env, 1000, in_group=no, root_running=up).socket_name == "apm.1000"
    assert select_paths(dict(env, APM_SOCKET="mine"), 1000, in_group=yes, root_running=up).socket_name == "mine"
    home = select_paths(dict(env, APM_HOME="/tmp/h"), 1000, in_group=yes, root_running=up)
    assert home.socket_name.startswith("apm.1000.") and home.daemon_log == "/tmp/h/apm.log"


def test_group_check_is_not_asked_for_root_or_overrides() -> None:
    def boom() -> bool:
        raise AssertionError("not needed")

    select_paths({}, 0, in_group=boom)
    select_paths({"APM_SOCKET": "x"}, 1000, in_group=boom)


def test_root_daemon_probe_needs_uid_0(daemon: FakeDaemon) -> None:
    # Our fake daemon runs as us: for a non-root caller it only counts when that is root.
    assert client_mod._root_daemon_running(_paths(daemon.name)) is (os.geteuid() == 0)
    assert client_mod._root_daemon_running(_paths(_unique())) is False


# --------------------------------------------------------------------------- launcher


def test_launcher_for_a_zipapp(tmp_path) -> None:
    archive = tmp_path / "apm"
    with open(archive, "wb") as f:
        f.write(b"#!/usr/bin/env python3\n")
        with zipfile.ZipFile(f, "w") as z:
            z.writestr("__main__.py", "print(1)")
    assert launcher_command(str(archive)) == [sys.executable, str(archive)]


def test_launcher_for_a_console_script(tmp_path) -> None:
    script = tmp_path / "apm"
    script.write_text("#!/usr/bin/python3\nfrom alter.__main__ import main\nmain()\n")
    assert launcher_command(str(script)) == [sys.executable, str(script)]
    other = tmp_path / "pytest"
    other.write_text("#!/usr/bin/python3\nfrom pytest import console_main\n")
    assert launcher_command(str(other)) == [sys.executable, "-m", "alter"]


@pytest.mark.parametrize("argv0", ["", "-c", "apm", "/nonexistent/apm", __file__])
def test_launcher_in_source_mode(argv0: str) -> None:
    command = launcher_command(argv0)
    assert command == [sys.executable, "-m", "alter"]
    env = client_mod.launcher_env(command)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert env["PYTHONPATH"].split(os.pathsep)[0] == root


# --------------------------------------------------------------------------- autostart


def test_not_running_without_autostart() -> None:
    with pytest.raises(DaemonNotRunning) as info:
        Client(_paths("apm-test-cli-nobody"), autostart=False).call("list")
    assert info.value.exit_code == 6 and "no apm daemon is running on @apm-test-cli-nobody" in info.value.message


def test_autostart_starts_the_launcher_and_connects(monkeypatch) -> None:
    name = _unique()
    monkeypatch.setenv("APM_SOCKET", name)  # the launcher inherits our environment
    client = Client(_paths(name), launcher=[sys.executable, FAKE_SCRIPT])
    try:
        result = client.call("list")
        assert client.started_daemon is True
        assert result["served_by"] != os.getpid()
        assert client.call("list")["served_by"] == result["served_by"]  # no second start
    finally:
        assert client.call("exit") == {"stopped": []}
    assert client.wait_gone(5)


def test_autostart_through_the_cli(monkeypatch) -> None:
    monkeypatch.setattr(client_mod, "launcher_command", lambda argv0=None: [sys.executable, FAKE_SCRIPT])
    name = _unique()
    monkeypatch.setenv("APM_SOCKET", name)
    r = run_cli(name, "list")
    assert r.code == 0, r
    assert "No workers yet" in r.out
    r = run_cli(name, "exit", "daemon")
    assert r.out == "daemon stopped (0 workers stopped)\n"
    assert not Client(_paths(name)).is_running()


def test_autostart_failure_quotes_stderr_and_daemon_log(tmp_path) -> None:
    log = tmp_path / "apm.log"
    log.write_text("".join(f"line {i}\n" for i in range(30)) + "ERROR cannot bind @x: address in use\n")
    failing = [sys.executable, "-c", "import sys; sys.stderr.write('apm: the daemon failed to start\\n'); sys.exit(1)"]
    client = Client(_paths(_unique(), str(log)), launcher=failing)
    with pytest.raises(DaemonUnavailable) as info:
        client.call("list")
    text = info.value.message
    assert text.startswith("could not start the apm daemon: ")
    assert "exited with status 1" in text
    assert "    apm: the daemon failed to start" in text
    assert f"last lines of {log}:" in text and "    ERROR cannot bind @x: address in use" in text
    assert "line 10" not in text  # only the last lines
    assert info.value.exit_code == 6


def test_autostart_timeout() -> None:
    client = Client(_paths(_unique()), launcher=[sys.executable, "-c", "pass"], autostart_timeout=0.3)
    with pytest.raises(DaemonUnavailable) as info:
        client.call("list")
    assert "did not accept connections" in info.value.message and "0.3s" in info.value.message


def test_autostart_launcher_missing() -> None:
    client = Client(_paths(_unique()), launcher=["/nonexistent/python3"])
    with pytest.raises(DaemonUnavailable) as info:
        client.call("list")
    assert "cannot start the daemon" in info.value.message


def test_resolve_matches_client_paths() -> None:
    assert select_paths({"APM_SOCKET": "@x"}, 1000).socket_address == "\0x"
    assert resolve({"APM_SOCKET": "x"}, 0).socket_name == "x"

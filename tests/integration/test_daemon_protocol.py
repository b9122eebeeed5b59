"""The control socket of the daemon from the built `dist/apm`, spoken to directly (docs/protocol.md).

Malformed input of every kind gets an error reply (never a crash, never a hang), framing errors
close the connection after the answer, requests may be pipelined on one connection, and streamed
replies (events, then exactly one reply) work for `wait` and `run` with `wait: true`.
After every abuse the daemon still serves `apm list`.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from tests.integration.conftest import Apm, pid_alive

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux only")

EXIT_CODES = {"UsageError": 2, "ConfigError": 2, "NotFound": 3, "Conflict": 4, "PermissionDenied": 5,
              "StartFailed": 7, "ProtocolError": 8}  # fmt: skip


@pytest.fixture
def apm(apm: Apm) -> Iterator[Apm]:
    """A daemon with one 2-instance worker `s`; torn down zombie-aware (pid 1 here never reaps)."""
    apm("run", "sleep", "300", "--name", "s", "--instances", "2", "--startup-grace", "0")
    yield apm  # the conftest fixture tears the daemon down


def connect(apm: Apm, timeout: float = 10) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect("\0" + apm.socket)
    return s


def read_messages(s: socket.socket, count: int = 1) -> List[Dict[str, Any]]:
    """Read until `count` replies (messages without "event") arrived; events are returned too."""
    buf, out, replies = b"", [], 0
    while replies < count:
        chunk = s.recv(65536)
        assert chunk, f"connection closed after {out}"
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            msg = json.loads(line)
            out.append(msg)
            replies += "event" not in msg
    return out


def exchange(apm: Apm, raw: bytes) -> Dict[str, Any]:
    with connect(apm) as s:
        s.sendall(raw)
        return read_messages(s)[-1]


def request(apm: Apm, cmd: str, args: Any = None, msg_id: Any = 1) -> Dict[str, Any]:
    msg: Dict[str, Any] = {"v": 1, "id": msg_id, "cmd": cmd}
    if args is not None:
        msg["args"] = args
    return exchange(apm, json.dumps(msg).encode() + b"\n")


def assert_error(reply: Dict[str, Any], kind: str, *words: str) -> None:
    assert reply.get("ok") is False, reply
    err = reply["error"]
    assert err["type"] == kind, reply
    assert err["exit"] == EXIT_CODES[kind] and isinstance(err["message"], str) and "hint" in err
    for word in words:
        assert word in err["message"], (word, err["message"])
    assert "Traceback" not in err["message"] and "internal error" not in err["message"], err


def still_serving(apm: Apm, daemon: int) -> None:
    reply = request(apm, "list", {})
    assert reply["ok"] and [w["name"] for w in reply["result"]["workers"]] == ["s"]
    assert apm.daemon_pid() == daemon and pid_alive(daemon)


def test_malformed_frames_get_an_error_then_the_connection_closes(apm: Apm) -> None:
    daemon = apm.daemon_pid()
    assert daemon is not None
    for raw, words in (
        (b"garbage\n", ("malformed",)),
        (b"[1, 2]\n", ("expected a JSON object",)),
        (b'"just a string"\n', ("expected a JSON object",)),
        (b"42\n", ("expected a JSON object",)),
        (b"null\n", ("expected a JSON object",)),
        (b"\xff\xfe\xfd\n", ("malformed",)),
        (b'{"cmd": "list", "args": {}\n', ("malformed",)),  # truncated JSON
    ):
        with connect(apm) as s:
            s.sendall(raw)
            reply = read_messages(s)[-1]
            assert_error(reply, "ProtocolError", *words)
            assert reply["id"] is None
            assert s.recv(100) == b"", f"the connection stays open after a framing error ({raw!r})"
        still_serving(apm, daemon)


def test_bad_requests_get_errors_and_the_connection_stays_usable(apm: Apm) -> None:
    daemon = apm.daemon_pid()
    assert daemon is not None
    cases: List[Tuple[bytes, str, Tuple[str, ...]]] = [
        (b"{}\n", "ProtocolError", ("cmd",)),
        (b'{"id": 3, "cmd": 5}\n', "ProtocolError", ("cmd",)),
        (b'{"id": 3, "cmd": ""}\n', "ProtocolError", ("cmd",)),
        (b'{"id": 3, "cmd": "list", "args": []}\n', "ProtocolError", ("args",)),
        (b'{"id": 3, "cmd": "list", "args": "x"}\n', "ProtocolError", ("args",)),
        (b'{"id": 3, "cmd": "nope"}\n', "UsageError", ("unknown command 'nope'",)),
        (b'{"id": 3, "cmd": "lst", "args": {}}\n', "UsageError", ("unknown command",)),
    ]
    # All on one connection: each gets its error, in order, and the connection keeps serving.
    with connect(apm) as s:
        for raw, kind, words in cases:
            s.sendall(raw)
            reply = read_messages(s)[-1]
            assert_error(reply, kind, *words)
        s.sendall(b'{"id": 99, "cmd": "ping"}\n')
        pong = read_messages(s)[-1]
        assert pong["id"] == 99 and pong["ok"] and pong["result"]["pid"] == daemon
    assert "did you mean list" in request(apm, "lst", {})["error"]["hint"]
    still_serving(apm, daemon)


def test_wrong_argument_types_for_every_command(apm: Apm) -> None:
    daemon = apm.daemon_pid()
    assert daemon is not None
    named = ("start", "stop", "restart", "update", "info", "env", "remove", "rename", "copy", "wait")
    for cmd in named:
        for bad in (5, ["s"], {"a": 1}, True, ""):
            assert_error(request(apm, cmd, {"name": bad, "config": {}, "new": "n2"}), "UsageError", "name")
        assert_error(request(apm, cmd, {}), "UsageError", "name")
    for cmd in ("rename", "copy"):
        assert_error(request(apm, cmd, {"name": "s", "new": 7}), "UsageError", "new")
        assert_error(request(apm, cmd, {"name": "s", "new": "bad name"}), "ConfigError")
        assert_error(request(apm, cmd, {"name": "s", "new": "s"}), "Conflict")
    for cmd in ("start", "restart"):
        assert_error(request(apm, cmd, {"name": "s", "wait": "yes"}), "UsageError", "wait")

    # run: the config is checked by the daemon too, never trusted.
    assert_error(request(apm, "run", {"config": [1, 2]}), "UsageError", "config")
    assert_error(request(apm, "run", {"config": "sleep 1"}), "UsageError", "config")
    assert_error(request(apm, "run", {}), "UsageError", "config")
    assert_error(request(apm, "run", {"config": {}}), "ConfigError", "exec")
    assert_error(request(apm, "run", {"config": {"exec": "sleep", "instances": "abc"}}), "ConfigError", "instances")
    assert_error(request(apm, "run", {"config": {"exec": "sleep", "instances": 0}}), "ConfigError", "instances")
    assert_error(request(apm, "run", {"config": {"exec": "sleep", "name": "a b"}}), "ConfigError")
    assert_error(request(apm, "run", {"config": {"exec": "sleep", "params": [{"x": 1}]}}), "ConfigError", "params")
    assert_error(request(apm, "run", {"config": {"exec": "sleep", "env": "A"}}), "ConfigError", "env")
    reply = request(apm, "run", {"config": {"exec": 5}})  # coerced to the text "5": then not found in PATH
    assert_error(reply, reply.get("error", {}).get("type", "?"))
    assert reply["error"]["type"] in ("ConfigError", "StartFailed")
    assert_error(request(apm, "run", {"config": {"exec": "sleep", "name": "s"}}), "Conflict", "already exists")
    assert_error(request(apm, "run", {"config": {"exec": "sleep"}, "cwd": 5}), "UsageError", "cwd")
    assert_error(request(apm, "run", {"config": {"exec": "sleep"}, "cwd": "relative"}), "UsageError", "cwd")
    assert_error(request(apm, "run", {"config": {"exec": "sleep"}, "wait": "yes"}), "UsageError", "wait")

    # update
    assert_error(request(apm, "update", {"name": "s", "config": [1]}), "UsageError", "config")
    assert_error(request(apm, "update", {"name": "s", "config": {"instances": "abc"}}), "ConfigError", "instances")
    assert_error(request(apm, "update", {"name": "s", "config": {"exec": None}}), "ConfigError", "exec")
    assert_error(request(apm, "update", {"name": "s", "config": {}, "restart": "no"}), "UsageError", "restart")
    assert_error(request(apm, "update", {"name": "nope", "config": {}}), "NotFound", "nope")

    # signal
    for sig, words in (("SIGFOO", ("SIGFOO",)), (999, ("999",)), (["HUP"], ()), (True, ()), ("", ()), (None, ())):
        assert_error(request(apm, "signal", {"target": "s", "signal": sig}), "UsageError", *words)
    assert_error(request(apm, "signal", {"target": 5, "signal": "SIGHUP"}), "UsageError", "target")
    assert_error(request(apm, "signal", {"target": "x#0", "signal": "SIGHUP"}), "NotFound", "'x'")
    assert_error(request(apm, "signal", {"target": "s#0", "signal": "SIGHUP"}), "NotFound", "#0")
    assert_error(request(apm, "signal", {"target": "s#99", "signal": "SIGHUP"}), "NotFound", "#99")
    assert_error(request(apm, "signal", {"target": "s#abc", "signal": "SIGHUP"}), "UsageError")
    assert_error(request(apm, "signal", {"target": "x#99", "signal": "SIGHUP"}), "NotFound")

    # env / wait / instance targets
    assert_error(request(apm, "env", {"name": "s", "index": "2"}), "UsageError", "index")
    assert_error(request(apm, "env", {"name": "s", "index": 0}), "UsageError", "1-based")
    assert_error(request(apm, "env", {"name": "s", "index": 99}), "NotFound", "#99")
    assert_error(request(apm, "wait", {"name": "s", "timeout": "abc"}), "UsageError", "timeout")
    assert_error(request(apm, "wait", {"name": "s", "timeout": -1}), "UsageError", "timeout")
    assert_error(request(apm, "wait", {"name": "s", "timeout": 1.5}), "UsageError", "timeout")
    for cmd in ("start", "stop", "restart"):
        assert_error(request(apm, cmd, {"name": "s#9"}), "NotFound", "#9")

    # None of it touched the worker.
    reply = request(apm, "info", {"name": "s"})
    assert reply["ok"] and reply["result"]["instances_running"] == 2
    still_serving(apm, daemon)


def test_oversized_half_and_abandoned_messages(apm: Apm) -> None:
    daemon = apm.daemon_pid()
    assert daemon is not None
    # More than 16 MiB without a newline: an error, then the daemon hangs up (no buffering forever).
    with connect(apm, timeout=20) as s:
        errors: List[BaseException] = []

        def flood() -> None:
            try:
                s.sendall(b"x" * (17 * 1024 * 1024))
            except OSError as exc:  # the daemon hung up on us: expected
                errors.append(exc)

        sender = threading.Thread(target=flood)
        sender.start()
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass  # the unread flood makes the kernel reset the connection after the reply
        sender.join(20)
        assert not sender.is_alive(), "the daemon neither read nor closed: the sender is stuck"
    reply = json.loads(data.split(b"\n", 1)[0])
    assert_error(reply, "ProtocolError", "larger than")
    still_serving(apm, daemon)

    # Half a message, then close; half a message, then shut the write side.
    with connect(apm) as s:
        s.sendall(b'{"v": 1, "id": 1, "cmd": "li')
    with connect(apm) as s:
        s.sendall(b'{"v": 1, "id": 1, "cmd": "list"')
        s.shutdown(socket.SHUT_WR)
        assert s.recv(100) == b"", "an incomplete message is not a request"
    # Connect and leave without a word; connect, ask, and leave before the answer.
    connect(apm).close()
    with connect(apm) as s:
        s.sendall(b'{"v": 1, "id": 1, "cmd": "wait", "args": {"name": "s", "timeout": 5000}}\n')
    stopped = request(apm, "stop", {"name": "s"})
    assert stopped["ok"]
    with connect(apm) as s:
        s.sendall(b'{"v": 1, "id": 1, "cmd": "wait", "args": {"name": "s", "timeout": 5000}}\n')
    # Many clients at once.
    many = [connect(apm) for _ in range(100)]
    try:
        for s in many:
            s.sendall(b'{"id": 1, "cmd": "ping"}\n')
        assert all(read_messages(s)[-1]["ok"] for s in many)
    finally:
        for s in many:
            s.close()
    request(apm, "start", {"name": "s"})
    still_serving(apm, daemon)
    assert apm("list").returncode == 0


def test_pipelined_requests_are_answered_in_order(apm: Apm) -> None:
    with connect(apm) as s:
        s.sendall(
            b'{"v": 1, "id": "a", "cmd": "ping"}\n{"v": 1, "id": 2, "cmd": "list", "args": {}}\n'
            b'{"v": 1, "id": [3], "cmd": "info", "args": {"name": "nope"}}\n{"v": 1, "id": 4, "cmd": "version"}\n'
        )
        replies = read_messages(s, 4)
    assert [r["id"] for r in replies] == ["a", 2, [3], 4]
    assert [r["ok"] for r in replies] == [True, True, False, True]
    assert replies[3]["result"]["pid"] == apm.daemon_pid()


def test_streamed_replies_events_then_one_reply(apm: Apm) -> None:
    # wait: `state` events while the worker comes up, then the WorkerStatus.
    request(apm, "stop", {"name": "s"})
    with connect(apm) as s:
        s.sendall(b'{"v": 1, "id": 5, "cmd": "wait", "args": {"name": "s", "timeout": 10000}}\n')
        time.sleep(0.2)
        started = request(apm, "start", {"name": "s"})
        assert started["ok"]
        messages = read_messages(s)
    events = [m for m in messages if "event" in m]
    assert events and all(m["id"] == 5 and m["event"] == "state" for m in events)
    assert messages[-1]["id"] == 5 and messages[-1]["ok"] and messages[-1]["result"]["status"] == "running"

    # run with wait: `progress` events, then the reply after startup_grace.
    with connect(apm) as s:
        config = {"exec": "sleep", "params": ["300"], "name": "streamed", "startup_grace": 300, "instances": 2}
        s.sendall(json.dumps({"v": 1, "id": 6, "cmd": "run", "args": {"config": config, "cwd": "/", "wait": True}})
                  .encode() + b"\n")  # fmt: skip
        started_at = time.monotonic()
        messages = read_messages(s)
        elapsed = time.monotonic() - started_at
    progress = [m["data"]["message"] for m in messages if m.get("event") == "progress"]
    assert any("Started child #1" in p for p in progress) and any("Started child #2" in p for p in progress)
    assert messages[-1]["ok"] and messages[-1]["result"]["instances_running"] == 2
    assert elapsed >= 0.25, "the reply comes after startup_grace"

    # A failing start: progress, then a StartFailed error carrying the detail.
    with connect(apm) as s:
        config = {"exec": "sh", "params": ["-c", "echo nope >&2; exit 3"], "name": "failing", "startup_grace": 3000}
        s.sendall(json.dumps({"v": 1, "id": 7, "cmd": "run", "args": {"config": config, "cwd": "/", "wait": True}})
                  .encode() + b"\n")  # fmt: skip
        messages = read_messages(s)
    reply = messages[-1]
    assert_error(reply, "StartFailed")
    detail = reply["error"]["detail"]
    assert detail["exit_code"] == 3 and detail["instance"] == 1 and "nope" in detail["stderr"]
    assert isinstance(detail["hints"], list) and isinstance(detail["runtime_ms"], int)

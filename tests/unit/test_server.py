"""The control server with real abstract sockets, driven by a loop thread."""

import json
import os
import socket
import threading
import uuid

import pytest

from alter.daemon.loop import EventLoop
from alter.daemon.server import Commands, ControlServer, authorize
from alter.errors import NotFound


@pytest.fixture
def server():
    loop = EventLoop()
    commands = Commands()
    flushed = []
    commands.register("echo", lambda req: req.reply(req.args), write=False)
    commands.register("boom", lambda req: 1 / 0, write=False)
    commands.register("missing", lambda req: (_ for _ in ()).throw(NotFound("no worker named 'x'")), write=False)

    def slow(req):
        req.event("progress", {"n": 1})
        loop.call_later(0.05, req.reply, "late")

    commands.register("slow", slow, write=False)
    commands.register("mutate", lambda req: req.reply("done"), write=True)
    address = "\0apm-unit-" + uuid.uuid4().hex
    srv = ControlServer(loop, address, commands, before_reply=lambda: flushed.append(1), idle_timeout=5)
    srv.listen()
    th = threading.Thread(target=loop.run, daemon=True)
    th.start()
    srv.flushed = flushed
    yield srv
    loop.call_soon_threadsafe(loop.stop)
    th.join(timeout=2)
    srv.close()
    loop.close()


def talk(srv, payload: bytes, n_replies: int = 1):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect(srv.address)
    s.sendall(payload)
    buf = b""
    out = []
    while len(out) < n_replies:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            out.append(json.loads(line))
    s.close()
    return out


def req(cmd, args=None, msg_id=1):
    return (json.dumps({"v": 1, "id": msg_id, "cmd": cmd, "args": args or {}}) + "\n").encode()


def test_echo(server):
    [r] = talk(server, req("echo", {"a": 1}))
    assert r == {"id": 1, "ok": True, "result": {"a": 1}}


def test_streamed_events_then_reply(server):
    ev, r = talk(server, req("slow"), 2)
    assert ev["event"] == "progress" and ev["data"] == {"n": 1}
    assert r["result"] == "late"


def test_pipelined_requests_answered_in_order(server):
    rs = talk(server, req("slow", msg_id=1) + req("echo", {"x": 2}, msg_id=2), 3)
    assert [r.get("id") for r in rs] == [1, 1, 2]


@pytest.mark.parametrize(
    "payload, kind",
    [
        (b"garbage\n", "ProtocolError"),
        (b"[]\n", "ProtocolError"),
        (b'{"id": 1}\n', "ProtocolError"),
        (b'{"id": 1, "cmd": 5}\n', "ProtocolError"),
        (b'{"id": 1, "cmd": "echo", "args": [1]}\n', "ProtocolError"),
        (b'{"id": 1, "cmd": "ehco"}\n', "UsageError"),
        (b"\xff\xff\n", "ProtocolError"),
    ],
)
def test_malformed_requests_get_errors(server, payload, kind):
    [r] = talk(server, payload)
    assert r["ok"] is False and r["error"]["type"] == kind
    # ...and the server still works afterwards.
    assert talk(server, req("echo", {"ok": 1}))[0]["result"] == {"ok": 1}


def test_unknown_command_suggests(server):
    [r] = talk(server, req("ehco"))
    assert "echo" in r["error"]["hint"]


def test_handler_errors(server):
    [r] = talk(server, req("missing"))
    assert r["error"]["type"] == "NotFound" and r["error"]["exit"] == 3
    [r] = talk(server, req("boom"))
    assert r["error"]["type"] == "ApmError" and "ZeroDivisionError" in r["error"]["message"]


def test_write_command_flushes_state_before_reply(server):
    before = len(server.flushed)
    [r] = talk(server, req("mutate"))
    assert r["result"] == "done" and len(server.flushed) == before + 1


def test_client_disconnect_mid_request_is_harmless(server):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(server.address)
    s.sendall(req("slow"))
    s.close()
    assert talk(server, req("echo", {"still": "up"}))[0]["result"] == {"still": "up"}


def test_second_server_on_same_name_is_refused(server):
    other = ControlServer(EventLoop(), server.address, Commands())
    with pytest.raises(Exception, match="already listening"):
        other.listen()


def test_authorize_rules():
    me = os.geteuid()
    assert authorize(0, 0, os.getpid(), daemon_uid=1234)
    assert authorize(1234, 1234, os.getpid(), daemon_uid=1234)
    assert not authorize(4321, 4321, 1, daemon_uid=me if me != 4321 else 0)

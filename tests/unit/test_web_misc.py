"""Small parts of alter/web: JSON in/out, tokens, notifications, /proc sampling, probes, the loop bridge."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from alter.daemon.loop import EventLoop
from alter.daemon.server import Commands
from alter.errors import NotFound, UsageError
from alter.web import sysinfo, tokens
from alter.web.bridge import LoopBridge
from alter.web.errors import GatewayTimeout, PayloadTooLarge, UnsupportedMediaType
from alter.web.message import check_length, json_bytes, parse_json_body
from alter.web.notify import describe
from alter.web.procstat import ProcStat, read_stat
from alter.web.server import content_type, is_loopback, split_host


def test_json_out_is_html_inert():
    raw = json_bytes({"t": "</script><img src=x>&amp;"})
    assert b"<" not in raw and b">" not in raw and b"&" not in raw
    assert json.loads(raw) == {"t": "</script><img src=x>&amp;"}
    with pytest.raises(ValueError):
        json_bytes({"x": float("nan")})


@pytest.mark.parametrize(
    "raw, ctype, error",
    [
        (b"{", "application/json", UsageError),
        (b"[]", "application/json", UsageError),
        (b"null", "application/json", UsageError),
        (b'{"a": Infinity}', "application/json", UsageError),
        (b"\xc3\x28", "application/json", UsageError),
        (b"{}", "text/plain", UnsupportedMediaType),
        (b"{}", "", UnsupportedMediaType),
    ],
)
def test_bad_bodies(raw, ctype, error):
    with pytest.raises(error):
        parse_json_body(raw, ctype)


def test_good_bodies_and_lengths():
    assert parse_json_body(b"", "") == {}
    assert parse_json_body(b'{"a": 1}', "application/json; charset=utf-8") == {"a": 1}
    assert check_length(None) == 0 and check_length("12") == 12
    for bad in ("-1", "x"):
        with pytest.raises(UsageError):
            check_length(bad)
    with pytest.raises(PayloadTooLarge):
        check_length(str(10**9))


def test_tokens():
    t = tokens.new_setup_token()
    assert len(t) == 23 and t.count("-") == 3
    assert tokens.normalize_setup_token(t.lower().replace("-", " ")) == t
    assert tokens.normalize_setup_token("abcdo-ilxyz") == "ABCD0-11XYZ"
    assert tokens.new_bearer().startswith("apm_") and tokens.new_bearer() != tokens.new_bearer()
    assert tokens.same("a", "a") and not tokens.same("a", "b")
    store = tokens.BearerTokens()
    made = store.create("x")
    assert store.find(made["token"])["id"] == made["id"]
    with pytest.raises(NotFound):
        store.revoke("nope")


def test_notifications_describe_events():
    assert (
        describe("instance.crash", {"worker": "a", "instance": 2, "signal": "SIGKILL", "oom": True, "runtime_ms": 9})[
            "message"
        ]
        == "a#2 crashed: killed by SIGKILL (out of memory) after 9 ms"
    )
    assert describe("instance.start", {"worker": "a", "instance": 1, "attempt": 1, "pid": 5}) is None
    assert describe("instance.start", {"worker": "a", "instance": 1, "attempt": 2, "pid": 5})["kind"] == "restart"
    assert describe("worker.state", {"worker": "a", "status": "running", "old": "starting"})["kind"] == "start"
    assert describe("worker.state", {"worker": "a", "status": "partial", "old": "running"}) is None
    assert describe("log.alert", {"worker": "a", "name": "oom", "line": "x" * 1000})["kind"] == "alert"
    assert describe("worker.added", {"worker": "a"}) is None


def test_procstat_reads_this_process():
    ticks, rss, start = read_stat(os.getpid())
    assert ticks >= 0 and rss > 1024 * 1024 and start > 0
    assert read_stat(2**22 + 12345) is None
    ps = ProcStat()
    assert ps.sample(os.getpid(), 1.0)[0] == 0.0
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    cpu, _ = ps.sample(os.getpid(), 1.25)
    assert cpu > 20  # ~0.2 s of CPU in 0.25 s of (fake) wall time
    ps.forget_except([])
    assert ps.sample(os.getpid(), 2.0)[0] == 0.0


def test_probe_refused_unresolvable_and_timeout(monkeypatch):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    assert "unreachable" in sysinfo.probe(f"127.0.0.1:{port}")["error"]
    assert sysinfo.probe("nothing.invalid:1")["ok"] is False
    assert sysinfo.probe("no-port")["error"] == "bad target"
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    ok = sysinfo.probe(f"127.0.0.1:{listener.getsockname()[1]}")
    listener.close()
    assert ok["ok"] and ok["ms"] >= 0

    def hang(*a, **kw):
        time.sleep(30)

    monkeypatch.setattr(socket, "create_connection", hang)
    prober = sysinfo.Prober(timeout=0.2)
    started = time.monotonic()
    out = prober.run(["192.0.2.1:443", "192.0.2.2:443"])
    assert time.monotonic() - started < 2
    assert [r["error"] for r in out] == ["timeout", "timeout"]


def test_host_helpers():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.9.9.9")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("example.com")
    assert split_host("[::1]:6789") == "::1" and split_host("127.0.0.1:80") == "127.0.0.1" and split_host("a") == "a"
    assert content_type("js/app.js") == "text/javascript; charset=utf-8"
    assert content_type("x.unknown") == "application/octet-stream"
    info = sysinfo.host_info()
    assert info["cpu"]["threads"] >= 1 and info["memory"]["total"] > 0 and info["kernel"]
    load = sysinfo.HostLoad()
    load.sample()
    assert 0 <= load.sample()["cpu"] <= 100


class FakeDaemon:
    def __init__(self) -> None:
        self.loop = EventLoop()
        self.commands = Commands()
        self.flushed = 0

        class Saver:
            def flush(saver) -> None:
                self.flushed += 1

        self.saver = Saver()


def test_bridge_runs_commands_on_the_loop_and_times_out():
    d = FakeDaemon()
    seen = {}
    later = []

    def now(req):
        seen["thread"] = threading.get_ident()
        req.event("progress", {"n": 1})
        req.reply({"ok": req.peer.uid == os.geteuid()})

    def fails(req):
        raise UsageError("bad args")

    def never(req):
        req.on_close(lambda: later.append("cancelled"))

    def relay(req):  # handlers may relay finished protocol frames (grep does)
        frame = {"id": req.id, "event": "matches", "data": {"matches": [1, 2]}}
        req.conn.send(json.dumps(frame).encode() + b"\n" + b"not json\n")
        assert len(getattr(req.conn, "outbuf", b"")) == 0
        req.reply({"done": True})

    d.commands.register("relay", relay)
    d.commands.register("now", now)
    d.commands.register("fails", fails)
    d.commands.register("never", never)
    t = threading.Thread(target=d.loop.run, daemon=True)
    t.start()
    try:
        bridge = LoopBridge(d)
        result, evs = bridge.call_events("now")
        assert result == {"ok": True} and evs == [("progress", {"n": 1})]
        assert seen["thread"] == t.ident and d.flushed == 1
        assert bridge.call_events("relay") == ({"done": True}, [("matches", {"matches": [1, 2]})])
        with pytest.raises(UsageError):
            bridge.call("fails")
        with pytest.raises(UsageError):
            bridge.call("unknown-cmd")
        with pytest.raises(GatewayTimeout):
            bridge.call("never", timeout=0.2)
        deadline = time.monotonic() + 2
        while not later and time.monotonic() < deadline:
            time.sleep(0.01)
        assert later == ["cancelled"]
        assert bridge.run(lambda x: x * 2, 21) == 42
        with pytest.raises(NotFound):
            bridge.run(lambda: (_ for _ in ()).throw(NotFound("x")))
    finally:
        d.loop.call_soon_threadsafe(d.loop.stop)
        t.join(2)

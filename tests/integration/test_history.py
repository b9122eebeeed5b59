"""Per-worker restart history (alter/daemon/history.py): the `history` command and GET /workers/{name}/history."""

from __future__ import annotations

import json
import socket

import pytest

from tests.helpers import wait_for
from tests.integration.web_support import start_gui

pytestmark = pytest.mark.timeout(120)

FIELDS = {"time", "instance", "kind", "pid", "exit_code", "signal", "reason", "uptime", "delay"}


def _kinds(events):
    return [e["kind"] for e in events]


def control(apm, cmd, **args):
    """One control request on the test daemon's socket: (ok, result or error)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect("\0" + apm.socket)
        s.sendall(json.dumps({"v": 1, "id": 1, "cmd": cmd, "args": args}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            assert chunk, "the daemon closed the connection"
            data += chunk
    reply = json.loads(data)
    return reply["ok"], reply.get("result") if reply["ok"] else reply["error"]


def history(apm, name, **args):
    ok, result = control(apm, "history", name=name, **args)
    assert ok, result
    return result["events"]


def test_crash_backoff_restart_and_stop_are_recorded(apm):
    # Crashes with code 3 twice, then stays up: crash -> backoff -> start, twice.
    apm("run", "sh", "-c", 'test -e "$0.ok" || { touch "$0.2" 2>/dev/null; test -e "$0.1" && touch "$0.ok"; touch "$0.1"; exit 3; }; exec sleep 300',
        str(apm.home) + "/flag", "--name", "flaky", "--restart-err", "--err-delay", "50", "--startup-grace", "0")  # fmt: skip
    events = wait_for(
        lambda: (e := history(apm, "flaky")) and len([x for x in e if x["kind"] == "start"]) >= 3 and e,
        timeout=20,
        what="three starts of flaky",
    )
    assert all(set(e) == FIELDS for e in events), events[0]
    times = [e["time"] for e in events]
    assert times == sorted(times, reverse=True), "newest first"
    oldest_first = list(reversed(events))
    assert _kinds(oldest_first)[:7] == ["start", "crash", "backoff", "start", "crash", "backoff", "start"]
    crash = oldest_first[1]
    assert crash["exit_code"] == 3 and crash["signal"] is None and crash["reason"] == "crash"
    assert crash["pid"] == oldest_first[0]["pid"] and crash["uptime"] is not None and crash["uptime"] >= 0
    backoff = oldest_first[2]
    assert backoff["reason"] == "crash" and backoff["delay"] is not None and 0 <= backoff["delay"] <= 1
    assert oldest_first[3]["reason"] == "backoff" and oldest_first[3]["pid"] != crash["pid"]
    assert all(e["instance"] == 1 for e in events)

    running_pid = oldest_first[6]["pid"]
    apm("restart", "flaky")
    after = wait_for(
        lambda: (e := history(apm, "flaky")) and e[0]["kind"] == "start" and e[0]["pid"] != running_pid
        and e,
        timeout=20,
        what="the restarted instance",
    )  # fmt: skip
    restart = after[1]
    assert restart["kind"] == "restart" and restart["reason"] == "manual", after[:3]
    assert restart["pid"] == running_pid and restart["signal"] == "SIGTERM" and restart["uptime"] > 0
    assert after[0]["reason"] == "manual"
    info = apm("info", "flaky").stdout
    recent = info[info.index("Recent events") :]
    assert "restart" in recent and "(manual)" in recent and "code 3" in recent, recent

    apm("stop", "flaky")
    stopped = history(apm, "flaky", limit=2)
    assert len(stopped) == 2 and stopped[0]["kind"] == "stop" and stopped[0]["reason"] == "manual"
    assert stopped[0]["pid"] == after[0]["pid"]


def test_history_api_limit_errors_and_removal(apm):
    gui = start_gui(apm)
    api = gui.login()
    apm("run", "sh", "-c", "exit 0", "--name", "done", "--startup-grace", "0")
    apm("run", "sleep", "300", "--name", "two", "--instances", "2")
    wait_for(lambda: len(api.get("/api/v1/workers/done/history").json()["events"]) == 2, 10, what="start + exit")
    data = api.get("/api/v1/workers/done/history").json()
    assert data["worker"] == "done"
    assert _kinds(data["events"]) == ["exit", "start"]
    assert data["events"][0]["exit_code"] == 0 and data["events"][0]["reason"] == "exit"
    assert api.get("/api/v1/workers/done/history?limit=1").json()["events"][0]["kind"] == "exit"

    wait_for(lambda: len(api.get("/api/v1/workers/two/history").json()["events"]) == 2, 10, what="two starts")
    one = api.get("/api/v1/workers/two%232/history").json()  # name#N: one instance
    assert one["worker"] == "two" and [e["instance"] for e in one["events"]] == [2]

    missing = api.get("/api/v1/workers/nope/history")
    assert missing.status == 404 and "nope" in missing.error["message"]
    for bad in ("0", "101", "-1", "ten", "1.5", "", "99999999999999999999"):
        r = api.get(f"/api/v1/workers/done/history?limit={bad}")
        assert r.status == 400, (bad, r)
        assert "limit" in r.error["message"] and r.error["hint"], r.error
    charts = api.get("/api/v1/workers/done/metrics?range=1h").json()  # the charts have their own path
    assert charts["range"] == "1h" and "events" not in charts

    # The control command checks its arguments too.
    for args in ({"name": "done", "limit": 0}, {"name": "done", "limit": "5"}, {"name": "done", "limit": True}, {}):
        ok, err = control(apm, "history", **args)
        assert not ok and err["type"] == "UsageError" and err["hint"], (args, err)
    ok, err = control(apm, "history", name="ghost")
    assert not ok and err["type"] == "NotFound" and "ghost" in err["message"]

    assert api.delete("/api/v1/workers/done").status == 200
    apm("run", "sleep", "300", "--name", "done")
    fresh = wait_for(lambda: api.get("/api/v1/workers/done/history").json()["events"], 10, what="a start")
    assert _kinds(fresh) == ["start"], "the removed worker's history went with it"

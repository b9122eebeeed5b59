"""Restart history (alter/daemon/history.py) driven by the real supervisor on fakes: kinds, reasons, bounds."""

from __future__ import annotations

import pytest

from alter.daemon.history import HISTORY_MAX, RestartHistory, history_reply, parse_limit
from alter.errors import NotFound, UsageError
from alter.supervise.testing import Harness

SLEEP = {"exec": "sleep", "params": ["100"], "startup_grace": 0}


@pytest.fixture
def h():
    harness = Harness()
    harness.ops.auto_exit = True
    yield harness
    harness.close()


def make(h: Harness, size: int = HISTORY_MAX) -> RestartHistory:
    return RestartHistory(h.loop, h.bus, h.sup, wall=h.ops.wall, size=size)


def oldest_first(hist: RestartHistory, name: str):
    return list(reversed(hist.events(name)))


def kinds(hist: RestartHistory, name: str):
    return [(e["kind"], e["reason"]) for e in oldest_first(hist, name)]


def start(h: Harness, name: str, **config) -> None:
    h.sup.add(dict(SLEEP, name=name, **config))
    h.sup.start(name)
    h.settle()


def test_crash_backoff_and_restart_after_the_delay(h):
    hist = make(h)
    start(h, "api", restart_err=True, err_delay=500)
    pid = h.pids("api")[0]
    h.ops.exit(pid, code=7)
    h.settle()
    h.advance(0.6)
    events = oldest_first(hist, "api")
    assert [e["kind"] for e in events] == ["start", "crash", "backoff", "start"]
    crash, backoff, again = events[1], events[2], events[3]
    assert crash["pid"] == pid and crash["exit_code"] == 7 and crash["signal"] is None and crash["reason"] == "crash"
    assert backoff["reason"] == "crash" and backoff["delay"] == pytest.approx(0.5, abs=0.01)
    assert again["reason"] == "backoff" and again["pid"] != pid


def test_clean_exit_then_errored_gives_up(h):
    hist = make(h)
    start(h, "job", restart_err=True, err_delay=0, max_err_restarts=1)
    h.ops.exit(h.pids("job")[0], code=0)
    h.settle()
    assert kinds(hist, "job")[-1] == ("exit", "exit")
    h.sup.start("job")
    h.settle()
    for _ in range(2):
        h.ops.exit(h.pids("job")[0], code=1)
        h.advance(0.1)
    assert kinds(hist, "job")[-1] == ("failed", "not restarting (restart policy)")


def test_manual_restart_then_stop(h):
    hist = make(h)
    start(h, "web")
    old = h.pids("web")[0]
    h.sup.restart("web")
    h.advance(0.1)
    assert kinds(hist, "web") == [("start", "start"), ("restart", "manual"), ("start", "manual")]
    restart = oldest_first(hist, "web")[1]
    assert restart["pid"] == old and restart["signal"] == "SIGTERM"
    h.sup.stop("web")
    h.advance(0.1)
    assert kinds(hist, "web")[-1] == ("stop", "manual")


def test_update_reasons_reload_scaled_disabled(h):
    hist = make(h)
    start(h, "svc", instances=2)
    h.sup.update("svc", {"env": ["A=1"]})
    h.advance(0.1)
    assert ("restart", "reload") in kinds(hist, "svc")
    h.sup.update("svc", {"instances": 1})
    h.advance(0.1)
    assert kinds(hist, "svc")[-1] == ("stop", "scaled") and oldest_first(hist, "svc")[-1]["instance"] == 2
    h.sup.update("svc", {"enabled": False})
    h.advance(0.1)
    assert kinds(hist, "svc")[-1] == ("stop", "disabled")


def test_rolling_restart_and_shutdown_context(h):
    hist = make(h)
    start(h, "roll", instances=2, rolling=True, rolling_delay=100)
    h.sup.restart("roll")
    h.advance(2.0)
    restarts = [e for e in oldest_first(hist, "roll") if e["kind"] == "restart"]
    assert sorted(e["instance"] for e in restarts) == [1, 2] and {e["reason"] for e in restarts} == {"rolling"}
    with hist.context("shutdown"):
        h.sup.shutdown()
    h.advance(0.1)
    assert kinds(hist, "roll")[-2:] == [("stop", "shutdown"), ("stop", "shutdown")]


def test_bounded_newest_first_limit_rename_remove(h):
    hist = make(h, size=5)
    start(h, "a", restart_err=True, err_delay=0)
    for _ in range(6):
        h.ops.exit(h.pids("a")[0], code=1)
        h.advance(0.05)
    events = hist.events("a")
    assert len(events) == 5
    assert [e["time"] for e in events] == sorted((e["time"] for e in events), reverse=True)
    assert len(hist.events("a", limit=2)) == 2
    h.sup.rename("a", "b")
    assert hist.events("a") == [] and len(hist.events("b")) == 5
    h.sup.remove("b")
    h.advance(0.1)
    assert hist.events("b") == [] and "b" not in hist.names()


def test_reply_and_argument_errors(h):
    hist = make(h)
    start(h, "x", instances=2)
    assert history_reply(hist, h.sup, "x")["worker"] == "x"
    assert {e["instance"] for e in history_reply(hist, h.sup, "x#2")["events"]} == {2}
    with pytest.raises(NotFound):
        history_reply(hist, h.sup, "nope")
    for bad in (0, HISTORY_MAX + 1, "5", True, 2.5):
        with pytest.raises(UsageError) as err:
            parse_limit(bad)
        assert repr(bad) in err.value.message and err.value.hint
    with pytest.raises(UsageError):
        history_reply(hist, h.sup, None)
    assert parse_limit(None) == HISTORY_MAX and parse_limit(3) == 3

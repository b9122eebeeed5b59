"""Instances through their life with FakeOps: spawn, exits, restart policy timing, stop, kill, leftovers, output."""

from __future__ import annotations

import signal
from typing import Iterator

import pytest

from alter.supervise.testing import Harness

SLEEP = {"name": "w", "exec": "sleep", "params": ["100"]}


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


def test_start_runs_every_instance(h: Harness) -> None:
    status = h.sup.add(dict(SLEEP, instances=3))
    assert status["status"] == "starting" and status["desired"] == "running"
    h.settle()
    st = h.status("w")
    assert st["status"] == "running" and st["instances_running"] == 3
    assert [i["index"] for i in st["instances"]] == [1, 2, 3]
    assert len(set(h.pids("w"))) == 3
    assert h.log("w").entries[0] == (1, "started pid 1001")
    spec = h.ops.procs[1001].spec
    assert spec.argv == ["sleep", "100"] and spec.executable == "/usr/bin/sleep"
    assert spec.env["APM_INDEX"] == "0" and h.ops.procs[1003].spec.env["APM_INDEX"] == "2"
    assert spec.marker == "test:w#1" and spec.group == "w.0"


def test_no_restart_by_default(h: Harness) -> None:
    h.sup.add(SLEEP)
    h.settle()
    h.ops.exit(1001, code=0)
    assert h.states("w") == ["exited"] and h.status("w")["status"] == "exited"
    h.sup.start("w")
    h.settle()
    h.ops.exit(1002, code=3)
    st = h.status("w")
    assert st["status"] == "errored"
    assert st["instances"][0]["last_exit"]["code"] == 3
    assert "not restarting (restart_err is off)" in h.log("w").messages[-1]
    assert "instance.crash" in h.kinds()


def test_error_restart_waits_err_delay_and_backs_off(h: Harness) -> None:
    h.sup.add(dict(SLEEP, restart_err=True, err_delay=500))
    h.settle()
    h.ops.exit(1001, code=1)
    inst = h.status("w")["instances"][0]
    assert inst["status"] == "backoff"
    assert inst["next_start_at"] == pytest.approx(h.ops.wall() + 0.5)
    h.advance(0.499)
    assert h.states("w") == ["backoff"]
    h.advance(0.001)
    assert h.states("w") == ["running"] and h.pids("w") == [1002]
    h.advance(0.1)
    h.ops.exit(1002, code=1)  # quick again: 1000 ms
    h.advance(0.999)
    assert h.states("w") == ["backoff"]
    h.advance(0.001)
    assert h.pids("w") == [1003]
    assert h.status("w")["restarts"] == {"clean": 0, "error": 2}
    assert "restarting in 1.0s" in h.log("w").messages[-2]


def test_restart_delay_zero_restarts_without_waiting(h: Harness) -> None:
    h.sup.add(dict(SLEEP, restart=True, restart_delay=0))
    h.settle()
    h.ops.exit(1001, code=0)
    h.settle()  # no clock movement at all
    assert h.states("w") == ["running"] and h.pids("w") == [1002]


def test_max_err_restarts_gives_up(h: Harness) -> None:
    h.sup.add(dict(SLEEP, restart_err=True, err_delay=0, max_err_restarts=2))
    h.settle()
    for pid in (1001, 1002):
        h.ops.exit(pid, code=1)
        h.settle()
    h.ops.exit(1003, code=1)
    assert h.states("w") == ["errored"]
    assert "max_err_restarts 2 reached" in h.log("w").messages[-1]
    h.sup.start("w")  # a manual start resets the limit
    h.settle()
    h.ops.exit(1004, code=1)
    h.settle()
    assert h.states("w") == ["running"]


def test_stop_sends_sigterm_and_waits_for_exit(h: Harness) -> None:
    h.sup.add(SLEEP)
    h.settle()
    done = []
    st = h.sup.stop("w", lambda: done.append(True))
    assert st["status"] == "stopping" and st["desired"] == "stopped"
    assert ("kill_tree", 1001, signal.SIGTERM) in h.ops.calls
    h.settle()
    assert done == [True] and h.states("w") == ["stopped"] and h.pids("w") == [None]
    assert ("release", 1001) in h.ops.calls
    exits = [d for k, d in h.events if k == "instance.exit"]
    assert exits[-1]["expected"] is True and "instance.crash" not in h.kinds()


def test_sigterm_ignored_means_sigkill_after_kill_timeout(h: Harness) -> None:
    h.ops.ignore_term_next = True
    h.sup.add(dict(SLEEP, kill_timeout=2000))
    h.settle()
    h.sup.stop("w")
    h.advance(1.999)
    assert h.states("w") == ["stopping"]
    assert ("kill_tree", 1001, signal.SIGKILL) not in h.ops.calls
    h.advance(0.001)
    assert ("kill_tree", 1001, signal.SIGKILL) in h.ops.calls
    assert h.states("w") == ["stopped"]
    assert "sending SIGKILL" in h.log("w").messages[-1]


def test_stopped_only_when_the_whole_tree_is_gone(h: Harness) -> None:
    h.sup.add(dict(SLEEP, kill_timeout=1000))
    h.settle()
    proc = h.ops.procs[1001]
    proc.leftovers = {5001}  # a daemonized grandchild that ignores SIGTERM
    proc.leftovers_ignore_term = True
    h.sup.stop("w")
    h.settle()
    assert not proc.alive and h.states("w") == ["stopping"]  # main reaped, grandchild left
    h.advance(1.0)
    assert ("kill_tree", 1001, signal.SIGKILL) in h.ops.calls
    assert h.states("w") == ["stopped"]


def test_orphan_reap_finishes_a_stop(h: Harness) -> None:
    h.sup.add(SLEEP)
    h.settle()
    proc = h.ops.procs[1001]
    proc.leftovers = {5001}
    proc.leftovers_ignore_term = True
    h.sup.stop("w")
    h.settle()
    assert h.states("w") == ["stopping"]
    h.ops.kill_leftovers(1001)  # the grandchild exits on its own and is reaped
    assert h.states("w") == ["stopped"]


def test_leftovers_of_an_exit_are_terminated_then_killed_before_respawn(h: Harness) -> None:
    h.sup.add(dict(SLEEP, restart_err=True, err_delay=100, kill_timeout=5000))
    h.settle()
    proc = h.ops.procs[1001]
    proc.leftovers = {5001}
    proc.leftovers_ignore_term = True
    h.ops.exit(1001, code=1)
    assert ("kill_tree", 1001, signal.SIGTERM) in h.ops.calls
    assert "left behind" in h.log("w").messages[-2]
    h.advance(0.1)
    assert ("kill_tree", 1001, signal.SIGKILL) in h.ops.calls  # swept before the new spawn
    assert h.pids("w") == [1002]


def test_spawn_failure_is_failed_with_the_reason(h: Harness) -> None:
    h.sup.add(dict(SLEEP, restart_err=True))
    h.settle()
    h.ops.fail_next_spawn = "cannot start w#1: /usr/bin/sleep: Permission denied"
    h.ops.exit(1001, code=1)
    h.advance(1)
    inst = h.status("w")["instances"][0]
    assert inst["status"] == "failed" and "Permission denied" in inst["error"]
    assert h.status("w")["status"] == "errored"
    assert "instance.failed" in h.kinds()


def test_start_validates_before_touching_state(h: Harness) -> None:
    from alter.errors import StartFailed

    h.sup.add(dict(SLEEP), start=False)
    h.ops.executables.discard("/usr/bin/sleep")
    with pytest.raises(StartFailed, match="'sleep' not found in PATH"):
        h.sup.start("w")
    assert h.states("w") == ["stopped"]


def test_stop_while_in_backoff_cancels_the_restart(h: Harness) -> None:
    h.sup.add(dict(SLEEP, restart_err=True, err_delay=1000))
    h.settle()
    h.ops.exit(1001, code=1)
    h.sup.stop("w")
    h.advance(5)
    assert h.states("w") == ["stopped"] and len(h.ops.spawns()) == 1


def test_restart_stops_then_starts(h: Harness) -> None:
    h.sup.add(dict(SLEEP, instances=2))
    h.settle()
    h.sup.restart("w")
    assert h.states("w") == ["stopping", "stopping"]
    h.settle()
    assert h.states("w") == ["running", "running"] and sorted(h.pids("w")) == [1003, 1004]


def test_start_during_stopping_runs_after_the_stop(h: Harness) -> None:
    h.ops.ignore_term_next = True
    h.sup.add(dict(SLEEP, kill_timeout=1000))
    h.settle()
    h.sup.stop("w")
    h.sup.start("w")
    assert h.states("w") == ["stopping"]
    h.advance(1)
    assert h.states("w") == ["running"] and h.pids("w") == [1002]


def test_signal_goes_to_main_pids(h: Harness) -> None:
    h.sup.add(dict(SLEEP, instances=2))
    h.settle()
    assert h.sup.signal("w", signal.SIGHUP) == [{"instance": 1, "pid": 1001}, {"instance": 2, "pid": 1002}]
    assert h.sup.signal("w#2", signal.SIGUSR1) == [{"instance": 2, "pid": 1002}]
    assert h.ops.procs[1002].signals == [signal.SIGHUP, signal.SIGUSR1]


def test_output_goes_to_the_log_and_stderr_is_captured() -> None:
    h = Harness(pipes=True)
    try:
        h.sup.add(dict(SLEEP, restart_err=True))
        h.settle()
        h.ops.write(1001, b"hello\npartial")
        h.ops.write(1001, b"boom: EADDRINUSE\n", "err")
        h.settle()
        log = h.log("w")
        assert log.text(1) == "hello\npartial" and log.text(1, "err") == "boom: EADDRINUSE\n"
        h.ops.exit(1001, code=1)  # EOF and exit together
        h.settle()
        assert (1, "out") in log.closed_streams and (1, "err") in log.closed_streams
        assert not h.sup.pumps
    finally:
        h.close()


def test_events_carry_one_based_instances(h: Harness) -> None:
    h.sup.add(dict(SLEEP, instances=2))
    h.settle()
    starts = [d for k, d in h.events if k == "instance.start"]
    assert [(d["worker"], d["instance"], d["pid"]) for d in starts] == [("w", 1, 1001), ("w", 2, 1002)]
    states = [d["status"] for k, d in h.events if k == "worker.state"]
    assert states == ["starting", "partial", "running"]


def test_status_fields(h: Harness) -> None:
    h.sup.add(dict(SLEEP, env=["TOKEN=x"]))
    h.settle()
    h.advance(2.5)
    st = h.status("w")
    assert set(st) >= {
        "name",
        "namespace",
        "status",
        "enabled",
        "instances_wanted",
        "instances_running",
        "origin",
        "restarts",
        "config",
        "instances",
    }
    inst = st["instances"][0]
    assert inst["uptime"] == pytest.approx(2.5) and inst["cpu"] == 0.5 and inst["memory"] == 1024 * 1024
    assert inst["started_at"] == pytest.approx(h.ops.wall() - 2.5)
    assert st["origin"] == {"kind": "cli", "file": None} and st["namespace"] == "default"
    assert st["config"] == {"name": "w", "exec": "sleep", "params": ["100"], "env": ["TOKEN=x"]}


def test_output_after_the_exit_still_reaches_the_log() -> None:
    """A grandchild keeps the pipe open: EOF comes after the reap (and after the next attempt started)."""
    h = Harness(pipes=True)
    try:
        h.sup.add(dict(SLEEP, restart_err=True, err_delay=0))
        h.settle()
        h.ops.exit(1001, code=1, close_pipes=False)
        h.settle()
        assert h.pids("w") == [1002]
        h.ops.write(1001, b"late line\n")
        h.settle()
        assert "late line" in h.log("w").text(1)
        h.ops.close_pipes(1001)
        h.settle()
        assert h.log("w").closed_streams.count((1, "out")) == 1
        assert len(h.sup.pumps) == 2  # only the live attempt's pumps are left
    finally:
        h.close()

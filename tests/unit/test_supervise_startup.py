"""Startup grace (on_ready), hints, and rolling restarts."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional

import pytest

from alter.supervise.startup import hints_for
from alter.supervise.testing import Harness

SLEEP = {"name": "w", "exec": "sleep", "params": ["100"]}


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness(pipes=True)
    yield harness
    harness.close()


def collect() -> tuple[List[Optional[Dict[str, Any]]], Any]:
    got: List[Optional[Dict[str, Any]]] = []
    return got, got.append


def test_ready_after_every_instance_survived_the_grace(h: Harness) -> None:
    got, cb = collect()
    h.sup.add(dict(SLEEP, instances=2, startup_grace=1000), on_ready=cb)
    h.settle()
    h.advance(0.999)
    assert got == []
    h.advance(0.001)
    assert got == [None]


def test_first_attempt_death_reports_stderr_and_hints(h: Harness) -> None:
    got, cb = collect()
    h.sup.add(dict(SLEEP, instances=2, startup_grace=2000, restart_err=True), on_ready=cb)
    h.settle()
    h.ops.write(1002, b"Error: Cannot find module 'express'\n", "err")
    h.advance(0.3)
    h.ops.exit(1002, code=1)
    assert len(got) == 1
    detail = got[0]
    assert detail is not None
    assert detail["instance"] == 2 and detail["exit_code"] == 1 and detail["signal"] is None
    assert detail["runtime_ms"] == 300
    assert "Cannot find module" in detail["stderr"]
    assert any("npm install" in hint for hint in detail["hints"])
    h.advance(5)
    assert len(got) == 1  # resolved once; the auto-restart does not report again
    assert h.status("w")["instances"][1]["status"] == "running"


def test_killed_by_signal_detail(h: Harness) -> None:
    got, cb = collect()
    h.sup.add(dict(SLEEP, startup_grace=2000), on_ready=cb)
    h.settle()
    h.ops.exit(1001, signal=9, oom=True)
    assert got[0]["signal"] == "SIGKILL" and got[0]["exit_code"] is None
    assert "memory_limit" in got[0]["hints"][0]


def test_spawn_failure_reports_at_once(h: Harness) -> None:
    got, cb = collect()
    h.ops.fail_next_spawn = "cannot start w#1: /usr/bin/sleep: Permission denied"
    h.sup.add(dict(SLEEP), on_ready=cb)
    h.settle()
    assert got and got[0]["error"].endswith("Permission denied")


def test_death_after_the_grace_is_not_a_start_failure(h: Harness) -> None:
    got, cb = collect()
    h.sup.add(dict(SLEEP, startup_grace=500), on_ready=cb)
    h.advance(0.6)
    h.ops.exit(1001, code=1)
    assert got == [None]


def test_zero_grace_is_ready_once_spawned(h: Harness) -> None:
    got, cb = collect()
    h.sup.add(dict(SLEEP, startup_grace=0), on_ready=cb)
    assert got == []
    h.settle()
    assert got == [None]


def test_start_of_a_running_worker_is_ready_now(h: Harness) -> None:
    h.sup.add(SLEEP)
    h.settle()
    got, cb = collect()
    h.sup.start("w", on_ready=cb)
    assert got == [None]


def test_stop_during_the_grace_reports(h: Harness) -> None:
    got, cb = collect()
    h.sup.add(dict(SLEEP, startup_grace=2000), on_ready=cb)
    h.settle()
    h.sup.stop("w")
    assert got and "stopped before" in got[0]["error"]


def test_restart_waits_for_grace_too(h: Harness) -> None:
    h.sup.add(dict(SLEEP, startup_grace=1000))
    h.advance(2)
    got, cb = collect()
    h.sup.restart("w", on_ready=cb)
    h.settle()
    h.ops.exit(1002, code=2)
    assert got and got[0]["exit_code"] == 2


@pytest.mark.parametrize(
    "text,needle",
    [
        ("Error: Cannot find module 'x'", "npm install"),
        ("code: 'MODULE_NOT_FOUND'", "npm install"),
        ("ModuleNotFoundError: No module named 'flask'", "pip install"),
        ("sh: 1: nodee: not found", "PATH"),
        ("bash: foo: command not found", "PATH"),
        ("listen EADDRINUSE: address already in use :::3000", "port is already taken"),
        ("OSError: [Errno 98] Address already in use", "port is already taken"),
        ("Error: listen EACCES: permission denied 0.0.0.0:80", "permission denied"),
        ("connect ECONNREFUSED 127.0.0.1:5432", "depends_on"),
    ],
)
def test_hints(text: str, needle: str) -> None:
    assert any(needle in hint for hint in hints_for(text))


def test_no_hint_for_plain_output() -> None:
    assert hints_for("all good\n") == []


# ------------------------------------------------------------------------------------------ rolling


def test_rolling_restart_one_at_a_time(h: Harness) -> None:
    h.sup.add(dict(SLEEP, instances=3, rolling=True, rolling_delay=1000, startup_grace=500))
    h.advance(1)
    got, cb = collect()
    h.sup.restart("w", on_ready=cb)
    assert h.states("w") == ["stopping", "running", "running"]
    assert h.status("w")["status"] == "partial"
    h.settle()
    assert h.states("w") == ["running", "running", "running"] and h.pids("w") == [1004, 1002, 1003]
    h.advance(0.999)
    assert h.pids("w") == [1004, 1002, 1003]
    h.advance(0.001)
    h.settle()
    assert h.pids("w") == [1004, 1005, 1003]
    h.advance(1.0)
    assert h.pids("w") == [1004, 1005, 1006]
    assert got == []
    h.advance(0.5)  # the last one survived its grace
    assert got == [None]
    order = [d["instance"] for k, d in h.events if k == "instance.state" and d["state"] == "stopping"]
    assert order == [1, 2, 3]


def test_rolling_restart_stops_at_a_failing_instance(h: Harness) -> None:
    h.sup.add(dict(SLEEP, instances=3, rolling=True, rolling_delay=100, startup_grace=1000, restart_err=True))
    h.advance(2)
    got, cb = collect()
    h.sup.restart("w", on_ready=cb)
    h.settle()
    assert h.pids("w")[0] == 1004
    h.ops.exit(1004, code=1)  # the new version crashes at once
    assert got and got[0]["instance"] == 1
    h.advance(5)
    assert h.pids("w")[1:] == [1002, 1003]  # the others were never touched
    assert any("rolling restart stopped" in m for m in h.log("w").messages)


def test_stop_interrupts_a_rolling_restart(h: Harness) -> None:
    h.sup.add(dict(SLEEP, instances=2, rolling=True, rolling_delay=1000))
    h.advance(3)
    got, cb = collect()
    h.sup.restart("w", on_ready=cb)
    h.settle()
    h.sup.stop("w")
    h.settle()
    assert got and got[0]["error"]
    h.advance(5)
    assert h.states("w") == ["stopped", "stopped"]

"""The real engine (EventLoop + LinuxOps, no CLI): restarts after kill -9, restart latency, output."""

from __future__ import annotations

import os
import signal
import statistics
import sys
import uuid
from typing import Iterator

import pytest

from alter.supervise.testing import RealHarness

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux only")


@pytest.fixture
def eng() -> Iterator[RealHarness]:
    harness = RealHarness("itest-" + uuid.uuid4().hex[:8])
    yield harness
    harness.close()
    assert not harness.marked_pids()


def test_kill_9_restarts_after_err_delay(eng: RealHarness) -> None:
    eng.sup.add({"name": "s", "exec": "sleep", "params": ["100"], "restart_err": True, "err_delay": 300, "path": "/"})
    eng.run_until(lambda: eng.running("s"), what="first start")
    old = eng.pid("s")
    assert old is not None
    t0 = eng.time()
    os.kill(old, signal.SIGKILL)
    eng.run_until(lambda: eng.status("s")["instances"][0]["status"] == "backoff", what="backoff")
    inst = eng.status("s")["instances"][0]
    assert inst["last_exit"]["signal"] == "SIGKILL" and inst["next_start_at"] is not None
    eng.run_until(lambda: eng.pid("s") not in (None, old), what="restart")
    started = [t for t, kind, data in eng.events if kind == "instance.start" and data["pid"] == eng.pid("s")][0]
    assert 0.3 <= started - t0 < 0.3 + 0.25
    assert eng.status("s")["restarts"] == {"clean": 0, "error": 1}


LATENCY_SCRIPT = r"""
import json, os, signal, sys, uuid
sys.path.insert(0, sys.argv[1])
from alter.supervise.testing import RealHarness
eng = RealHarness("itest-lat-" + uuid.uuid4().hex[:6])
try:
    eng.sup.add({"name": "fast", "exec": "sleep", "params": ["100"], "restart": True, "restart_err": True,
                 "restart_delay": 0, "err_delay": 0, "path": "/"})
    eng.run_until(lambda: eng.running("fast"))
    samples = []
    for _ in range(int(sys.argv[2])):
        old = eng.pid("fast")
        t0 = eng.time()
        os.kill(old, signal.SIGKILL)
        eng.run_until(lambda: eng.pid("fast") not in (None, old) and eng.running("fast"))
        new = eng.pid("fast")
        at = [t for t, kind, d in eng.events if kind == "instance.state" and d["state"] == "running" and d["pid"] == new]
        samples.append((at[0] - t0) * 1000)
    print(json.dumps(samples))
finally:
    eng.close()
"""


def test_restart_latency_with_zero_delays() -> None:
    """SIGKILL -> new pid running with err_delay/restart_delay 0, 20 times, in a daemon-sized process.

    The engine runs in its own small process (like the daemon), not inside pytest, whose much larger
    memory makes every fork slower.  The median is printed; the bound is generous (bench measures).
    """
    import json
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run(
        [sys.executable, "-c", LATENCY_SCRIPT, root, "20"], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    samples = json.loads(out.strip().splitlines()[-1])
    assert len(samples) == 20
    median = statistics.median(samples)
    print(
        f"\nrestart latency SIGKILL -> running (ms): median {median:.2f}, min {min(samples):.2f}, "
        f"max {max(samples):.2f}"
    )
    assert median < 200


def test_clean_exit_restarts_immediately_with_restart_delay_0(eng: RealHarness) -> None:
    eng.sup.add({"name": "once", "exec": "true", "restart": True, "restart_delay": 0, "max_restarts": 5, "path": "/"})
    eng.run_until(lambda: eng.status("once")["status"] == "exited", what="5 restarts then exited")
    st = eng.status("once")
    assert st["restarts"] == {"clean": 5, "error": 0}
    assert "max_restarts 5 reached" in eng.logs.logs["once"].messages[-1]


def test_output_reaches_the_log_with_a_partial_last_line(eng: RealHarness) -> None:
    eng.sup.add({"name": "talk", "exec": "sh", "params": ["-c", "echo out; echo err >&2; printf tail"], "path": "/"})
    eng.run_until(lambda: eng.status("talk")["status"] == "exited", what="exit")
    log = eng.logs.logs["talk"]
    eng.run_until(lambda: (1, "out") in log.closed_streams and (1, "err") in log.closed_streams, what="EOF")
    assert log.text(1) == "out\ntail" and log.text(1, "err") == "err\n"


def test_startup_failure_detail_from_a_real_program(eng: RealHarness) -> None:
    got = []
    eng.sup.add(
        {
            "name": "bad",
            "exec": sys.executable,
            "params": ["-c", "import no_such_module_xyz"],
            "path": "/",
            "startup_grace": 3000,
        },
        on_ready=got.append,
    )
    eng.run_until(lambda: got, what="startup report")
    detail = got[0]
    assert detail["exit_code"] == 1 and detail["runtime_ms"] < 3000
    assert "ModuleNotFoundError" in detail["stderr"]
    assert any("Python module is missing" in h for h in detail["hints"])


def test_env_is_clean(eng: RealHarness) -> None:
    assert "PYTEST_CURRENT_TEST" in eng.ops.daemon_env  # the daemon's environment has it ...
    eng.sup.add({"name": "env", "exec": "env", "path": "/", "env": ["A=1"]})
    eng.run_until(lambda: (1, "out") in eng.logs.logs["env"].closed_streams, what="env output")
    lines = dict(line.split("=", 1) for line in eng.logs.logs["env"].text(1).splitlines() if "=" in line)
    assert lines["A"] == "1" and lines["APM"] == "1" and lines["APM_NAME"] == "env" and lines["APM_INDEX"] == "0"
    assert lines["APM_INSTANCE"] == f"{eng.daemon_id}:env#1"
    assert "PYTEST_CURRENT_TEST" not in lines  # ... the children do not
    assert lines == eng.sup.environment("env")


def test_an_exit_whose_sigchld_went_missing_is_still_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reaper's safety net: with no SIGCHLD dispatched at all, a stopped instance is still reaped
    (by the periodic waitpid) and the stop completes instead of waiting forever."""
    from alter.linux import spawn

    monkeypatch.setattr(spawn, "REAP_SWEEP", 0.3)
    harness = RealHarness("itest-" + uuid.uuid4().hex[:8])
    try:
        harness.sup.add({"name": "s", "exec": "sleep", "params": ["100"]})
        harness.run_until(lambda: harness.running("s"), what="running")
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # from here on no SIGCHLD reaches the loop
        done: list = []
        harness.sup.stop("s", lambda: done.append(1))
        harness.run_until(lambda: done, timeout=5, what="the stop to complete without a SIGCHLD")
        assert harness.status("s")["status"] == "stopped"
    finally:
        harness.loop.add_signal_handler(signal.SIGCHLD, lambda signum: harness.ops.reap())
        harness.close()
    assert not harness.marked_pids()

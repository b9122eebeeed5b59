"""The real engine: stopping whole process trees (daemonized grandchildren, SIGTERM ignorers), cgroups, OOM."""

from __future__ import annotations

import os
import sys
import time
import uuid
from typing import Iterator

import pytest

from alter.errors import StartFailed
from alter.supervise.testing import RealHarness

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux only")

# Forks a grandchild that double-forks + setsid (a classic daemon), records its pid, then the main process waits.
DAEMONIZE = r"""
import os, sys, time
pidfile = sys.argv[1]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(pidfile, "w") as f:
            f.write(str(os.getpid()))
        while True:
            time.sleep(1)
    os._exit(0)
print("ready", flush=True)
while True:
    time.sleep(1)
"""

IGNORE_TERM = r"""
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


@pytest.fixture
def eng() -> Iterator[RealHarness]:
    harness = RealHarness("itest-" + uuid.uuid4().hex[:8])
    yield harness
    harness.close()
    assert not harness.marked_pids()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_ready(eng: RealHarness, name: str) -> None:
    eng.run_until(lambda: "ready" in eng.logs.logs[name].text(1), what=f"{name} ready")


def test_stop_kills_a_daemonized_grandchild(eng: RealHarness, tmp_path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    eng.sup.add({"name": "d", "exec": sys.executable, "params": ["-c", DAEMONIZE, str(pidfile)], "path": "/"})
    wait_ready(eng, "d")
    eng.run_until(lambda: pidfile.exists() and pidfile.read_text(), what="grandchild pid")
    grandchild = int(pidfile.read_text())
    main = eng.pid("d")
    assert main is not None and alive(grandchild)
    with open(f"/proc/{grandchild}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[4]) != main  # its own session: not in the main's group
    done = []
    eng.sup.stop("d", lambda: done.append(True))
    eng.run_until(lambda: done, what="stopped")
    assert not alive(main) and not alive(grandchild)
    assert eng.status("d")["status"] == "stopped"
    assert not eng.marked_pids()


def test_leftovers_of_a_daemonizing_exit_are_cleaned(eng: RealHarness, tmp_path) -> None:
    """The main process daemonizes and exits 0: the leftover is terminated (systemd does the same)."""
    pidfile = tmp_path / "gc.pid"
    script = DAEMONIZE.replace('print("ready", flush=True)\nwhile True:\n    time.sleep(1)', "time.sleep(0.3)")
    eng.sup.add(
        {"name": "x", "exec": sys.executable, "params": ["-c", script, str(pidfile)], "path": "/", "kill_timeout": 500}
    )
    eng.run_until(lambda: eng.status("x")["status"] == "exited", what="exit")
    grandchild = int(pidfile.read_text())
    eng.run_until(lambda: not alive(grandchild), timeout=3, what="leftover gone")
    assert any("left behind" in m for m in eng.logs.logs["x"].messages)


def test_sigterm_ignored_gets_sigkill_after_kill_timeout(eng: RealHarness) -> None:
    eng.sup.add(
        {"name": "stubborn", "exec": sys.executable, "params": ["-c", IGNORE_TERM], "path": "/", "kill_timeout": 700}
    )
    wait_ready(eng, "stubborn")
    pid = eng.pid("stubborn")
    done = []
    t0 = eng.time()
    eng.sup.stop("stubborn", lambda: done.append(eng.time()))
    eng.run_for(0.5)
    assert alive(pid) and eng.status("stubborn")["status"] == "stopping"
    eng.run_until(lambda: done, what="stopped")
    elapsed = done[0] - t0
    print(f"\nSIGTERM ignored: stopped {elapsed * 1000:.0f} ms after stop (kill_timeout 700 ms)")
    assert 0.7 <= elapsed < 0.7 + 0.4
    assert not alive(pid)
    assert any("sending SIGKILL" in m for m in eng.logs.logs["stubborn"].messages)
    last = eng.status("stubborn")["instances"][0]["last_exit"]
    assert last["signal"] == "SIGKILL"


def test_children_live_in_their_cgroup(eng: RealHarness) -> None:
    if eng.ops.cgroups is None:
        pytest.skip("no usable cgroups here")
    eng.sup.add({"name": "cg", "exec": "sh", "params": ["-c", "sleep 100 & wait"], "path": "/", "instances": 2})
    eng.run_until(lambda: eng.running("cg"), what="running")
    eng.run_until(lambda: len(eng.ops.cgroups.procs(eng.ops.cgroups.path("cg.1"))) == 2, what="sleep forked")
    for index in (0, 1):
        pid = eng.pid("cg", index)
        group = eng.ops.cgroups.path(f"cg.{index}")
        assert pid in eng.ops.cgroups.procs(group)
        with open(f"/proc/{pid}/cgroup") as f:
            text = f.read()
        assert f"/apm/{eng.daemon_id}/cg.{index}" in text
    done = []
    eng.sup.stop("cg", lambda: done.append(1))
    eng.run_until(lambda: done, what="stopped")
    assert not os.path.exists(eng.ops.cgroups.path("cg.0"))  # released


def test_memory_limit_oom_kill_is_reported(eng: RealHarness) -> None:
    if eng.ops.cgroups is None or not eng.ops.cgroups.memory:
        pytest.skip("no memory controller here")
    hog = "import time\nx = []\nfor i in range(64):\n    x.append(bytearray(8 << 20))\n    time.sleep(0.005)\ntime.sleep(10)"
    eng.sup.add({"name": "hog", "exec": sys.executable, "params": ["-c", hog], "path": "/", "memory_limit": 64 << 20})
    eng.run_until(lambda: eng.status("hog")["status"] == "errored", timeout=20, what="OOM kill")
    last = eng.status("hog")["instances"][0]["last_exit"]
    assert last["signal"] == "SIGKILL" and last["oom"] is True
    assert "out of memory" in eng.logs.logs["hog"].messages[-1]


def test_exec_and_path_are_validated_before_spawning(eng: RealHarness, tmp_path) -> None:
    with pytest.raises(StartFailed, match="'no-such-program-xyz' not found in the PATH of user"):
        eng.sup.check_spawnable({"name": "a", "exec": "no-such-program-xyz"})
    with pytest.raises(StartFailed, match="path '/no/such/dir' is not a directory"):
        eng.sup.check_spawnable({"name": "a", "exec": "sleep", "path": "/no/such/dir"})
    script = tmp_path / "noexec.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    with pytest.raises(StartFailed, match="is not executable"):
        eng.sup.check_spawnable({"name": "a", "exec": str(script)})
    notaprogram = tmp_path / "text"
    notaprogram.write_text("hello\n")
    notaprogram.chmod(0o755)
    eng.sup.add({"name": "junk", "exec": str(notaprogram), "path": "/"})
    eng.run_until(lambda: eng.status("junk")["status"] == "errored", what="failed")
    inst = eng.status("junk")["instances"][0]
    assert inst["status"] == "failed" and "not a program this system can run" in inst["error"]


CRASHING_DAEMON = r"""
import sys
sys.path.insert(0, sys.argv[1])
from alter.supervise.testing import RealHarness
h = RealHarness(sys.argv[2])
h.sup.add({"name": "d", "exec": sys.executable, "params": ["-c", sys.argv[3], sys.argv[4]], "path": "/"})
h.run_until(lambda: "ready" in h.logs.logs["d"].text(1))
print(h.pid("d"), flush=True)
h.run_for(60)
"""


def test_leftovers_of_a_killed_daemon_are_swept_before_the_next_start(tmp_path) -> None:
    """kill -9 of the daemon: PDEATHSIG kills its child, but a daemonized grandchild survives in the
    instance's cgroup.  The next daemon (same id) kills it before starting the instance again."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    daemon_id = "itest-crash-" + uuid.uuid4().hex[:6]
    pidfile = tmp_path / "gc.pid"
    first = subprocess.Popen(
        [sys.executable, "-c", CRASHING_DAEMON, root, daemon_id, DAEMONIZE, str(pidfile)],
        stdout=subprocess.PIPE,
        text=True,
    )
    grandchild = None
    try:
        int(first.stdout.readline() if first.stdout else "")
        deadline = time.monotonic() + 5
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            time.sleep(0.01)
        grandchild = int(pidfile.read_text())
        first.kill()
        first.wait(timeout=10)
        assert alive(grandchild)  # double-forked away from PDEATHSIG: only the cgroup still knows it
        eng = RealHarness(daemon_id)
        try:
            if eng.ops.cgroups is None:
                pytest.skip("no usable cgroups here")
            eng.sup.add({"name": "d", "exec": "sleep", "params": ["100"], "path": "/"})
            eng.run_until(lambda: eng.running("d"), what="restart of the instance")
            eng.run_until(lambda: not alive(grandchild), timeout=5, what="stale grandchild killed")
        finally:
            eng.close()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        if grandchild is not None and alive(grandchild):
            os.kill(grandchild, 9)
        _sweep_daemon_id(daemon_id)


def _sweep_daemon_id(daemon_id: str) -> None:
    """Whatever a failed run left in this daemon id's cgroups: kill it, then remove the groups."""
    from alter.linux.cgroups import Cgroups

    cg = Cgroups.detect(daemon_id)
    if cg is None:
        return
    for name in os.listdir(cg.base):
        for pid in cg.procs(os.path.join(cg.base, name)):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
    time.sleep(0.05)
    cg.cleanup()

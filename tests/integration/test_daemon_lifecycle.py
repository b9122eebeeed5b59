"""The daemon's life through the built `dist/apm`: autostart, `apm exit daemon`, the foreground
mode for init systems (sd_notify), persistence across `kill -9`, and isolated daemons side by side.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Dict, Iterator, List, Optional

import psutil
import pytest

from tests.helpers import wait_for
from tests.integration.conftest import Apm, _require_build, pid_alive, wait_gone

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux only")

# Double-forks a classic daemon (setsid, closes stdio) that records its pid, then waits.
DAEMONIZE = r"""
import os, sys, time
pidfile = sys.argv[1]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for fd in (0, 1, 2):
            os.close(fd)
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(pidfile + ".tmp", pidfile)
        while True:
            time.sleep(1)
    os._exit(0)
while True:
    time.sleep(1)
"""

IGNORE_TERM = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    time.sleep(1)\n"


def cleanup(apm: Apm) -> None:
    """Zombie-aware teardown (this VM's pid 1 never reaps, psutil.wait_procs() would wait on zombies)."""
    procs: List[psutil.Process] = []
    pid = apm.daemon_pid()
    if pid and pid_alive(pid):
        try:
            procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            pass
    subprocess.run(apm.cmd("exit", "daemon"), env=apm.env, capture_output=True, timeout=30)
    procs += ours(apm)
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    for p in procs:
        wait_gone(p.pid, 5)
    try:
        os.unlink(os.path.join(apm.home, "state", "apm.pid"))
    except OSError:
        pass


def ours(apm: Apm) -> List[psutil.Process]:
    """Every live process that carries this test's APM_HOME (daemon, workers, grandchildren)."""
    found = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.pid != os.getpid() and pid_alive(p.pid) and p.environ().get("APM_HOME") == apm.home:
                found.append(p)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def apm(apm: Apm) -> Iterator[Apm]:
    yield apm
    cleanup(apm)


@pytest.fixture
def apm2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Apm]:
    """A second, independent daemon."""
    _require_build()
    home = str(tmp_path_factory.mktemp("apm-home2"))
    os.chmod(home, 0o755)
    inst = Apm(home)
    yield inst
    cleanup(inst)
    inst.cleanup()


def workers(apm: Apm) -> Dict[str, Dict[str, Any]]:
    return {w["name"]: w for w in apm.json("list")["workers"]}


def pids(status: Dict[str, Any]) -> List[int]:
    return [i["pid"] for i in status["instances"] if i["pid"]]


def listening(name: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect("\0" + name)
        return True
    except OSError:
        return False
    finally:
        s.close()


def read_pid(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------ autostart / exit


def test_first_command_starts_the_daemon_and_exit_daemon_stops_everything(apm: Apm, tmp_path) -> None:
    assert not listening(apm.socket)
    r = apm("--version")
    assert "daemon not running" in r.stdout
    r = apm("exit", "daemon")
    assert r.returncode == 0 and "no apm daemon is running" in r.stdout
    assert not listening(apm.socket) and apm.daemon_pid() is None, "--version / exit daemon never start a daemon"

    r = apm("list")  # the first real command starts one
    assert r.returncode == 0
    daemon = apm.daemon_pid()
    assert daemon and pid_alive(daemon) and listening(apm.socket)
    assert "daemon" in " ".join(psutil.Process(daemon).cmdline())
    apm("list")
    assert apm.daemon_pid() == daemon, "the next command reuses the running daemon"

    ignorer = tmp_path / "ignore.py"
    ignorer.write_text(IGNORE_TERM)
    apm("run", "sleep", "300", "--name", "web", "--instances", "2", "--startup-grace", "0")
    apm("run", sys.executable, str(ignorer), "--name", "stubborn", "--kill-timeout", "600", "--startup-grace", "300")
    children = [p for w in workers(apm).values() for p in pids(w)]
    assert len(children) == 3

    started = time.monotonic()
    result = apm.json("exit", "daemon")
    elapsed = time.monotonic() - started
    assert sorted(result["stopped"]) == ["stubborn", "web"]
    assert elapsed >= 0.55, "exit daemon must wait for kill_timeout before SIGKILLing the SIGTERM ignorer"
    assert all(not pid_alive(p) for p in children), "workers are stopped before the daemon exits"
    assert wait_gone(daemon, 5) and not listening(apm.socket)
    assert apm.daemon_pid() is None, "a clean exit removes the pid file"
    r = apm("exit", "daemon")
    assert "no apm daemon is running" in r.stdout

    # Workers keep their desired state across a clean exit: the next start brings them back.
    again = workers(apm)
    assert again["web"]["status"] == "running" and again["web"]["instances_running"] == 2
    assert not set(pids(again["web"])) & set(children)


def test_a_daemon_that_cannot_start_is_reported(apm: Apm) -> None:
    started = time.monotonic()
    r = apm("list", env={"APM_HOME": "/proc/no-such-dir/apm"}, check=False)
    assert r.returncode == 6, (r.returncode, r.stderr)
    assert "could not start the apm daemon" in r.stderr and "/proc/no-such-dir" in r.stderr, r.stderr
    assert "hint:" in r.stderr and "Traceback" not in r.stderr
    assert time.monotonic() - started < 10


def test_socket_names(apm: Apm) -> None:
    """Root's default is @apm; APM_HOME gives @apm.<uid>.<hash of the dir>; APM_SOCKET wins (no daemon started)."""
    env = {k: v for k, v in apm.env.items() if k not in ("APM_HOME", "APM_SOCKET")}
    digest = hashlib.sha256(os.path.abspath(apm.home).encode()).hexdigest()[:10]
    for extra, expected in (
        ({}, "@apm"),
        ({"APM_HOME": apm.home}, f"@apm.0.{digest}"),
        ({"APM_HOME": apm.home, "APM_SOCKET": "x-1"}, "@x-1"),
    ):
        r = subprocess.run(apm.cmd("--version", "--json"), env={**env, **extra}, capture_output=True, text=True,
                           timeout=30)  # fmt: skip
        assert json.loads(r.stdout)["socket"] == expected, (extra, r.stdout)


def test_foreground_daemon_speaks_sd_notify(apm: Apm, tmp_path) -> None:
    notify_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(20)
    env = dict(apm.env, NOTIFY_SOCKET=notify_path)
    daemon = subprocess.Popen(
        apm.cmd("daemon"), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert notify.recv(4096).split(b"\n")[0] == b"READY=1"
        assert listening(apm.socket), "READY=1 only once requests are accepted"
        assert apm.daemon_pid() == daemon.pid, "foreground: no fork"
        apm("run", "sleep", "300", "--name", "fg", "--instances", "2", "--startup-grace", "0")
        children = pids(workers(apm)["fg"])
        assert all(psutil.Process(p).ppid() == daemon.pid for p in children)
        daemon.send_signal(signal.SIGTERM)
        assert notify.recv(4096).startswith(b"STOPPING=1")
        code = daemon.wait(timeout=20)
        err = daemon.stderr.read().decode() if daemon.stderr else ""
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        notify.close()
    assert code == 0, err
    assert "received SIGTERM" in err, "the foreground daemon logs to stderr too"
    assert all(not pid_alive(p) for p in children), "SIGTERM stops every worker first"
    assert not listening(apm.socket)
    assert workers(apm)["fg"]["status"] == "running", "desired state survives the SIGTERM shutdown"


def test_a_second_daemon_on_the_same_socket_is_refused(apm: Apm) -> None:
    apm("list")
    r = subprocess.run(apm.cmd("daemon"), env=apm.env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "already listening" in r.stderr
    r = subprocess.run(apm.cmd("daemon", "--detach"), env=apm.env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "already listening" in r.stderr
    assert apm("list").returncode == 0


# ------------------------------------------------------------------------------------------ kill -9 / restore


def test_kill_9_of_the_daemon_leaves_no_orphan_and_restores_workers(apm: Apm, tmp_path) -> None:
    script = tmp_path / "daemonize.py"
    script.write_text(DAEMONIZE)
    gc_file = str(tmp_path / "grandchild.pid")
    apm("run", "sleep", "300", "--name", "a", "--instances", "2", "--env", "X=1", "--kill-timeout", "300",
        "--startup-grace", "0")  # fmt: skip
    apm("run", "sleep", "301", "--name", "b", "--startup-grace", "0")
    apm("stop", "b")
    apm("run", sys.executable, str(script), gc_file, "--name", "c", "--startup-grace", "0")
    apm("run", "sleep", "302", "--name", "d", "--depends-on", "a", "--startup-grace", "0")
    wait_for(lambda: read_pid(gc_file), 10, what="the daemonized grandchild")
    grandchild = read_pid(gc_file)
    assert grandchild is not None
    os.unlink(gc_file)
    before = workers(apm)
    children = [p for name in ("a", "c", "d") for p in pids(before[name])]
    assert len(children) == 4
    daemon = apm.daemon_pid()
    assert daemon is not None

    os.kill(daemon, signal.SIGKILL)
    assert wait_gone(daemon, 5)
    for pid in children:
        assert wait_gone(pid, 5), f"child {pid} outlived the daemon (PR_SET_PDEATHSIG)"

    after = workers(apm)  # starts a new daemon, which restores the saved workers
    new_daemon = apm.daemon_pid()
    assert new_daemon and new_daemon != daemon
    assert set(after) == {"a", "b", "c", "d"}
    for name in ("a", "b", "c", "d"):
        assert after[name]["config"] == before[name]["config"], f"{name} restored with another config"
    assert after["b"]["status"] == "stopped" and not pids(after["b"]), "a stopped worker stays stopped"
    for name in ("a", "c", "d"):
        wait_for(lambda n=name: workers(apm)[n]["status"] == "running", 10, what=f"{name} running again")
    after = workers(apm)
    assert after["a"]["instances_running"] == 2 and not set(pids(after["a"])) & set(children)
    env = psutil.Process(pids(after["a"])[0]).environ()
    assert env["X"] == "1"
    # depends_on order: d started only once a was running.
    assert min(i["started_at"] for i in after["d"]["instances"]) >= max(
        i["started_at"] for i in after["a"]["instances"]
    )

    assert wait_gone(grandchild, 5), "the old daemonized grandchild was swept before c started again"
    tree = {new_daemon, *(p.pid for p in psutil.Process(new_daemon).children(recursive=True))}
    strays = [(p.pid, p.cmdline()) for p in ours(apm) if p.pid not in tree]
    assert not strays, f"processes of the killed daemon survived: {strays}"


def test_every_acknowledged_change_survives_kill_9(apm: Apm) -> None:
    apm("run", "sleep", "300", "--name", "keep", "--startup-grace", "0")
    apm("run", "sleep", "300", "--name", "gone", "--startup-grace", "0")
    apm("run", "sleep", "300", "--name", "old", "--startup-grace", "0")
    apm("run", "sleep", "300", "--name", "halt", "--startup-grace", "0")
    # Each of these is answered only once it is on disk: kill -9 right after the replies.
    apm("run", "sleep", "300", "--name", "fresh", "--no-wait")
    apm("rm", "gone")
    apm("rename", "old", "new")
    apm("stop", "halt")
    apm("update", "keep", "--instances", "2", "--env", "V=2", "--no-restart")
    state = os.path.join(apm.home, "state", "state.json")
    assert os.stat(state).st_mode & 0o777 == 0o600, "the state file may hold secrets"
    with open(state) as f:
        json.load(f)  # complete, valid JSON
    daemon = apm.daemon_pid()
    assert daemon is not None
    os.kill(daemon, signal.SIGKILL)
    assert wait_gone(daemon, 5)
    after = workers(apm)
    assert set(after) == {"keep", "new", "halt", "fresh"}
    assert after["halt"]["status"] == "stopped"
    assert after["keep"]["config"]["instances"] == 2 and after["keep"]["config"]["env"] == ["V=2"]
    for name in ("keep", "new", "fresh"):
        wait_for(lambda n=name: workers(apm)[n]["status"] == "running", 10, what=f"{name} running")
    assert not [f for f in os.listdir(os.path.dirname(state)) if f.endswith(".tmp")], "no temp file left behind"


def test_a_corrupt_state_file_is_kept_aside(apm: Apm) -> None:
    state_dir = os.path.join(apm.home, "state")
    os.makedirs(state_dir, exist_ok=True)
    with open(os.path.join(state_dir, "state.json"), "w") as f:
        f.write('{"workers": {"version": 1, "workers": [tr')  # torn: what a non-atomic writer would leave
    r = apm("list")
    assert "No workers" in r.stdout
    kept = [f for f in os.listdir(state_dir) if f.startswith("state.json.corrupt-")]
    assert kept, "the unreadable state must be kept for the user, not deleted"
    with open(apm.home + "/apm.log") as f:
        assert "unreadable" in f.read()


# ------------------------------------------------------------------------------------------ isolation


def test_two_isolated_daemons_side_by_side(apm: Apm, apm2: Apm) -> None:
    assert apm.socket != apm2.socket
    apm("run", "sleep", "300", "--name", "same", "--startup-grace", "0")
    apm2("run", "sleep", "301", "--name", "same", "--instances", "2", "--startup-grace", "0")
    apm2("run", "sleep", "302", "--name", "only2", "--startup-grace", "0")
    one, two = workers(apm), workers(apm2)
    assert apm.daemon_pid() != apm2.daemon_pid()
    assert set(one) == {"same"} and set(two) == {"same", "only2"}
    assert one["same"]["instances_wanted"] == 1 and two["same"]["instances_wanted"] == 2
    assert not set(pids(one["same"])) & set(pids(two["same"]))
    assert os.path.isdir(os.path.join(apm.home, "logs", "same")) and os.path.isdir(
        os.path.join(apm2.home, "logs", "same")
    )
    # Stopping one daemon leaves the other alone.
    two_pids = pids(two["same"]) + pids(two["only2"])
    apm("exit", "daemon")
    assert all(pid_alive(p) for p in two_pids)
    assert workers(apm2)["same"]["instances_running"] == 2
    r = apm2("stop", "only2")
    assert r.returncode == 0 and apm.daemon_pid() is None, "talking to one daemon does not start the other"

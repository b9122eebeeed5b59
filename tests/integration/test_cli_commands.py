"""Every process and inspection command of the built `dist/apm`, typed as a user types them.

run, start, stop, restart, update (--no-restart), list, remove/rm, stopall,
rename, copy/cp, info, env, wait and signal forwarding (`apm SIGHUP name`,
`apm SIGUSR1 name#2`), with their `--json` schemas and their error exits.
Each test gets a private daemon (the `apm` fixture).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any, Dict, Iterator, List, Optional

import psutil
import pytest

from alter.config.options import WORKER_OPTIONS, Kind
from tests.helpers import wait_for
from tests.integration.conftest import Apm, pid_alive, wait_gone

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux only")

# The documented WorkerStatus (docs/protocol.md): keys every status must carry.
WORKER_KEYS = {
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
# Every option with a value of its own (`cmd` is exec+params shorthand; blocks are set only in config files).
VALUE_OPTIONS = {n for n, o in WORKER_OPTIONS.items() if o.kind is not Kind.BLOCK and n != "cmd"}
INSTANCE_KEYS = {
    "index",
    "pid",
    "status",
    "started_at",
    "uptime",
    "cpu",
    "memory",
    "restarts",
    "last_exit",
    "next_start_at",
    "port",
}

# Logs every SIGHUP/SIGUSR1/SIGUSR2/SIGRTMIN+2 it gets to <dir>/sig-<APM_INDEX>.txt; <dir>/ready-<APM_INDEX> once armed.
SIGNAL_LOGGER = r"""
import os, signal, sys, time
d, idx = sys.argv[1], os.environ["APM_INDEX"]
def note(signum, frame):
    name = "RTMIN+%d" % (signum - signal.SIGRTMIN) if signum > signal.SIGRTMIN else signal.Signals(signum).name
    with open(os.path.join(d, "sig-" + idx + ".txt"), "a") as f:
        f.write(name + "\n")
for s in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGRTMIN + 2):
    signal.signal(s, note)
open(os.path.join(d, "ready-" + idx), "w").close()
while True:
    time.sleep(1)
"""


@pytest.fixture
def apm(apm: Apm) -> Iterator[Apm]:
    """The conftest daemon, torn down zombie-aware first (this VM's pid 1 never reaps, and
    psutil.wait_procs() in the shared teardown waits on zombies for seconds)."""
    yield apm
    fast_cleanup(apm)


def fast_cleanup(apm: Apm) -> None:
    procs = []
    pid = apm.daemon_pid()
    if pid and pid_alive(pid):
        try:
            procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            pass
    subprocess.run(apm.cmd("exit", "daemon"), env=apm.env, capture_output=True, timeout=30)
    for p in psutil.process_iter(["pid"]):
        try:
            if p.pid != os.getpid() and p.environ().get("APM_HOME") == apm.home:
                procs.append(p)
        except psutil.Error:
            pass
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    for p in procs:
        wait_gone(p.pid, 5)
    try:
        os.unlink(os.path.join(apm.home, "state", "apm.pid"))  # nothing left for the shared teardown to wait on
    except OSError:
        pass


def worker(apm: Apm, name: str) -> Optional[Dict[str, Any]]:
    for w in apm.json("list")["workers"]:
        if w["name"] == name:
            return w
    return None


def pids(status: Dict[str, Any]) -> List[int]:
    return [i["pid"] for i in status["instances"] if i["pid"]]


def check_worker_status(status: Dict[str, Any]) -> None:
    missing = WORKER_KEYS - set(status)
    assert not missing, f"WorkerStatus lacks {missing}: {status}"
    assert isinstance(status["restarts"], dict) and set(status["restarts"]) >= {"clean", "error"}
    assert isinstance(status["origin"], dict) and "kind" in status["origin"]
    for inst in status["instances"]:
        missing = INSTANCE_KEYS - set(inst)
        assert not missing, f"instance status lacks {missing}: {inst}"


def environ(pid: int) -> Dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        items = [x.decode() for x in f.read().split(b"\0") if x]
    return dict(item.split("=", 1) for item in items)


def cmdline(pid: int) -> List[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [x.decode() for x in f.read().split(b"\0") if x]


# ------------------------------------------------------------------------------------------ lifecycle


def test_run_stop_start_restart_through_the_cli(apm: Apm) -> None:
    r = apm("run", "sleep", "300", "--name", "web", "--instances", "2", "--startup-grace", "100")
    assert "Starting web" in r.stdout and "web running 2/2" in r.stdout, r.stdout
    web = worker(apm, "web")
    assert web is not None
    check_worker_status(web)
    assert (web["status"], web["instances_running"], web["instances_wanted"]) == ("running", 2, 2)
    assert web["namespace"] == "default" and web["origin"]["kind"] == "cli"
    assert web["config"]["exec"] == "sleep" and web["config"]["params"] == ["300"]
    first = pids(web)
    assert len(first) == 2 and all(pid_alive(p) for p in first)
    assert [i["index"] for i in web["instances"]] == [1, 2]  # instances are shown 1-based
    assert all(cmdline(p) == ["sleep", "300"] for p in first)

    stopped = apm.json("stop", "web")
    check_worker_status(stopped)
    assert stopped["status"] == "stopped" and stopped["instances_running"] == 0
    assert all(not pid_alive(p) for p in first), "stop returned before the processes were gone"

    r = apm("start", "web")
    assert "web running 2/2" in r.stdout, r.stdout
    second = pids(worker(apm, "web") or {})
    assert len(second) == 2 and not set(second) & set(first)

    restarted = apm.json("restart", "web")
    check_worker_status(restarted)
    third = pids(restarted)
    assert restarted["status"] == "running" and len(third) == 2 and not set(third) & set(second)
    assert all(not pid_alive(p) for p in second) and all(pid_alive(p) for p in third)

    # --no-wait returns at once; the worker still comes up.
    apm("stop", "web")
    r = apm("start", "web", "--no-wait")
    assert r.stdout.startswith("web ") and "Started child" not in r.stdout, r.stdout
    wait_for(lambda: (worker(apm, "web") or {}).get("status") == "running", 10, what="web running")


def test_list_table_and_empty_list(apm: Apm) -> None:
    r = apm("list")
    assert "apm run" in r.stdout, "an empty list must say how to start a worker"
    apm("run", "sleep", "300", "--name", "tbl", "--instances", "2", "--namespace", "blue", "--startup-grace", "0")
    r = apm("ls")
    header, *rows = r.stdout.splitlines()
    assert header.split() == ["NAME", "NAMESPACE", "STATUS", "INST", "PID", "CPU", "MEM", "UPTIME", "RESTARTS"]
    row = next(line for line in rows if line.startswith("tbl"))
    p = pids(worker(apm, "tbl") or {})
    cells = row.split()
    assert cells[:4] == ["tbl", "blue", "running", "2/2"], row
    assert cells[4] == f"{p[0]},{p[1]}", row
    assert cells[5].endswith("%") and cells[6][-1] in "BKMG" and cells[8] == "0/0", row
    assert "\x1b[" not in r.stdout, "no colour when stdout is a pipe"


def test_update_with_and_without_restart(apm: Apm) -> None:
    apm("run", "sleep", "300", "--name", "u", "--startup-grace", "0")
    pid = pids(worker(apm, "u") or {})[0]

    r = apm("update", "u", "--env", "A=1", "--no-restart")
    assert "not restarted" in r.stdout, r.stdout
    info = apm.json("info", "u")
    assert info["options"]["env"] == ["A=1"] and info["config"]["env"] == ["A=1"]
    assert pids(info) == [pid] and "A" not in environ(pid), "--no-restart must not touch the running process"

    upd = apm.json("update", "u", "--env", "A=2", "--kill-timeout", "300")
    check_worker_status(upd)
    new = pids(upd)
    assert new and new[0] != pid and not pid_alive(pid)
    assert environ(new[0])["A"] == "2"
    assert upd["config"]["kill_timeout"] == 300

    # Words after -- replace the program's arguments (all of them: `--json` must come before `--`).
    upd = json.loads(apm("update", "u", "--json", "--", "301").stdout)
    assert upd["config"]["params"] == ["301"]
    assert cmdline(pids(upd)[0]) == ["sleep", "301"]

    upd = apm.json("update", "u", "--instances", "3", "--no-restart")  # the instance count applies at once
    wait_for(lambda: (worker(apm, "u") or {}).get("instances_running") == 3, 10, what="3 instances")

    upd = apm.json("update", "u", "--unset", "env", "--no-restart")
    assert "env" not in upd["config"]

    r = apm("update", "u", check=False)
    assert r.returncode == 2 and "nothing to update" in r.stderr
    r = apm("update", "nope", "--instances", "2", check=False)
    assert r.returncode == 3 and "nope" in r.stderr
    r = apm("update", "u", "--unset", "no_such_option", check=False)
    assert r.returncode == 2 and "no_such_option" in r.stderr


def test_remove_stopall_rename_copy(apm: Apm) -> None:
    apm("run", "sleep", "300", "--name", "a", "--startup-grace", "0")
    apm("run", "sleep", "301", "--name", "b", "--instances", "2", "--startup-grace", "0")
    a_pid = pids(worker(apm, "a") or {})[0]

    r = apm("rename", "a", "a2")
    assert "a2" in r.stdout
    names = [w["name"] for w in apm.json("list")["workers"]]
    assert "a" not in names and "a2" in names
    assert pids(worker(apm, "a2") or {}) == [a_pid], "rename keeps the processes"
    r = apm("rename", "a2", "b", check=False)
    assert r.returncode == 4 and "already exists" in r.stderr
    r = apm("rename", "a2", "bad name", check=False)
    assert r.returncode == 2
    r = apm("rename", "a2", check=False)
    assert r.returncode == 2 and "missing" in r.stderr

    copy = apm.json("copy", "a2", "a3")
    check_worker_status(copy)
    assert copy["name"] == "a3" and copy["origin"]["kind"] == "copy"
    assert copy["config"]["params"] == ["300"]
    wait_for(lambda: (worker(apm, "a3") or {}).get("status") == "running", 10, what="copy running")
    assert pids(worker(apm, "a3") or {}) != [a_pid]
    apm("stop", "a2")
    r = apm("cp", "a2", "a4")
    assert "a4" in r.stdout
    assert (worker(apm, "a4") or {}).get("status") == "stopped", "a copy of a stopped worker stays stopped"

    running = {w["name"]: pids(w) for w in apm.json("list")["workers"]}
    result = apm.json("stopall")
    assert sorted(result["stopped"]) == ["a3", "b"], result
    for name in ("a3", "b"):
        assert all(not pid_alive(p) for p in running[name])
    assert {w["status"] for w in apm.json("list")["workers"]} == {"stopped"}
    r = apm("stopall")
    assert "no worker was running" in r.stdout

    apm("start", "b")
    b_pids = pids(worker(apm, "b") or {})
    assert apm.json("remove", "b") == {"removed": "b"}
    assert all(not pid_alive(p) for p in b_pids), "remove stops the worker first"
    r = apm("rm", "a4")
    assert "removed a4" in r.stdout
    assert sorted(w["name"] for w in apm.json("list")["workers"]) == ["a2", "a3"]
    r = apm("rm", "a4", check=False)
    assert r.returncode == 3


def test_info_shows_every_option_and_each_instance(apm: Apm) -> None:
    apm("run", "sleep", "300", "--name", "inf", "--instances", "2", "--kill-timeout", "700", "--startup-grace", "0")
    info = apm.json("info", "inf")
    check_worker_status(info)
    assert set(info["options"]) == VALUE_OPTIONS, "info --json must hold every option's effective value"
    assert info["options"]["kill_timeout"] == 700 and info["options"]["restart_delay"] == 250
    assert len(info["instances"]) == 2 and all(i["status"] == "running" for i in info["instances"])

    text = apm("info", "inf").stdout
    assert "inf" in text.splitlines()[0] and "running" in text.splitlines()[0]
    for option in VALUE_OPTIONS:
        assert option in text, f"apm info does not show option {option}"
    for pid in pids(info):
        assert str(pid) in text
    kill_line = next(line for line in text.splitlines() if line.split()[:1] == ["kill_timeout"])
    assert "700" in kill_line and "(default)" not in kill_line
    delay_line = next(line for line in text.splitlines() if line.split()[:1] == ["restart_delay"])
    assert "(default)" in delay_line


def test_env_shows_what_each_instance_gets(apm: Apm) -> None:
    apm(
        "run", "sleep", "300", "--name", "e", "--instances", "2", "--env", "A=1", "--env", "LIST=x,y",
        "--env-index", "IDX", "--startup-grace", "0",
    )  # fmt: skip
    text = apm("env", "e#2").stdout
    lines = text.splitlines()
    assert lines == sorted(lines), "apm env prints KEY=value sorted"
    shown = dict(line.split("=", 1) for line in lines)
    assert shown["A"] == "1" and shown["LIST"] == "x,y" and shown["IDX"] == "1" and shown["APM_INDEX"] == "1"
    data = apm.json("env", "e")
    assert set(data) == {"env"} and data["env"]["IDX"] == "0"
    # What apm env says is what the child really got.
    status = worker(apm, "e") or {}
    real = environ(status["instances"][1]["pid"])
    for key in ("A", "LIST", "IDX", "APM_INDEX", "HOME", "USER", "PATH"):
        assert real[key] == shown[key], key
    r = apm("env", "e#3", check=False)
    assert r.returncode == 3 and "#3" in r.stderr
    r = apm("env", "e#0", check=False)
    assert r.returncode == 2
    r = apm("env", "nope", check=False)
    assert r.returncode == 3


def test_wait_blocks_until_running(apm: Apm) -> None:
    apm("run", "sleep", "300", "--name", "w", "--startup-grace", "0")
    apm("stop", "w")
    started = time.monotonic()
    r = apm("wait", "w", "--timeout", "400", check=False)
    elapsed = time.monotonic() - started
    assert r.returncode != 0 and "timed out" in r.stderr, r.stderr
    assert 0.35 < elapsed < 10

    waiter = subprocess.Popen(
        apm.cmd("wait", "w", "--timeout", "20s", "--json"), env=apm.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        time.sleep(0.3)
        assert waiter.poll() is None, "wait returned while the worker was stopped"
        apm("start", "w", "--no-wait")
        out, err = waiter.communicate(timeout=15)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    status = json.loads(out)
    check_worker_status(status)
    assert status["status"] == "running"
    r = apm("wait", "w")  # already running: answers at once
    assert "w running" in r.stdout
    r = apm("wait", "nope", check=False)
    assert r.returncode == 3


def test_signal_forwarding(apm: Apm, tmp_path) -> None:
    script = tmp_path / "sig.py"
    script.write_text(SIGNAL_LOGGER)
    d = str(tmp_path)
    apm("run", sys.executable, str(script), d, "--name", "sig", "--instances", "2", "--startup-grace", "0")
    wait_for(lambda: os.path.exists(f"{d}/ready-0") and os.path.exists(f"{d}/ready-1"), 10, what="handlers armed")
    p1, p2 = pids(worker(apm, "sig") or {})

    def got(index: int) -> List[str]:
        try:
            with open(f"{d}/sig-{index}.txt") as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    r = apm("SIGHUP", "sig")
    assert f"sig#1 (pid {p1})" in r.stdout and f"sig#2 (pid {p2})" in r.stdout, r.stdout
    wait_for(lambda: got(0) == ["SIGHUP"] and got(1) == ["SIGHUP"], 5, what="SIGHUP to both")
    apm("SIGUSR1", "sig#2")
    wait_for(lambda: got(1) == ["SIGHUP", "SIGUSR1"], 5, what="SIGUSR1 to sig#2")
    apm("HUP", "sig#1")  # the SIG prefix is optional in upper case
    wait_for(lambda: got(0) == ["SIGHUP", "SIGHUP"], 5, what="HUP to sig#1")
    sent = apm.json("signal", "usr2", "sig")
    assert sorted((s["instance"], s["pid"]) for s in sent["sent"]) == [(1, p1), (2, p2)]
    wait_for(lambda: got(0)[-1:] == ["SIGUSR2"] and got(1)[-1:] == ["SIGUSR2"], 5, what="SIGUSR2")
    apm("signal", "10", "sig#1")  # a number works with the long form
    wait_for(lambda: got(0)[-1:] == ["SIGUSR1"], 5, what="signal 10")
    apm("SIGRTMIN+2", "sig#1")  # real-time signals by name (docs/cli.md)
    wait_for(lambda: got(0)[-1:] == ["RTMIN+2"], 5, what="SIGRTMIN+2")
    time.sleep(0.2)
    assert got(1) == ["SIGHUP", "SIGUSR1", "SIGUSR2"], "instance 2 got a signal meant for instance 1"

    for args, code in (
        (("SIGFOO", "sig"), 2),
        (("signal", "SIGFOO", "sig"), 2),
        (("SIGHUP", "sig#3"), 3),
        (("SIGHUP", "sig#0"), 2),
        (("SIGHUP", "nope"), 3),
        (("kill", "sig"), 2),
    ):
        r = apm(*args, check=False)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        assert "Traceback" not in r.stderr and r.stderr.startswith("apm: "), r.stderr
    r = apm("SIGHUP", "sig#3", check=False)
    assert "sig#1 to sig#2" in r.stderr and "did you mean" not in r.stderr, r.stderr
    r = apm("kill", "sig", check=False)
    assert "exit daemon" in r.stderr
    assert all(pid_alive(p) for p in (p1, p2)), "HUP/USR1/USR2 are handled: nobody died"


def test_missing_or_unknown_names_are_helpful_errors(apm: Apm) -> None:
    # No daemon yet: the error is still helpful, and looking up names for the hint starts no daemon.
    for cmd in ("restart", "stop", "start", "info", "remove"):
        r = apm(cmd, check=False)
        assert r.returncode == 2, (cmd, r.stderr)
        assert "missing" in r.stderr and f"apm {cmd}" in r.stderr and "Traceback" not in r.stderr
    assert apm.daemon_pid() is None, "a usage error must not start a daemon"

    apm("run", "sleep", "300", "--name", "web", "--startup-grace", "0")
    apm("run", "sleep", "300", "--name", "api", "--startup-grace", "0")
    r = apm("restart", check=False)
    assert r.returncode == 2 and "usage: apm restart" in r.stderr and "web" in r.stderr and "api" in r.stderr
    r = apm("stop", check=False)
    assert r.returncode == 2 and "usage: apm stop" in r.stderr and "web" in r.stderr
    for cmd in ("restart", "stop", "start", "info", "env", "remove", "wait"):
        r = apm(cmd, "wbe", check=False)
        assert r.returncode == 3, (cmd, r.returncode, r.stderr)
        assert "no worker named 'wbe'" in r.stderr and "did you mean web" in r.stderr, (cmd, r.stderr)
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    r = apm("restart", "zzzzzz", check=False)
    assert r.returncode == 3 and "zzzzzz" in r.stderr
    r = apm("stop", "web", "extra", check=False)
    assert r.returncode == 2 and "unexpected argument" in r.stderr
    r = apm("delete", "web", check=False)
    assert r.returncode == 2 and "apm remove" in r.stderr
    r = apm("lst", check=False)
    assert r.returncode == 2 and "did you mean list" in r.stderr
    assert (worker(apm, "web") or {}).get("status") == "running", "nothing above touched the worker"


def test_list_shows_live_cpu_memory_and_uptime(apm: Apm) -> None:
    busy = "while True: pass"
    hold = "import time; b = bytearray(96 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); time.sleep(300)"
    apm("run", sys.executable, "-c", busy, "--name", "busy", "--startup-grace", "0")
    apm("run", sys.executable, "-c", hold, "--name", "mem", "--startup-grace", "0")

    def sample() -> Optional[Dict[str, Dict[str, Any]]]:
        found = {w["name"]: w["instances"][0] for w in apm.json("list")["workers"]}
        ok = (found["busy"]["cpu"] or 0) > 20 and (found["mem"]["memory"] or 0) > 90 * 1024 * 1024
        return found if ok else None

    found = wait_for(sample, 15, interval=0.3, what="CPU of the busy loop and RSS of the 96 MiB holder")
    assert (found["mem"]["cpu"] or 0) < (found["busy"]["cpu"] or 0)
    assert found["busy"]["uptime"] > 0
    rows = {line.split()[0]: line.split() for line in apm("list").stdout.splitlines()[1:]}
    assert rows["busy"][5].endswith("%") and float(rows["busy"][5][:-1]) > 5, rows["busy"]
    assert rows["mem"][6].endswith("M") and float(rows["mem"][6][:-1]) >= 90, rows["mem"]
    assert re.fullmatch(r"\d+s|\d+m\d+s", rows["busy"][7]), rows["busy"]

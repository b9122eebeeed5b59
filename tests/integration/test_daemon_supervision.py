"""Supervision through the built `dist/apm`: restart policy after kill -9 and exits, crash-loop
backoff shown in the state, whole-tree stops (daemonized grandchildren, SIGTERM ignorers),
depends_on ordering and timeout, process groups / cgroups, and `user` dropping to a user's
uid, gid and supplementary groups.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from typing import Any, Dict, Iterator, List, Optional

import psutil
import pytest

from tests.helpers import wait_for
from tests.integration.conftest import Apm, pid_alive, wait_gone

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux only")

# The grandchild notes a SIGTERM (then exits): the whole tree gets SIGTERM first, not just the main pid.
DAEMONIZE = r"""
import os, signal, sys, time
pidfile = sys.argv[1]
def term(signum, frame):
    open(pidfile + ".term", "w").close()
    os._exit(0)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, term)
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

# Ignores SIGTERM, and so does the child it forks (same process group, like a worker pool);
# both record their pids once armed.
IGNORE_TERM_TREE = r"""
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    with open(sys.argv[1] + ".child", "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)
with open(sys.argv[1], "w") as f:
    f.write(str(os.getpid()))
while True:
    time.sleep(1)
"""

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def rpc(apm: Apm, cmd: str, args: Optional[Dict[str, Any]] = None) -> Any:
    """One request straight on the control socket (docs/protocol.md): cheap enough to poll."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect("\0" + apm.socket)
        s.sendall(json.dumps({"v": 1, "id": 1, "cmd": cmd, "args": args or {}}).encode() + b"\n")
        buf = b""
        while True:
            chunk = s.recv(65536)
            assert chunk, f"the daemon closed the connection during {cmd}"
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                if "event" not in msg:
                    assert msg["ok"], msg
                    return msg["result"]


def status(apm: Apm, name: str) -> Dict[str, Any]:
    return rpc(apm, "info", {"name": name})


def pids(st: Dict[str, Any]) -> List[int]:
    return [i["pid"] for i in st["instances"] if i["pid"]]


def read_pid(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def log_text(apm: Apm, name: str) -> str:
    try:
        with open(os.path.join(apm.home, "logs", name, "out.log"), encoding="utf-8", errors="replace") as f:
            return ANSI.sub("", f.read())
    except FileNotFoundError:
        return ""


def restart_delays(apm: Apm, name: str) -> List[int]:
    """The delays the daemon announced, in ms, from `..., restarting in 200 ms` / `1.6s` log lines."""
    delays = []
    for value, unit in re.findall(r"restarting in ([\d.]+) ?(ms|s)\b", log_text(apm, name)):
        delays.append(int(round(float(value) * (1000 if unit == "s" else 1))))
    return delays


# ------------------------------------------------------------------------------------------ restart policy


def test_kill_9_of_a_child_restarts_per_policy(apm: Apm) -> None:
    common = ("--startup-grace", "0")
    apm("run", "sleep", "300", "--name", "re", "--restart-err", "--err-delay", "400", *common)
    apm("run", "sleep", "300", "--name", "plain", *common)
    apm("run", "sleep", "300", "--name", "codes", "--restart-on-exit-codes", "137", "--err-delay", "0", *common)
    apm("run", "sleep", "300", "--name", "other", "--restart-on-exit-codes", "3", "--restart-err", *common)
    old = {n: pids(status(apm, n))[0] for n in ("re", "plain", "codes", "other")}
    killed_at = time.monotonic()
    for pid in old.values():
        os.kill(pid, signal.SIGKILL)

    def restarted(name: str) -> Optional[int]:
        p = pids(status(apm, name))
        return p[0] if p and p[0] != old[name] else None

    new_re = wait_for(lambda: restarted("re"), 10, interval=0.01, what="re restarted")
    assert time.monotonic() - killed_at >= 0.35, "restarted before err_delay (400 ms)"
    assert wait_for(lambda: restarted("codes"), 10, what="codes restarted (137 = 128 + SIGKILL is listed)")
    st = status(apm, "re")
    assert st["restarts"] == {"clean": 0, "error": 1}
    assert st["instances"][0]["last_exit"]["signal"] == "SIGKILL" and st["instances"][0]["last_exit"]["code"] is None
    assert pid_alive(new_re)
    row = next(line for line in apm("list").stdout.splitlines() if line.startswith("re "))
    assert row.split()[-1] == "0/1", row

    time.sleep(0.6)  # past every delay that could apply
    for name in ("plain", "other"):
        st = status(apm, name)
        assert st["status"] == "errored" and not pids(st), f"{name} must not restart: {st['instances'][0]}"
        assert st["restarts"] == {"clean": 0, "error": 0}
    assert "restart_on_exit_codes" in log_text(apm, "other"), "the log says why it did not restart"


def test_clean_restarts_and_restart_limits(apm: Apm) -> None:
    apm("run", "sh", "-c", "sleep 0.1; exit 0", "--name", "clean", "--restart", "--restart-delay", "100",
        "--max-restarts", "2", "--startup-grace", "0")  # fmt: skip
    apm("run", "sh", "-c", "exit 1", "--name", "err", "--restart-err", "--err-delay", "0", "--max-err-restarts", "3",
        "--startup-grace", "0")  # fmt: skip
    apm("run", "sh", "-c", "exit 0", "--name", "once", "--startup-grace", "0")
    wait_for(lambda: status(apm, "clean")["status"] == "exited", 10, what="clean to exhaust max_restarts")
    wait_for(lambda: status(apm, "err")["status"] == "errored", 10, what="err to exhaust max_err_restarts")
    assert status(apm, "clean")["restarts"] == {"clean": 2, "error": 0}
    assert status(apm, "err")["restarts"] == {"clean": 0, "error": 3}
    assert "max_restarts 2 reached" in log_text(apm, "clean")
    assert "max_err_restarts 3 reached" in log_text(apm, "err")
    wait_for(lambda: status(apm, "once")["status"] == "exited", 5, what="once exited")
    assert status(apm, "once")["restarts"] == {"clean": 0, "error": 0}
    # A manual start resets the limit: three more tries.
    apm("start", "err", "--no-wait")
    wait_for(lambda: status(apm, "err")["restarts"]["error"] == 6 and status(apm, "err")["status"] == "errored", 10,
             what="3 more error restarts")  # fmt: skip


def test_crash_loop_backoff_grows_shows_next_attempt_and_resets(apm: Apm, tmp_path) -> None:
    # A program that fails fast twice, then runs past the 10 s reset window, then fails fast again.
    counter = tmp_path / "runs"
    prog = tmp_path / "flaky.py"
    prog.write_text(
        "import os, sys, time\n"
        f"path = {str(counter)!r}\n"
        "n = int(open(path).read()) if os.path.exists(path) else 0\n"
        "open(path, 'w').write(str(n + 1))\n"
        "if n == 2:\n    time.sleep(10.3)\n"
        "sys.exit(1)\n"
    )
    apm("run", sys.executable, str(prog), "--name", "stable", "--restart-err", "--err-delay", "100",
        "--startup-grace", "0")  # fmt: skip
    started = time.monotonic()

    apm("run", "sh", "-c", "exit 1", "--name", "loop", "--restart-err", "--err-delay", "100", "--startup-grace", "0")
    # A long first delay: the state (and `apm list` / `apm info`) show when the next attempt is due.
    apm("run", "sh", "-c", "exit 1", "--name", "slow", "--restart-err", "--err-delay", "3000", "--startup-grace", "0")
    wait_for(lambda: status(apm, "slow")["status"] == "backoff", 5, what="slow in backoff")
    listed = next(w for w in apm.json("list")["workers"] if w["name"] == "slow")
    inst = listed["instances"][0]
    assert listed["status"] == "backoff" and inst["status"] == "backoff" and inst["pid"] is None
    due = inst["next_start_at"] - inst["last_exit"]["at"]
    assert 2.9 <= due <= 3.1, f"next_start_at is {due:.3f}s after the exit, err_delay is 3 s"
    assert inst["next_start_at"] > time.time()
    row = next(line for line in apm("info", "slow").stdout.splitlines() if line.split()[:1] == ["1"])
    assert "backoff" in row and re.search(r"\bin [0-3](\.\d)?s\b", row), row
    apm("stop", "slow")
    assert status(apm, "slow")["instances"][0]["next_start_at"] is None, "a stop cancels the pending attempt"

    wait_for(lambda: len(restart_delays(apm, "loop")) >= 4, 15, what="four backoff rounds")
    assert restart_delays(apm, "loop")[:4] == [100, 200, 400, 800], log_text(apm, "loop")

    # A manual restart resets the streak: the next failure waits err_delay again.
    before = len(restart_delays(apm, "loop"))
    apm("restart", "loop", "--no-wait")
    wait_for(lambda: len(restart_delays(apm, "loop")) >= before + 2, 15, what="two more rounds after restart")
    assert restart_delays(apm, "loop")[before : before + 2] == [100, 200], log_text(apm, "loop")
    apm("stop", "loop")

    # A run longer than the reset window (10 s) ends the streak.
    wait_for(lambda: len(restart_delays(apm, "stable")) >= 5, 30, interval=0.2, what="five rounds of `stable`")
    assert restart_delays(apm, "stable")[:5] == [100, 200, 100, 100, 200], log_text(apm, "stable")
    assert time.monotonic() - started >= 10


# ------------------------------------------------------------------------------------------ stopping trees


def test_stop_restart_remove_leave_no_daemonized_grandchild(apm: Apm, tmp_path) -> None:
    script = tmp_path / "daemonize.py"
    script.write_text(DAEMONIZE)
    pidfile = str(tmp_path / "gc.pid")
    apm("run", sys.executable, str(script), pidfile, "--name", "dz", "--kill-timeout", "500", "--startup-grace", "0")

    def armed() -> tuple:
        gc = wait_for(lambda: read_pid(pidfile), 10, what="the daemonized grandchild")
        os.unlink(pidfile)
        main = pids(status(apm, "dz"))[0]
        assert psutil.Process(gc).ppid() != main and os.getsid(gc) != os.getsid(main), "it really daemonized"
        return gc, main

    for step in ("stop", "restart", "remove"):
        if step != "stop":
            apm("start", "dz")
        gc, main = armed()
        apm(step, "dz")
        assert not pid_alive(gc), f"`apm {step}` returned with the daemonized grandchild alive"
        assert not pid_alive(main)
        assert os.path.exists(pidfile + ".term"), f"`apm {step}`: the grandchild got no SIGTERM"
        os.unlink(pidfile + ".term")
        if step == "restart":
            armed()  # the new instance daemonizes again
            apm("stop", "dz")
    assert "dz" not in {w["name"] for w in rpc(apm, "list")["workers"]}


def test_sigterm_ignorers_get_sigkill_after_kill_timeout(apm: Apm, tmp_path) -> None:
    script = tmp_path / "ignore.py"
    script.write_text(IGNORE_TERM_TREE)
    pidfile = str(tmp_path / "main.pid")
    apm("run", sys.executable, str(script), pidfile, "--name", "stubborn", "--kill-timeout", "1200",
        "--startup-grace", "0")  # fmt: skip
    main = wait_for(lambda: read_pid(pidfile), 10, what="armed")
    child = wait_for(lambda: read_pid(pidfile + ".child"), 10, what="child armed")
    started = time.monotonic()
    stopper = subprocess.Popen(apm.cmd("stop", "stubborn"), env=apm.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # The daemon is one event loop: it keeps answering while the stop waits out kill_timeout.
        wait_for(lambda: status(apm, "stubborn")["status"] == "stopping", 5, interval=0.01, what="stopping")
        asked = time.monotonic()
        assert [w["name"] for w in rpc(apm, "list")["workers"]] == ["stubborn"]
        assert time.monotonic() - asked < 0.5, "a pending stop must not block other requests"
        assert pid_alive(main) and pid_alive(child), "SIGTERM is ignored: both wait for SIGKILL"
        assert stopper.wait(timeout=15) == 0
    finally:
        if stopper.poll() is None:
            stopper.kill()
            stopper.wait()
    elapsed = time.monotonic() - started
    assert 1.15 <= elapsed < 6, f"stop took {elapsed:.2f}s with kill_timeout 1200 ms"
    assert not pid_alive(main) and not pid_alive(child), "SIGKILL reaches the whole tree"
    assert "SIGKILL" in log_text(apm, "stubborn")

    # A program that honours SIGTERM does not wait for kill_timeout.
    apm("run", "sleep", "300", "--name", "polite", "--kill-timeout", "4000", "--startup-grace", "0")
    started = time.monotonic()
    apm("stop", "polite")
    assert time.monotonic() - started < 2.5


def test_each_instance_has_its_own_group_and_cgroup(apm: Apm) -> None:
    apm("run", "sleep", "300", "--name", "grp", "--instances", "2", "--startup-grace", "0")
    st = status(apm, "grp")
    daemon = apm.daemon_pid()
    for index, pid in enumerate(pids(st)):
        assert os.getpgid(pid) == pid and os.getsid(pid) == pid, "own session and process group"
        assert os.getpgid(pid) != os.getpgid(daemon)
        env = psutil.Process(pid).environ()
        assert env["APM_INSTANCE"].endswith(f":grp#{index + 1}")
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
        with open(os.path.join(apm.home, "apm.log")) as f:
            cgroups_usable = "marker scan only" not in f.read()
        if cgroups_usable:  # where available: <daemon's cgroup>/apm/<daemon-id>/<worker>.<index>
            assert any(re.search(rf"/apm/[^/]+/grp\.{index}$", line) for line in lines), lines


# ------------------------------------------------------------------------------------------ depends_on


def test_depends_on_ordering_and_timeout(apm: Apm) -> None:
    apm("run", "sleep", "300", "--name", "db", "--startup-grace", "0")
    apm("run", "sleep", "300", "--name", "cache", "--startup-grace", "0")
    apm("stop", "db")
    apm("stop", "cache")
    apm("run", "sleep", "300", "--name", "app", "--depends-on", "db,cache", "--depends-timeout", "20s", "--no-wait")
    st = status(apm, "app")
    assert st["status"] == "waiting" and st["waiting_for"] == ["db", "cache"], st
    assert st["instances"][0]["status"] == "waiting" and not pids(st)
    apm("start", "db")
    time.sleep(0.3)
    st = status(apm, "app")
    assert st["status"] == "waiting" and st["waiting_for"] == ["cache"]
    apm("start", "cache")
    wait_for(lambda: status(apm, "app")["status"] == "running", 10, what="app running once its dependencies run")
    app, db, cache = (status(apm, n)["instances"][0]["started_at"] for n in ("app", "db", "cache"))
    assert app >= db and app >= cache

    # Nothing comes: after depends_timeout it starts anyway, with a warning.
    apm("stop", "db")
    started = time.monotonic()  # before the request: the daemon's timer cannot have started earlier
    apm("run", "sleep", "300", "--name", "late", "--depends-on", "db", "--depends-timeout", "600",
        "--startup-grace", "0", "--no-wait")  # fmt: skip
    wait_for(lambda: status(apm, "late")["status"] == "running", 10, interval=0.01, what="late running")
    waited = time.monotonic() - started
    assert 0.55 <= waited < 5, f"started after {waited:.2f}s with depends_timeout 600 ms"
    assert "still not running after depends_timeout" in log_text(apm, "late")


# ------------------------------------------------------------------------------------------ user


@pytest.fixture
def temp_user() -> Iterator[Dict[str, str]]:
    if os.geteuid() != 0:
        pytest.fail("this test drops privileges and needs root: run it with sudo (tests/run.sh does)")
    tag = uuid.uuid4().hex[:6]
    user, group = f"apmc{tag}", f"apmx{tag}"
    subprocess.run(["groupadd", group], check=True, capture_output=True)
    try:
        subprocess.run(["useradd", "-M", "-N", "-d", f"/nonexistent-{tag}", "-s", "/bin/sh", "-G", group, user],
                       check=True, capture_output=True)  # fmt: skip
        try:
            yield {"user": user, "group": group}
        finally:
            # The daemon (torn down after this fixture) may still run the user's worker: userdel would refuse.
            uid = pwd.getpwnam(user).pw_uid
            procs = [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid]
            for p in procs:
                try:
                    p.kill()
                except psutil.Error:
                    pass
            for p in procs:
                wait_gone(p.pid, 5)
            subprocess.run(["userdel", user], check=True, capture_output=True)
    finally:
        subprocess.run(["groupdel", group], capture_output=True)


def test_user_drops_uid_gid_and_supplementary_groups(apm: Apm, temp_user: Dict[str, str]) -> None:
    pw = pwd.getpwnam(temp_user["user"])
    extra = grp.getgrnam(temp_user["group"]).gr_gid
    apm("run", "sleep", "300", "--name", "as-user", "--user", temp_user["user"], "--path", "/tmp",
        "--startup-grace", "0")  # fmt: skip
    pid = pids(status(apm, "as-user"))[0]
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    assert fields["Uid"].split() == [str(pw.pw_uid)] * 4
    assert fields["Gid"].split() == [str(pw.pw_gid)] * 4
    groups = {int(g) for g in fields["Groups"].split()}
    assert extra in groups, "the user's supplementary groups are set"
    assert 0 not in groups, "root's groups are dropped"
    env = psutil.Process(pid).environ()
    assert env["HOME"] == pw.pw_dir and env["USER"] == temp_user["user"] and env["LOGNAME"] == temp_user["user"]
    assert "/root" not in env["PATH"] and "/usr/bin" in env["PATH"]
    shown = rpc(apm, "env", {"name": "as-user"})["env"]
    assert shown["HOME"] == pw.pw_dir and shown["USER"] == temp_user["user"] and shown["PATH"] == env["PATH"]
    r = apm("run", "sleep", "300", "--name", "ghost", "--user", "no-such-user-xyz", check=False)
    assert r.returncode in (2, 7) and "no-such-user-xyz" in r.stderr

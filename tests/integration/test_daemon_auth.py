"""Who may talk to which daemon (docs/protocol.md, docs/cli.md "Which daemon"), with a real
non-root user driving the built `dist/apm`:

* a caller outside the `apm` group may only read (`list`); everything else is refused with
  exit 5 and a hint naming the group;
* a member of the `apm` group may run workers, and they run as that member;
* a user's own daemon (APM_HOME they own, or ~/.local/state/apm) works for them;
* the CLI refuses a socket held by another non-root user (SO_PEERCRED both ways).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Dict, Iterator, List, Optional

import psutil
import pytest

from tests.helpers import wait_for
from tests.integration.conftest import APM_BIN, SHIV_ROOT, Apm, pid_alive, wait_gone

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="Linux only"),
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"),
]


class User:
    """A throw-away login and a way to run the CLI as it."""

    def __init__(self, name: str, home: str, python: str) -> None:
        self.name = name
        self.home = home
        self.python = python
        pw = pwd.getpwnam(name)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid

    def run(self, *args: str, env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None,
            timeout: float = 60) -> subprocess.CompletedProcess:  # fmt: skip
        base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": self.home, "SHIV_ROOT": SHIV_ROOT, "NO_COLOR": "1",
                "LANG": "C.UTF-8"}  # fmt: skip
        base.update(env or {})
        return subprocess.run(
            self.setpriv() + [self.python, APM_BIN, *args],
            env=base,
            cwd=cwd or self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def setpriv(self) -> List[str]:
        # --init-groups reads the group database now: membership changes apply to the next command.
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--"]

    def processes(self) -> List[psutil.Process]:
        found = []
        for p in psutil.process_iter(["pid", "uids"]):
            try:
                if p.info["uids"] and p.info["uids"].real == self.uid and pid_alive(p.pid):
                    found.append(p)
            except psutil.Error:
                continue
        return found

    def kill_all(self) -> None:
        procs = self.processes()
        for p in procs:
            try:
                p.kill()
            except psutil.Error:
                pass
        for p in procs:
            wait_gone(p.pid, 5)


# The user's CLI autostarts its own daemon with sys.executable: the interpreter must be able to run itself again.
REEXEC = "import os, subprocess, sys; os.stat(sys.executable); subprocess.run([sys.executable, '-c', ''], check=True)"


def usable_python(setpriv: List[str]) -> Optional[str]:
    for candidate in (sys.executable, "/usr/bin/python3", shutil.which("python3") or ""):
        if (
            candidate
            and subprocess.run(setpriv + [candidate, "-c", REEXEC], capture_output=True, cwd="/").returncode == 0
        ):
            return candidate
    return None


@pytest.fixture
def apm(apm: Apm) -> Iterator[Apm]:
    """The root test daemon (started here, so the zipapp is extracted before the user needs it)."""
    apm("run", "sleep", "300", "--name", "s", "--startup-grace", "0")
    yield apm  # the conftest fixture tears the daemon down


@pytest.fixture
def user(apm: Apm) -> Iterator[User]:
    name = f"apmu{uuid.uuid4().hex[:6]}"
    home = tempfile.mkdtemp(prefix="apm-test-user-", dir="/tmp")  # pytest's temp dirs are 0700 root: not there
    subprocess.run(["useradd", "-M", "-N", "-d", home, "-s", "/bin/sh", name], check=True, capture_output=True)
    try:
        pw = pwd.getpwnam(name)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        os.chmod(home, 0o755)
        probe = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
        python = usable_python(probe)
        if python is None:
            pytest.fail("no Python interpreter the test user may run (install python3 for all users)")
        u = User(name, home, python)
        check = u.run("--version")
        if check.returncode != 0:
            pytest.fail(f"the test user cannot run {APM_BIN}: {check.stderr.strip()}")
        yield u
        u.kill_all()
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def apm_group() -> Iterator[str]:
    """The `apm` group, created for the test when missing (and removed again)."""
    created = False
    try:
        grp.getgrnam("apm")
    except KeyError:
        subprocess.run(["groupadd", "apm"], check=True, capture_output=True)
        created = True
    yield "apm"
    if created:
        subprocess.run(["groupdel", "apm"], capture_output=True)


def proc_uid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def test_a_caller_outside_the_apm_group_may_only_read(apm: Apm, user: User) -> None:
    to_root = {"APM_SOCKET": apm.socket}
    r = user.run("list", env=to_root)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].split()[:3] == ["s", "default", "running"]
    assert json.loads(user.run("list", "--json", env=to_root).stdout)["workers"][0]["name"] == "s"
    assert json.loads(user.run("--version", "--json", env=to_root).stdout)["daemon"]["pid"] == apm.daemon_pid()
    for args in (
        ("stop", "s"),
        ("restart", "s"),
        ("run", "sleep", "300", "--name", "mine"),
        ("info", "s"),
        ("env", "s"),
        ("rm", "s"),
        ("update", "s", "--instances", "2"),
        ("SIGHUP", "s"),
        ("stopall",),
        ("exit", "daemon"),
    ):
        r = user.run(*args, env=to_root)
        assert r.returncode == 5, (args, r.returncode, r.stderr)
        assert "apm group" in r.stderr and f"usermod -aG apm {user.name}" in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    status = apm.json("info", "s")
    assert status["status"] == "running" and status["restarts"] == {"clean": 0, "error": 0}
    assert [w["name"] for w in apm.json("list")["workers"]] == ["s"], "nothing was created"


def test_apm_group_members_run_workers_as_themselves(apm: Apm, user: User, apm_group: str) -> None:
    subprocess.run(["usermod", "-aG", apm_group, user.name], check=True, capture_output=True)
    try:
        to_root = {"APM_SOCKET": apm.socket}
        r = user.run("run", "sleep", "300", "--name", "theirs", "--startup-grace", "0", "--json", env=to_root)
        assert r.returncode == 0, r.stderr
        pid = json.loads(r.stdout)["instances"][0]["pid"]
        assert proc_uid(pid) == user.uid, "a non-root caller's worker runs as that caller"
        assert psutil.Process(pid).environ()["HOME"] == user.home
        # `user` cannot be used to climb: it is forced to the caller.
        r = user.run("run", "sleep", "300", "--name", "climb", "--user", "root", "--startup-grace", "0", "--json",
                     env=to_root)  # fmt: skip
        assert r.returncode == 0, r.stderr
        climb = json.loads(r.stdout)
        assert climb["config"]["user"] == user.name and proc_uid(climb["instances"][0]["pid"]) == user.uid
        r = user.run("update", "theirs", "--user", "root", env=to_root)
        assert r.returncode == 5 and "user" in r.stderr
        assert user.run("info", "theirs", env=to_root).returncode == 0
        assert user.run("stop", "theirs", env=to_root).returncode == 0
        assert not pid_alive(pid)
        # Group members may manage the daemon's other workers too.
        assert user.run("restart", "s", env=to_root).returncode == 0
    finally:
        subprocess.run(["gpasswd", "-d", user.name, apm_group], capture_output=True)
    r = user.run("stop", "s", env=to_root)
    assert r.returncode == 5, "leaving the group takes the rights away"


def test_a_users_own_daemon_works_for_them(apm: Apm, user: User) -> None:
    own_home = os.path.join(user.home, "apm-home")
    os.makedirs(own_home)
    os.chown(own_home, user.uid, user.gid)
    env = {"APM_HOME": own_home}
    r = user.run("run", "sleep", "300", "--name", "mine", "--startup-grace", "0", "--json", env=env)
    assert r.returncode == 0, r.stderr
    pid = json.loads(r.stdout)["instances"][0]["pid"]
    assert proc_uid(pid) == user.uid
    version = json.loads(user.run("--version", "--json", env=env).stdout)
    assert version["socket"].startswith(f"@apm.{user.uid}."), version
    daemon = version["daemon"]["pid"]
    assert proc_uid(daemon) == user.uid, "the user's daemon runs as the user"
    assert os.path.exists(os.path.join(own_home, "state", "state.json"))
    # A non-root daemon cannot run workers as someone else.
    r = user.run("run", "sleep", "300", "--name", "asroot", "--user", "root", env=env)
    assert r.returncode != 0 and "root daemon" in r.stderr
    # Root sees none of it: its daemon is another one.
    assert "mine" not in {w["name"] for w in apm.json("list")["workers"]}
    r = user.run("exit", "daemon", env=env)
    assert r.returncode == 0 and wait_gone(daemon, 10) and not pid_alive(pid)

    # Without APM_HOME/APM_SOCKET (and outside the apm group): @apm.<uid>, files under ~/.local/state/apm.
    r = user.run("run", "sleep", "300", "--name", "plain", "--startup-grace", "0")
    assert r.returncode == 0, r.stderr
    version = json.loads(user.run("--version", "--json").stdout)
    assert version["socket"] == f"@apm.{user.uid}"
    assert os.path.exists(os.path.join(user.home, ".local", "state", "apm", "state", "state.json")) or os.path.exists(
        os.path.join(user.home, ".local", "state", "apm", "state.json")
    )
    assert user.run("exit", "daemon").returncode == 0


def test_the_cli_refuses_a_socket_squatted_by_another_user(apm: Apm, user: User) -> None:
    name = f"apm-squat-{uuid.uuid4().hex[:8]}"
    squatter = subprocess.Popen(
        user.setpriv()
        + [
            user.python,
            "-c",
            "import socket, sys, time\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            f"s.bind('\\0{name}')\n"
            "s.listen(8)\n"
            "print('ready', flush=True)\n"
            "while True:\n"
            "    c, _ = s.accept()\n"
            "    c.recv(65536)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert squatter.stdout is not None and squatter.stdout.readline().strip() == "ready"
        started = time.monotonic()
        r = apm("list", env={"APM_SOCKET": name}, check=False, timeout=30)
        assert r.returncode == 5, (r.returncode, r.stderr)
        assert f"held by uid {user.uid}" in r.stderr and str(squatter.pid) in r.stderr, r.stderr
        assert time.monotonic() - started < 10
        # The user talking to root's daemon is fine the other way round (root is trusted).
        assert user.run("list", env={"APM_SOCKET": apm.socket}).returncode == 0
    finally:
        squatter.send_signal(signal.SIGKILL)
        squatter.wait()
    wait_for(lambda: not pid_alive(squatter.pid), 5, what="squatter gone")

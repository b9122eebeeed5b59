"""The real engine: running as another user (uid, gid, supplementary groups) and PR_SET_PDEATHSIG."""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Dict, Iterator

import pytest

from alter.linux.cgroups import Cgroups
from alter.supervise.testing import RealHarness

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = [pytest.mark.skipif(sys.platform != "linux", reason="Linux only"), pytest.mark.root]


@pytest.fixture
def eng() -> Iterator[RealHarness]:
    harness = RealHarness("itest-" + uuid.uuid4().hex[:8])
    yield harness
    harness.close()
    assert not harness.marked_pids()


@pytest.fixture
def temp_user() -> Iterator[Dict[str, str]]:
    if os.geteuid() != 0:
        pytest.fail("user tests create users and need root: run them with sudo (tests/run.sh does)")
    tag = uuid.uuid4().hex[:6]
    user, group = f"apmt{tag}", f"apmg{tag}"
    subprocess.run(["groupadd", group], check=True, capture_output=True)
    try:
        subprocess.run(
            ["useradd", "-M", "-N", "-d", "/tmp", "-s", "/bin/sh", "-G", group, user], check=True, capture_output=True
        )
        try:
            yield {"user": user, "group": group}
        finally:
            subprocess.run(["userdel", user], capture_output=True)
    finally:
        subprocess.run(["groupdel", group], capture_output=True)


def proc_status(pid: int) -> Dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def test_user_drops_uid_gid_and_groups(eng: RealHarness, temp_user: Dict[str, str]) -> None:
    import grp
    import pwd

    pw = pwd.getpwnam(temp_user["user"])
    extra = grp.getgrnam(temp_user["group"]).gr_gid
    eng.sup.add({"name": "u", "exec": "sleep", "params": ["100"], "user": temp_user["user"], "path": "/tmp"})
    eng.run_until(lambda: eng.running("u"), what="running as the user")
    pid = eng.pid("u")
    assert pid is not None
    st = proc_status(pid)
    assert st["Uid"].split() == [str(pw.pw_uid)] * 4
    assert st["Gid"].split() == [str(pw.pw_gid)] * 4
    assert sorted(int(g) for g in st["Groups"].split()) == sorted({pw.pw_gid, extra})
    env = eng.sup.environment("u")
    assert env["USER"] == env["LOGNAME"] == temp_user["user"] and env["HOME"] == "/tmp"
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    if eng.ops.cgroups is not None:  # joined its cgroup before dropping root
        assert pid in eng.ops.cgroups.procs(eng.ops.cgroups.path("u.0"))
    done = []
    eng.sup.stop("u", lambda: done.append(1))
    eng.run_until(lambda: done, what="stopped")


def test_unknown_user_is_a_clear_error(eng: RealHarness) -> None:
    from alter.errors import StartFailed

    with pytest.raises(StartFailed, match="no user named 'no-such-user-xyz'"):
        eng.sup.check_spawnable({"name": "x", "exec": "sleep", "user": "no-such-user-xyz"})


@pytest.fixture
def open_dir() -> Iterator[pathlib.Path]:
    """A directory every user may enter (pytest's tmp_path sits under a 0700 root-only folder)."""
    folder = tempfile.mkdtemp(prefix="apm-users-", dir="/tmp")
    os.chmod(folder, 0o755)
    yield pathlib.Path(folder)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_path_the_user_cannot_enter_is_refused(eng: RealHarness, temp_user: Dict[str, str], open_dir) -> None:
    """The chdir happens as root before the drop: apm must not start a worker where its user cannot go."""
    from alter.errors import StartFailed

    private = open_dir / "private"
    (private / "app").mkdir(parents=True)
    private.chmod(0o700)
    spec = {"name": "p", "exec": "sleep", "params": ["100"], "user": temp_user["user"], "path": str(private / "app")}
    with pytest.raises(StartFailed, match=r"cannot enter path .*private/app.*private is drwx------ root:root"):
        eng.sup.check_spawnable(spec)
    private.chmod(0o711)  # search permission is enough to enter a subdirectory
    eng.sup.check_spawnable(spec)


def test_the_child_enters_its_path_as_the_user(eng: RealHarness, temp_user: Dict[str, str], open_dir) -> None:
    """An ACL the mode bits cannot judge is left to the kernel: the child's second chdir, as the user, decides."""
    if subprocess.run(["which", "setfacl"], capture_output=True).returncode != 0:
        pytest.fail("setfacl is missing: tests/run.sh installs the acl package")
    granted = open_dir / "granted"
    granted.mkdir()
    granted.chmod(0o700)
    subprocess.run(["setfacl", "-m", f"u:{temp_user['user']}:x", str(granted)], check=True)
    eng.sup.add({"name": "g", "exec": "sleep", "params": ["100"], "user": temp_user["user"], "path": str(granted)})
    eng.run_until(lambda: eng.running("g"), what="running in a directory an ACL opens to the user")
    pid = eng.pid("g")
    assert pid is not None and os.readlink(f"/proc/{pid}/cwd") == str(granted)
    done = []
    eng.sup.stop("g", lambda: done.append(1))
    eng.run_until(lambda: done, what="stopped")


def test_an_acl_denying_the_user_stops_the_start(eng: RealHarness, temp_user: Dict[str, str], open_dir) -> None:
    """Mode bits say yes, an ACL says no: the child's chdir as the user fails and nothing runs there."""
    denied = open_dir / "denied"
    denied.mkdir()
    denied.chmod(0o755)
    subprocess.run(["setfacl", "-m", f"u:{temp_user['user']}:---", str(denied)], check=True)
    eng.sup.add({"name": "d", "exec": "sleep", "params": ["100"], "user": temp_user["user"], "path": str(denied)})
    eng.run_until(lambda: eng.sup.status("d")["instances"][0]["error"], what="the start to fail")
    status = eng.sup.status("d")
    assert status["status"] != "running" and status["instances"][0]["pid"] is None, status
    assert f"entering {denied}" in status["instances"][0]["error"], status


CHILD_DAEMON = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from alter.supervise.testing import RealHarness
h = RealHarness(sys.argv[2])
h.sup.add({"name": "kid", "exec": "sleep", "params": ["100"], "path": "/"})
h.run_until(lambda: h.running("kid"))
print(h.pid("kid"), flush=True)
h.run_for(60)
"""


def test_children_die_with_the_daemon(tmp_path) -> None:
    """PR_SET_PDEATHSIG: SIGKILL a process that runs the engine; its child must die too."""
    daemon_id = "itest-pd-" + uuid.uuid4().hex[:6]
    proc = subprocess.Popen([sys.executable, "-c", CHILD_DAEMON, ROOT, daemon_id], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        child = int(line)
        assert os.path.exists(f"/proc/{child}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{child}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                        break
            except OSError:
                break
            time.sleep(0.02)
        else:
            os.kill(child, signal.SIGKILL)
            raise AssertionError(f"child {child} survived its daemon")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        time.sleep(0.05)
        cg = Cgroups.detect(daemon_id)
        if cg is not None:
            cg.cleanup()

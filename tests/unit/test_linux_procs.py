"""/proc scanning, users/exec lookup, prctl and stats on the live system (cheap, no long processes)."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alter.errors import StartFailed
from alter.linux import prctl, proctree, users
from alter.linux.stats import StatsCache
from alter.supervise.ops import UserInfo


def test_stat_fields_and_alive() -> None:
    state, ppid, pgid = proctree.stat_fields(os.getpid())  # type: ignore[misc]
    assert ppid == os.getppid() and pgid == os.getpgrp() and state in "RS"
    assert proctree.is_alive(os.getpid())
    assert proctree.stat_fields(2**22 + 12345) is None


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_scan_finds_marked_processes_and_groups() -> None:
    env = dict(os.environ, APM_INSTANCE="unit:scan#1")
    marked = subprocess.Popen(["sleep", "30"], env=env)
    grouped = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        for p in (marked, grouped):  # environ and session are the child's own only once it has exec'd
            deadline = time.monotonic() + 5
            while _cmdline(p.pid) != b"sleep\x0030\x00" and time.monotonic() < deadline:
                time.sleep(0.005)
        found = proctree.scan("unit:scan#1", grouped.pid, None, {os.getpid()})
        assert found == {marked.pid, grouped.pid}
        assert proctree.scan("unit:scan#2", None, None, set()) == set()
        assert not proctree.scan("unit:scan#1", None, 12345678, set())  # uid filter
    finally:
        for p in (marked, grouped):
            p.kill()
            p.wait()
    assert proctree.scan("unit:scan#1", None, None, set()) == set()


def test_lookup_users() -> None:
    root = users.lookup_user("root")
    assert (root.uid, root.gid, root.home) == (0, 0, pwd.getpwuid(0).pw_dir) and 0 in root.groups
    assert users.lookup_user("0").name == "root"
    with pytest.raises(Exception, match="no user named"):
        users.lookup_user("no-such-user-xyz")
    assert users.current_user().uid == os.geteuid()


def test_resolve_exec(tmp_path: Path) -> None:
    me = users.current_user()
    assert users.resolve_exec("sh", me, "/", "/nonexistent:/bin:/usr/bin") in ("/bin/sh", "/usr/bin/sh")
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    nobody = UserInfo("nobody", 65534, 65534, (65534,), "/", "/bin/sh")
    with pytest.raises(StartFailed, match="not executable by nobody"):
        users.resolve_exec("./run.sh", nobody, str(tmp_path), "")
    script.chmod(0o755)
    assert users.resolve_exec("./run.sh", nobody, str(tmp_path), "") == str(script)
    with pytest.raises(StartFailed, match="does not exist"):
        users.resolve_exec("./missing", me, str(tmp_path), "")
    with pytest.raises(StartFailed, match=r"'zzz-nope' not found in the PATH of user"):
        users.resolve_exec("zzz-nope", me, "/", "/bin")
    with pytest.raises(StartFailed, match="not a regular file"):
        users.resolve_exec(str(tmp_path), me, "/", "")


def test_can_execute_by_group(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_text("")
    os.chown(f, 0, 4242) if os.geteuid() == 0 else pytest.skip("needs root")
    f.chmod(0o710)
    assert users.can_execute(str(f), UserInfo("u", 5000, 5000, (5000, 4242), "/", "/bin/sh"))
    assert not users.can_execute(str(f), UserInfo("u", 5000, 5000, (5000,), "/", "/bin/sh"))


def test_subreaper_round_trip() -> None:
    code = (
        "from alter.linux import prctl;"
        "a = prctl.is_subreaper(); b = prctl.become_subreaper(); c = prctl.is_subreaper();"
        "print(a, b, c)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=str(Path(__file__).resolve().parents[2]),
        check=True,
    ).stdout.split()
    assert out == ["False", "True", "True"]
    assert prctl.prctl_function()(prctl.PR_GET_CHILD_SUBREAPER + 1000, 0) != 0  # bad option: -1, no crash


def test_stats_cache() -> None:
    t = [0.0]
    cache = StatsCache(max_age=0.5, clock=lambda: t[0])
    cpu, rss = cache.sample(os.getpid())
    assert cpu is not None and cpu >= 0 and rss and rss > 1 << 20
    assert cache.sample(os.getpid()) == (cpu, rss)  # cached
    t[0] = 1.0
    assert cache.sample(os.getpid())[1] is not None
    assert cache.sample(2**22 + 12345) == (None, None)

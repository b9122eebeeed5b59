"""Cgroup detection and file handling on a fake /sys/fs/cgroup tree (the real v1 tree: integration tests)."""

from __future__ import annotations

import os
from pathlib import Path

from alter.linux.cgroups import Cgroups, own_paths, safe_name


def touch(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_own_paths(tmp_path: Path) -> None:
    f = tmp_path / "cgroup"
    f.write_text("12:pids:/\n4:memory:/system.slice/apm.service\n1:name=systemd:/x\n0::/user.slice\n")
    assert own_paths(str(f)) == {
        "pids": "/",
        "memory": "/system.slice/apm.service",
        "name=systemd": "/x",
        "": "/user.slice",
    }
    assert own_paths(str(tmp_path / "missing")) == {}


def test_v1_layout_limits_and_oom(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    touch(root / "memory" / "cgroup.procs")
    self_cgroup = tmp_path / "self"
    self_cgroup.write_text("4:memory:/svc\n0::/\n")
    cg = Cgroups.detect("apm.0.abc", str(root), str(self_cgroup))
    assert cg is not None and cg.version == 1 and cg.memory
    assert cg.base == str(root / "memory" / "svc" / "apm" / "apm.0.abc")
    group = Path(cg.path("web.0"))
    for name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "cgroup.procs", "memory.failcnt"):
        touch(group / name)
    touch(group / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert cg.prepare("web.0", 64 << 20) == str(group)
    assert (group / "memory.limit_in_bytes").read_text() == str(64 << 20)
    assert (group / "memory.memsw.limit_in_bytes").read_text() == str(64 << 20)
    cg.prepare("web.0", None)
    assert (group / "memory.limit_in_bytes").read_text() == "-1"
    assert cg.oom_kills(str(group)) == 2
    (group / "cgroup.procs").write_text("12\n34\n")
    assert cg.procs(str(group)) == {12, 34}
    assert cg.procs(str(tmp_path / "nope")) == set()
    assert cg.kill_all(str(group)) is False  # v1 has no cgroup.kill


def test_v1_oom_falls_back_to_failcnt(tmp_path: Path) -> None:
    cg = Cgroups(1, str(tmp_path), True)
    touch(tmp_path / "g" / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n")
    touch(tmp_path / "g" / "memory.failcnt", "7\n")
    assert cg.oom_kills(str(tmp_path / "g")) == 7


def test_v2_layout(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    touch(root / "cgroup.controllers", "cpu memory pids\n")
    touch(root / "svc" / "cgroup.controllers", "cpu memory pids\n")
    touch(root / "svc" / "cgroup.subtree_control", "memory\n")
    touch(root / "svc" / "apm" / "cgroup.subtree_control", "")
    touch(root / "svc" / "apm" / "d1" / "cgroup.subtree_control", "")
    self_cgroup = tmp_path / "self"
    self_cgroup.write_text("0::/svc\n")
    cg = Cgroups.detect("d1", str(root), str(self_cgroup))
    assert cg is not None and (cg.version, cg.memory) == (2, True)
    assert cg.base == str(root / "svc" / "apm" / "d1")
    assert (root / "svc" / "apm" / "cgroup.subtree_control").read_text() == "+memory"
    group = Path(cg.path("w.0"))
    touch(group / "memory.max")
    touch(group / "memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    cg.prepare("w.0", 1 << 30)
    assert (group / "memory.max").read_text() == str(1 << 30)
    cg.prepare("w.0", None)
    assert (group / "memory.max").read_text() == "max"
    assert cg.oom_kills(str(group)) == 1
    touch(group / "cgroup.kill")
    assert cg.kill_all(str(group)) and (group / "cgroup.kill").read_text() == "1"


def test_v2_without_memory_still_tracks(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    touch(root / "cgroup.controllers", "cpu pids\n")
    self_cgroup = tmp_path / "self"
    self_cgroup.write_text("0::/\n")
    cg = Cgroups.detect("d1", str(root), str(self_cgroup))
    assert cg is not None and (cg.version, cg.memory) == (2, False)
    import pytest

    with pytest.raises(OSError):
        cg.prepare("w.0", 1 << 20)  # a limit cannot be enforced
    assert os.path.isdir(cg.prepare("w.0", None))


def test_nothing_usable(tmp_path: Path) -> None:
    assert Cgroups.detect("d", str(tmp_path / "none"), str(tmp_path / "self")) is None


def test_remove_and_cleanup(tmp_path: Path) -> None:
    base = tmp_path / "apm" / "d"
    (base / "w.0").mkdir(parents=True)
    cg = Cgroups(1, str(base), True)
    assert cg.remove(str(tmp_path / "gone"))
    cg.cleanup()
    assert not (tmp_path / "apm").exists()


def test_safe_name() -> None:
    assert safe_name("api@v2.0") == "api@v2.0" and safe_name("a/b c") == "a_b_c" and safe_name("") == "_"

"""The cgroup v2 code path on a real unified hierarchy.

This machine's memory controller lives on cgroup v1, so the daemon normally
takes the v1 path.  The kernel still has the (single) v2 hierarchy: the test
mounts it privately and runs the real engine against it in a child process,
as a systemd service with `Delegate=yes` would: the "daemon" starts inside
its service group, must move itself into a leaf (`daemon`) before it can
delegate a controller to its instance groups ("no internal processes"), then
spawns instances that join `<service>/apm/<id>/<worker>.<index>`, finds every
descendant there, and kills the whole group with `cgroup.kill` on stop.
The memory controller is not free to move to v2 here, so the leaf move is
exercised with `hugetlb`, the controller the v2 hierarchy does offer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from typing import Iterator

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = [pytest.mark.skipif(sys.platform != "linux", reason="Linux only"), pytest.mark.root]

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
mnt, service = sys.argv[2], sys.argv[3]
with open(os.path.join(service, "cgroup.procs"), "w") as f:
    f.write(str(os.getpid()))  # what systemd does: the service starts inside its own group
from alter.linux import cgroups
out = {"moved": cgroups._enable_controller_v2(service, mnt, "hugetlb")}
with open("/proc/self/cgroup") as f:
    out["own"] = [l.strip() for l in f if l.startswith("0::")][0]
from alter.supervise.testing import RealHarness
h = RealHarness(sys.argv[4], cgroup_root=mnt)
cg = h.ops.cgroups
out.update(version=cg.version, base=cg.base, memory=cg.memory)
h.sup.add({"name": "w", "exec": "sh", "params": ["-c", "sleep 300 & sleep 300 & wait"], "path": "/"})
h.run_until(lambda: h.running("w"), what="running")
group = cg.path("w.0")
h.run_until(lambda: len(cg.procs(group)) >= 3, what="sh and its two sleeps in the group")
out["members"] = sorted(cg.procs(group))
out["main"] = h.pid("w")
done = []
h.sup.stop("w", lambda: done.append(1))
h.run_until(lambda: done, what="stopped")
out["after_stop"] = sorted(cg.procs(group))
out["alive_after_stop"] = [p for p in out["members"] if os.path.exists("/proc/%d" % p)
                           and open("/proc/%d/stat" % p).read().split(") ")[1][0] != "Z"]
h.close()
out["base_left"] = os.path.exists(cg.base)
print(json.dumps(out), flush=True)
"""


@pytest.fixture
def v2_mount() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.fail("mounting cgroup2 needs root: run the tests with sudo (tests/run.sh does)")
    mnt = tempfile.mkdtemp(prefix="apm-cg2-")
    proc = subprocess.run(["mount", "-t", "cgroup2", "none", mnt], capture_output=True, text=True)
    if proc.returncode != 0:
        os.rmdir(mnt)
        pytest.fail(f"cannot mount cgroup2: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", mnt], capture_output=True)
        os.rmdir(mnt)


def _words(path: str) -> list:
    with open(path) as f:
        return f.read().split()


def _remove_tree(folder: str) -> None:
    """rmdir a cgroup subtree bottom-up (cgroup directories only hold kernel files)."""
    for dirpath, _dirs, _files in sorted(os.walk(folder), key=lambda item: -item[0].count("/")):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


def test_the_v2_path_with_a_delegated_service_group(v2_mount: str) -> None:
    if "hugetlb" not in _words(os.path.join(v2_mount, "cgroup.controllers")):
        pytest.fail("the v2 hierarchy offers no controller to delegate (hugetlb expected on this kernel)")
    root_control = os.path.join(v2_mount, "cgroup.subtree_control")
    enabled_here = "hugetlb" not in _words(root_control)
    if enabled_here:  # as systemd does at the root, so a service group can be given the controller
        with open(root_control, "w") as f:
            f.write("+hugetlb")
    service = os.path.join(v2_mount, "apmtest-" + uuid.uuid4().hex[:6] + ".service")
    os.mkdir(service)
    daemon_id = "cg2-" + uuid.uuid4().hex[:6]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, ROOT, v2_mount, service, daemon_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        # the daemon left its service group for a leaf, so the controller could be handed down
        assert result["moved"] is True
        assert result["own"] == "0::/" + os.path.basename(service) + "/daemon"
        assert "hugetlb" in _words(os.path.join(service, "cgroup.subtree_control"))
        # the engine took the v2 path below the daemon's own group, without memory limits here
        assert result["version"] == 2 and result["memory"] is False
        assert result["base"] == os.path.join(service, "daemon", "apm", daemon_id)
        # sh and both sleeps were in the instance's group; stop emptied it and killed them all
        assert result["main"] in result["members"] and len(result["members"]) >= 3
        assert result["after_stop"] == [] and result["alive_after_stop"] == []
        assert result["base_left"] is False  # close() removed this daemon's groups
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        _remove_tree(service)
        if enabled_here:
            with open(root_control, "w") as f:
                f.write("-hugetlb")
    assert not os.path.exists(service)

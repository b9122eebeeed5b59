"""The reloader's diff/apply against the FakeOps harness: create, change, remove, unchanged (same pids), rolling."""

from __future__ import annotations

import os
import stat
from typing import Any, Dict, Iterator, List, Optional

import pytest

from alter.config import options
from alter.config.loader import load_text
from alter.daemon.config_access import DAEMON, Caller, may_access, may_write
from alter.daemon.reloader import Plan, Reloader
from alter.errors import ConfigError, NotFound, PermissionDenied
from alter.supervise.testing import Harness

ROOT = "/srv/app/apm.conf"
BOOT = "/srv/app/boot.conf"

BASE = """
worker api { exec sleep; params 100; instances 2; }
worker web { exec sleep; params 200; }
worker old { exec sleep; params 300; }
"""


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


@pytest.fixture
def rl(h: Harness) -> Reloader:
    return Reloader(h.sup, options.effective({}, options.DAEMON_OPTIONS), BOOT, h.bus)


def reload(h: Harness, rl: Reloader, text: str, root: str = ROOT, force: bool = False, **kw: Any) -> Dict[str, Any]:
    plan = rl.plan(load_text(text, root), root, **kw)
    out: List[Dict[str, Any]] = []
    rl.apply(plan, force=force, on_done=out.append)
    h.advance(6)  # removals stop (kill_timeout), startup grace passes
    assert out, "apply never finished"
    return out[0]


def pids(h: Harness, name: str) -> List[Optional[int]]:
    return h.pids(name)


def test_first_reload_creates_every_worker_with_its_origin(h: Harness, rl: Reloader) -> None:
    summary = reload(h, rl, BASE)
    assert summary["created"] == ["api", "web", "old"]
    assert summary["changed"] == summary["removed"] == summary["unchanged"] == []
    assert h.status("api")["status"] == "running" and h.status("api")["instances_running"] == 2
    origin = h.sup.workers["web"].origin
    assert origin == {"kind": "file", "file": ROOT, "line": 3, "root": ROOT, "implicit": ["path"]}
    assert h.sup.workers["web"].config["path"] == "/srv/app"  # unset path: the file's directory


def test_reload_diff_keeps_unchanged_pids_restarts_changed_removes_gone(h: Harness, rl: Reloader) -> None:
    reload(h, rl, BASE)
    before = {name: pids(h, name) for name in ("api", "web", "old")}
    summary = reload(
        h,
        rl,
        """
worker api { exec sleep; params 100; instances 2; }
worker web { exec sleep; params 201; }
worker new { exec sleep; params 400; }
""",
    )
    assert summary["created"] == ["new"]
    assert summary["changed"] == ["web"] and summary["changed_keys"] == {"web": ["params"]}
    assert summary["removed"] == ["old"]
    assert summary["unchanged"] == ["api"]
    assert pids(h, "api") == before["api"]  # untouched: same pids
    assert pids(h, "web") != before["web"] and h.status("web")["status"] == "running"
    assert h.sup.workers["web"].config["params"] == ["201"]
    assert "old" not in h.sup.workers
    assert all(p not in h.ops.alive() for p in before["old"])
    assert h.status("new")["status"] == "running"


def test_broken_file_changes_nothing_and_lists_every_error(h: Harness, rl: Reloader) -> None:
    reload(h, rl, BASE)
    before = {name: pids(h, name) for name in ("api", "web", "old")}
    broken = "worker api { exec sleep; instances many; }\nworker web { params 1; }\nworker x { exec sleep; restart maybe; }\n"
    with pytest.raises(ConfigError) as info:
        rl.plan(load_text(broken, ROOT), ROOT)
    err = info.value
    assert "3 errors" in err.message
    wheres = [e["where"] for e in (err.detail or {})["errors"]]
    assert wheres == [f"{ROOT}:1:36", f"{ROOT}:2:1", f"{ROOT}:3:32"]
    assert {name: pids(h, name) for name in ("api", "web", "old")} == before


def test_force_restarts_unchanged_but_not_stopped_ones(h: Harness, rl: Reloader) -> None:
    reload(h, rl, BASE)
    h.sup.stop("old")
    h.advance(6)
    before = pids(h, "api")
    summary = reload(h, rl, BASE, force=True)
    assert summary["unchanged"] == ["api", "web", "old"]
    assert pids(h, "api") != before and None not in pids(h, "api")
    assert h.status("old")["status"] == "stopped"  # a stopped worker is not started by --force


def test_only_reloads_one_worker(h: Harness, rl: Reloader) -> None:
    reload(h, rl, BASE)
    web, old = pids(h, "web"), pids(h, "old")
    changed = BASE.replace("params 200", "params 201").replace("params 300", "params 301")
    summary = reload(h, rl, changed, only="web")
    assert summary["changed"] == ["web"] and summary["removed"] == [] and summary["created"] == []
    assert pids(h, "web") != web and pids(h, "old") == old
    assert h.sup.workers["old"].config["params"] == ["300"]
    with pytest.raises(NotFound):
        rl.plan(load_text("worker api { exec sleep; }", ROOT), ROOT, only="web")


def test_worker_of_another_origin_is_skipped_never_taken_over(h: Harness, rl: Reloader) -> None:
    h.sup.add({"name": "web", "exec": "sleep", "params": ["9"]}, {"kind": "cli", "file": None})
    h.settle()
    mine = pids(h, "web")
    summary = reload(h, rl, BASE)
    assert summary["skipped"] == ["web"] and "web" not in summary["created"]
    assert any("already exists (from apm run)" in w for w in summary["warnings"])
    assert pids(h, "web") == mine and h.sup.workers["web"].origin["kind"] == "cli"
    summary = reload(h, rl, "worker api { exec sleep; params 100; instances 2; }")
    assert summary["removed"] == ["old"] and "web" in h.sup.workers  # the cli worker is never removed


def test_instances_only_change_scales_without_restart(h: Harness, rl: Reloader) -> None:
    reload(h, rl, BASE)
    first = pids(h, "api")
    summary = reload(h, rl, BASE.replace("instances 2", "instances 3"))
    assert summary["changed"] == ["api"] and summary["changed_keys"]["api"] == ["instances"]
    now = pids(h, "api")
    assert now[:2] == first and now[2] is not None


def test_rolling_restart_replaces_one_instance_at_a_time(h: Harness, rl: Reloader) -> None:
    text = "worker api { exec sleep; params 100; instances 3; rolling true; rolling_delay 1000; startup_grace 0; }"
    reload(h, rl, text)
    first = pids(h, "api")
    plan = rl.plan(load_text(text.replace("params 100", "params 101"), ROOT), ROOT)
    rl.apply(plan)
    h.settle()
    h.advance(0.1)
    now = pids(h, "api")
    assert now[0] != first[0] and now[1:] == first[1:]  # only the first instance so far
    h.advance(1.2)
    assert pids(h, "api")[2] == first[2]
    h.advance(5)
    assert all(a != b for a, b in zip(pids(h, "api"), first))


def test_moving_a_block_between_included_files_keeps_it_running(h: Harness, rl: Reloader) -> None:
    reload(h, rl, "worker api { exec sleep; params 1; }")
    first = pids(h, "api")
    moved = load_text("worker api { exec sleep; params 1; }", "/srv/app/api.conf")  # now in an included file
    moved.files.insert(0, ROOT)
    plan = rl.plan(moved, ROOT)
    assert plan.remove == [] and plan.change == [] and [e.name for e in plan.unchanged] == ["api"]
    rl.apply(plan)
    h.advance(3)
    assert pids(h, "api") == first
    assert h.sup.workers["api"].origin["file"] == "/srv/app/api.conf"
    assert h.sup.workers["api"].origin["root"] == ROOT


def test_load_creates_missing_and_starts_stopped_owned_workers(h: Harness, rl: Reloader) -> None:
    reload(h, rl, BASE)
    h.sup.stop("web")
    h.advance(6)
    api = pids(h, "api")
    summary = rl.load(rl.plan(load_text(BASE + "worker extra { exec sleep; }", ROOT), ROOT))
    h.advance(3)
    assert summary["created"] == ["extra"] and summary["started"] == ["web"]
    assert sorted(summary["skipped"]) == ["api", "old"]
    assert pids(h, "api") == api and h.status("web")["status"] == "running"


def test_unload_removes_only_workers_of_that_file(h: Harness, rl: Reloader) -> None:
    reload(h, rl, BASE)
    h.sup.add({"name": "mine", "exec": "sleep"}, {"kind": "cli", "file": None})
    done: List[List[str]] = []
    rl.unload(ROOT, done.append)
    h.advance(6)
    assert sorted(done[0]) == ["api", "old", "web"]
    assert list(h.sup.workers) == ["mine"]


def test_daemon_block_of_the_boot_file_updates_daemon_config_and_publishes(h: Harness, rl: Reloader) -> None:
    summary = reload(h, rl, "daemon { auto_reload true; log_max_files 9; }", root=BOOT)
    assert sorted(summary["daemon_changed"]) == ["auto_reload", "log_max_files"]
    assert rl.daemon_config["auto_reload"] is True and rl.daemon_config["log_max_files"] == 9
    events = [d for k, d in h.events if k == "daemon.config"]
    assert events and events[-1]["changed"] == ["auto_reload", "log_max_files"]
    reload(h, rl, "", root=BOOT)  # no daemon block: back to the defaults
    assert rl.daemon_config["auto_reload"] is False
    plan = rl.plan(load_text("daemon { auto_reload true; }", ROOT), ROOT)
    assert plan.daemon is None and any("daemon { } block is ignored" in w for w in plan.warnings)


def test_comments_ride_in_the_origin(h: Harness, rl: Reloader) -> None:
    text = "# the api\nworker api {\n    # how many\n    instances 2;  # two\n    exec sleep;\n}\n"
    reload(h, rl, text)
    notes = h.sup.workers["api"].origin["notes"]
    assert notes == {"comments": ["the api"], "keys": {"instances": ["how many"]}, "trail": {"instances": "two"}}
    snap = h.sup.snapshot()["workers"][0]["origin"]
    assert snap["notes"] == notes  # persisted with the worker


def test_untrusted_caller_gets_user_forced(h: Harness, rl: Reloader) -> None:
    bob = Caller(4242, 4242, (4242,), "bob")
    plan: Plan = rl.plan(load_text("worker api { exec sleep; user root; }", ROOT), ROOT, bob)
    entry = plan.create[0]
    assert entry.config["user"] == "bob" and entry.origin["owner"] == 4242
    assert any("runs as bob, not root" in w for w in plan.warnings)


@pytest.fixture
def open_dir() -> Iterator[Any]:
    """A folder everyone may search (pytest's tmp_path sits under a 0700 folder)."""
    import pathlib
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="apm-reloader-", dir="/tmp")
    os.chmod(folder, 0o755)
    yield pathlib.Path(folder)
    shutil.rmtree(folder, ignore_errors=True)


def test_may_access_follows_mode_bits_and_ancestors(open_dir) -> None:
    tmp_path = open_dir
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    nobody = Caller(65534, 65534, (65534,), "nobody")
    secret = tmp_path / "secret.conf"
    secret.write_text("worker a { exec sleep; }")
    os.chmod(tmp_path, 0o755)
    os.chmod(secret, 0o600)
    assert not may_access(str(secret), nobody)
    assert may_access(str(secret), DAEMON)
    os.chmod(secret, 0o644)
    assert may_access(str(secret), nobody)
    os.chmod(tmp_path, 0o700)  # the folder now hides it
    assert not may_access(str(secret), nobody)
    os.chmod(tmp_path, stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO)
    link = tmp_path / "link.conf"
    link.symlink_to("/etc/shadow")
    assert not may_access(str(link), nobody)
    assert may_write(str(tmp_path / "new.conf"), nobody)
    assert not may_write(str(secret), nobody)
    os.chmod(tmp_path, 0o755)  # searchable but not writable: no new file there
    assert not may_write(str(tmp_path / "new.conf"), nobody)


def test_read_config_refuses_includes_the_caller_cannot_read(open_dir) -> None:
    tmp_path = open_dir
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from alter.daemon.config_access import read_config

    nobody = Caller(65534, 65534, (65534,), "nobody")
    os.chmod(tmp_path, 0o755)
    hidden = tmp_path / "hidden.conf"
    hidden.write_text("worker h { exec sleep; }")
    os.chmod(hidden, 0o600)
    main = tmp_path / "main.conf"
    main.write_text(f"include {hidden};\n")
    with pytest.raises(PermissionDenied) as info:
        read_config(str(main), nobody)
    assert "hidden.conf" in info.value.message and "worker h" not in str(info.value)
    assert read_config(str(main), DAEMON).workers[0].name == "h"

"""The Supervisor API: add/remove/rename/copy/update/scale, targets, snapshot/restore, on_change."""

from __future__ import annotations

import signal
from typing import Iterator

import pytest

from alter.errors import ConfigError, Conflict, NotFound, StartFailed, UsageError
from alter.supervise.testing import Harness


def w(name: str = "w", **kw: object) -> dict:
    return {"name": name, "exec": "sleep", "params": ["100"], **kw}


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


def test_add_validates_and_defaults_the_name(h: Harness) -> None:
    st = h.sup.add({"exec": "/usr/bin/node", "params": "server.js"})
    assert st["name"] == "node"
    with pytest.raises(ConfigError, match="instances"):
        h.sup.add(w("x", instances="many"))
    with pytest.raises(Conflict, match="already exists"):
        h.sup.add(w("node"))


def test_unknown_names_suggest_close_matches(h: Harness) -> None:
    h.sup.add(w("api-server"), start=False)
    with pytest.raises(NotFound) as exc:
        h.sup.status("api-servr")
    assert "api-server" in exc.value.hint
    with pytest.raises(NotFound, match="no worker named 'zzz'"):
        h.sup.stop("zzz")


def test_targets(h: Harness) -> None:
    h.sup.add(w(instances=2))
    h.settle()
    assert h.sup.target("w")[1] is None
    assert h.sup.target("w#2")[1] == 1
    for bad in ("w#0", "w#3", "w#99"):
        with pytest.raises(NotFound, match="no instance"):
            h.sup.target(bad)
    with pytest.raises(UsageError):
        h.sup.target("w#x")
    with pytest.raises(NotFound):
        h.sup.signal("w#3", signal.SIGHUP)


def test_signal_without_running_instances_is_a_conflict(h: Harness) -> None:
    h.sup.add(w(), start=False)
    with pytest.raises(Conflict, match="no running process"):
        h.sup.signal("w", signal.SIGHUP)


def test_scale_up_and_down_live(h: Harness) -> None:
    h.sup.add(w(instances=2))
    h.settle()
    h.sup.update("w", {"instances": 4}, restart=False)
    h.settle()
    assert h.states("w") == ["running"] * 4 and h.pids("w")[:2] == [1001, 1002]
    h.sup.update("w", {"instances": 1}, restart=True)  # only instances changed: no restart
    st = h.status("w")
    assert st["instances_wanted"] == 1
    h.settle()
    st = h.status("w")
    assert [i["index"] for i in st["instances"]] == [1] and st["instances"][0]["pid"] == 1001
    assert st["status"] == "running"
    assert sorted(c[1] for c in h.ops.calls if c[0] == "kill_tree") == [1002, 1003, 1004]


def test_scale_down_then_up_reuses_a_stopping_instance(h: Harness) -> None:
    h.ops.ignore_term_next = False
    h.sup.add(w(instances=2, kill_timeout=1000))
    h.settle()
    h.ops.procs[1002].ignores_term = True
    h.sup.update("w", {"instances": 1})
    h.sup.update("w", {"instances": 2})
    assert h.states("w") == ["running", "stopping"]
    h.advance(1)
    assert h.states("w") == ["running", "running"] and h.pids("w") == [1001, 1003]


def test_update_restarts_on_real_changes_only(h: Harness) -> None:
    h.sup.add(w())
    h.settle()
    h.sup.update("w", {"env": ["A=1"]}, restart=False)
    h.settle()
    assert h.pids("w") == [1001]
    assert h.status("w")["config"]["env"] == ["A=1"]
    h.sup.update("w", {"env": ["A=2"]})
    h.settle()
    assert h.pids("w") == [1002] and h.ops.procs[1002].spec.env["A"] == "2"
    h.sup.update("w", {"env": None})
    h.settle()
    assert "env" not in h.status("w")["config"] and h.pids("w") == [1003]
    with pytest.raises(ConfigError):
        h.sup.update("w", {"kill_timeout": "soon"})
    assert h.pids("w") == [1003]


def test_update_cmd_replaces_exec_and_params(h: Harness) -> None:
    h.sup.add(w(), start=False)
    h.sup.update("w", {"cmd": "node server.js --port 3"})
    cfg = h.status("w")["config"]
    assert cfg["exec"] == "node" and cfg["params"] == ["server.js", "--port", "3"]


def test_disable_and_enable(h: Harness) -> None:
    h.sup.add(w())
    h.settle()
    h.sup.update("w", {"enabled": False})
    h.settle()
    assert h.status("w")["status"] == "disabled" and h.states("w") == ["stopped"]
    with pytest.raises(Conflict, match="disabled"):
        h.sup.start("w")
    assert h.sup.start_all() == []
    h.sup.update("w", {"enabled": True})
    h.settle()
    assert h.status("w")["status"] == "running"


def test_disabled_worker_is_kept_but_never_started(h: Harness) -> None:
    h.sup.add(w(enabled=False))
    h.settle()
    assert h.status("w")["status"] == "disabled" and not h.ops.spawns()
    assert h.sup.snapshot()["workers"][0]["desired"] == "running"


def test_rename_while_running(h: Harness) -> None:
    h.sup.add(w("old"))
    h.settle()
    st = h.sup.rename("old", "new")
    assert st["name"] == "new" and st["instances"][0]["pid"] == 1001
    assert not h.sup.exists("old")
    assert h.logs.logs["old"].closed
    # the running process still carries the old name: that name stays taken until it restarts
    with pytest.raises(Conflict, match="still used by running processes"):
        h.sup.add(w("old"))
    h.sup.restart("new")
    h.settle()
    assert h.ops.procs[1002].spec.env["APM_NAME"] == "new"
    h.sup.add(w("old"))
    with pytest.raises(Conflict):
        h.sup.rename("new", "old")
    with pytest.raises(ConfigError):
        h.sup.rename("new", "bad name!")


def test_copy_mirrors_the_desired_state(h: Harness) -> None:
    h.sup.add(w("a", env=["X=1"]))
    h.sup.add(w("b"), start=False)
    h.settle()
    st = h.sup.copy("a", "a2")
    assert st["config"]["env"] == ["X=1"] and st["origin"]["kind"] == "copy"
    h.sup.copy("b", "b2")
    h.settle()
    assert h.status("a2")["status"] == "running" and h.status("b2")["status"] == "stopped"


def test_remove_while_running(h: Harness) -> None:
    h.ops.ignore_term_next = True
    h.sup.add(w(kill_timeout=1000))
    h.settle()
    done = []
    h.sup.remove("w", lambda: done.append(1))
    assert h.sup.exists("w")
    with pytest.raises(Conflict, match="being removed"):
        h.sup.add(w())
    with pytest.raises(Conflict):
        h.sup.start("w")
    assert h.sup.snapshot()["workers"] == []
    h.advance(1)
    assert done == [1] and not h.sup.exists("w")
    assert h.logs.logs["w"].closed
    assert "worker.removed" in h.kinds()
    h.sup.add(w())


def test_stop_all_and_shutdown(h: Harness) -> None:
    h.sup.add(w("a"))
    h.sup.add(w("b"))
    h.sup.add(w("c"), start=False)
    h.settle()
    done = []
    assert h.sup.stop_all(lambda: done.append(1)) == ["a", "b"]
    h.settle()
    assert done == [1]
    assert [x["desired"] for x in h.sup.snapshot()["workers"]] == ["stopped"] * 3
    h.sup.start("a")
    h.settle()
    done.clear()
    assert h.sup.shutdown(lambda: done.append(1)) == ["a"]
    h.settle()
    assert done == [1]
    assert h.sup.snapshot()["workers"][0]["desired"] == "running"  # comes back after a daemon restart


def test_shutdown_gives_up_on_an_unkillable_tree(h: Harness) -> None:
    h.sup.add(w(kill_timeout=1000))
    h.settle()
    h.ops.procs[1001].leftovers = {5001}
    h.ops.procs[1001].leftovers_ignore_term = True
    h.ops.kill_leftovers = lambda pid: None  # type: ignore[method-assign]
    original = h.ops.alive_pids
    h.ops.alive_pids = lambda handle: original(handle) | {5001}  # type: ignore[method-assign]
    done = []
    h.sup.shutdown(lambda: done.append(1))
    h.advance(5.9)
    assert done == []
    h.advance(0.2)
    assert done == [1]


def test_snapshot_restore_round_trip(h: Harness) -> None:
    h.sup.add(w("a", instances=2), origin={"kind": "file", "file": "/etc/apm/apm.conf"})
    h.sup.add(w("b"), start=False)
    h.settle()
    snap = h.sup.snapshot()
    assert snap["version"] == 1
    other = Harness()
    try:
        assert other.sup.restore(snap) == ["a", "b"]
        other.settle()
        assert other.status("a")["status"] == "running" and other.status("b")["status"] == "stopped"
        assert other.status("a")["origin"] == {"kind": "file", "file": "/etc/apm/apm.conf"}
        assert other.sup.snapshot() == snap
        assert other.changes == 0  # restoring is not a change
    finally:
        other.close()


def test_restore_skips_bad_entries(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    snap = {"workers": [{"config": {"name": "x"}}, "junk", {"config": w("ok"), "desired": "running"}]}
    assert h.sup.restore(snap) == ["ok"]
    assert h.sup.restore({"workers": "nope"}) == [] and h.sup.restore([]) == []  # type: ignore[arg-type]
    assert "skipped" in caplog.text


def test_on_change_fires_for_persistent_changes_only(h: Harness) -> None:
    h.sup.add(w(restart_err=True, err_delay=0))
    h.settle()
    n = h.changes
    h.ops.exit(1001, code=1)  # restarts are not persistent changes
    h.settle()
    assert h.changes == n
    h.sup.stop("w")
    assert h.changes == n + 1
    h.sup.update("w", {"instances": 2}, restart=False)
    h.sup.rename("w", "w2")
    h.sup.copy("w2", "w3")
    assert h.changes == n + 4


def test_info_and_environment(h: Harness) -> None:
    h.sup.add(w(env=["A=1"], env_index="SLOT", instances=2), start=False)
    info = h.sup.info("w")
    assert info["options"]["kill_timeout"] == 2000 and info["options"]["env"] == ["A=1"]
    env = h.sup.environment("w", 1)
    assert env["A"] == "1" and env["SLOT"] == "1" and env["APM_INDEX"] == "1" and env["APM_NAME"] == "w"
    assert env["APM_INSTANCE"] == "test:w#2" and env["APM"] == "1"
    assert "SECRET_DAEMON_VAR" not in env
    with pytest.raises(NotFound):
        h.sup.environment("w", 2)


def test_check_spawnable_names_the_problem(h: Harness) -> None:
    with pytest.raises(StartFailed, match="'nodee' not found in PATH"):
        h.sup.check_spawnable({"name": "x", "exec": "nodee"})
    with pytest.raises(StartFailed, match="path '/nope' is not a directory"):
        h.sup.check_spawnable({"name": "x", "exec": "sleep", "path": "/nope"})

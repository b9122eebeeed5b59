"""The engine's hooks (alter/supervise/hooks.py) with FakeOps: ports, before_stop, overlapping rolling restarts."""

from __future__ import annotations

import signal
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from alter.errors import ConfigError
from alter.supervise.hooks import SupervisorHooks
from alter.supervise.instance import Instance
from alter.supervise.testing import Harness

WEB = {"name": "w", "exec": "sleep", "params": ["100"], "server": [":8080"], "startup_grace": 500}


class FakeHooks(SupervisorHooks):
    """Records every call; ready checks and drains finish when the test says so (or at once with `auto`)."""

    def __init__(self) -> None:
        self.next_port = 20000
        self.released: List[int] = []
        self.configured: List[Tuple[str, Optional[str]]] = []
        self.refuse: Optional[str] = None
        self.removed_names: List[str] = []
        self.checks: List[Tuple[Instance, Callable[[bool], None]]] = []
        self.stops: List[Tuple[str, Optional[int], bool, Callable[[], None]]] = []
        self.auto_drain = False

    def configure(self, name: str, eff: Dict[str, Any], old_name: Optional[str] = None) -> None:
        if self.refuse:
            raise ConfigError(self.refuse, hint="choose another port")
        self.configured.append((name, old_name))

    def removed(self, name: str) -> None:
        self.removed_names.append(name)

    def claim_port(self, worker: str, index: int, eff: Dict[str, Any]) -> Optional[int]:
        if not eff.get("server"):
            return None
        self.next_port += 1
        return self.next_port

    def release_port(self, port: int) -> None:
        self.released.append(port)

    def overlap(self, worker: Any) -> bool:
        return bool(worker.eff.get("server"))

    def ready_check(self, instance: Instance, done: Callable[[bool], None]) -> None:
        self.checks.append((instance, done))

    def before_stop(self, instance: Instance, done: Callable[[], None], handover: bool) -> None:
        self.stops.append((instance.label, instance.pid, handover, done))
        if self.auto_drain:
            done()

    def info(self, worker: Any) -> Dict[str, Any]:
        return {"proxy": {"requests": 7}}

    def applies_live(self, option: str, old: Dict[str, Any], new: Dict[str, Any]) -> bool:
        return option == "keep_alive"


@pytest.fixture
def hooks() -> FakeHooks:
    return FakeHooks()


@pytest.fixture
def h(hooks: FakeHooks) -> Iterator[Harness]:
    harness = Harness()
    harness.sup.hooks = hooks
    yield harness
    harness.close()


def collect() -> Tuple[List[Optional[Dict[str, Any]]], Any]:
    got: List[Optional[Dict[str, Any]]] = []
    return got, got.append


def ports(h: Harness) -> List[Optional[int]]:
    return [i["port"] for i in h.status("w")["instances"]]


def term_sent(h: Harness, pid: int) -> bool:
    return signal.SIGTERM in h.ops.procs[pid].signals


# ------------------------------------------------------------------------------------------ ports


def test_each_process_gets_a_fresh_port_in_its_environment(h: Harness, hooks: FakeHooks) -> None:
    h.sup.add(dict(WEB, instances=2, restart_err=True, err_delay=0))
    h.settle()
    assert ports(h) == [20001, 20002]
    env = h.ops.procs[1001].spec.env
    assert env["PORT"] == env["APM_PORT"] == "20001"
    assert h.sup.environment("w", 1)["PORT"] == "20002"  # `apm env` shows the running process' port
    h.ops.exit(1001, code=1)
    assert hooks.released == [20001] and ports(h)[0] is None
    h.advance(0.1)
    assert h.pids("w")[0] == 1003 and ports(h)[0] == 20003
    assert h.ops.procs[1003].spec.env["PORT"] == "20003"


def test_no_port_without_server(h: Harness) -> None:
    h.sup.add({"name": "w", "exec": "sleep", "params": ["100"]})
    h.settle()
    assert ports(h) == [None] and "PORT" not in h.ops.procs[1001].spec.env


def test_a_failed_spawn_gives_its_port_back(h: Harness, hooks: FakeHooks) -> None:
    h.ops.fail_next_spawn = "boom"
    h.sup.add(WEB)
    h.settle()
    assert h.states("w") == ["failed"] and hooks.released == [20001]


# ------------------------------------------------------------------------------------------ configure / info


def test_configure_refusal_fails_add_and_update_without_changing_anything(h: Harness, hooks: FakeHooks) -> None:
    hooks.refuse = "worker w: cannot listen on http://0.0.0.0:8080: Address already in use"
    with pytest.raises(ConfigError, match="Address already in use"):
        h.sup.add(WEB)
    assert not h.sup.exists("w") and h.ops.spawns() == []
    hooks.refuse = None
    h.sup.add(WEB)
    h.settle()
    hooks.refuse = "worker w: http://0.0.0.0:9090 conflicts with worker x's http://0.0.0.0:9090"
    with pytest.raises(ConfigError, match="conflicts"):
        h.sup.update("w", {"server": [":9090"], "name": "v"})
    assert h.sup.exists("w") and h.sup.workers["w"].config["server"] == [":8080"] and h.pids("w") == [1001]
    hooks.refuse = None
    h.sup.update("w", {"name": "v"})
    assert hooks.configured[-1] == ("v", "w") and h.sup.exists("v")
    h.sup.rename("v", "u")
    assert hooks.configured[-1] == ("u", "v")
    assert h.sup.info("u")["proxy"] == {"requests": 7}
    hooks.auto_drain = True
    h.sup.remove("u")
    h.settle()
    assert hooks.removed_names == ["u"]


def test_restore_keeps_a_worker_whose_listener_is_refused(h: Harness, hooks: FakeHooks) -> None:
    hooks.refuse = "worker w: cannot listen on http://0.0.0.0:8080: Address already in use"
    restored = h.sup.restore({"workers": [{"config": WEB, "desired": "running"}]})
    h.settle()
    assert restored == ["w"] and h.states("w") == ["running"]
    assert any("Address already in use" in m for m in h.log("w").messages)


# ------------------------------------------------------------------------------------------ stop


def test_stop_waits_for_before_stop_then_terminates(h: Harness, hooks: FakeHooks) -> None:
    h.sup.add(WEB)
    h.settle()
    done: List[bool] = []
    h.sup.stop("w", lambda: done.append(True))
    h.settle()
    assert h.states("w") == ["stopping"] and not term_sent(h, 1001)
    label, pid, handover, finish = hooks.stops[0]
    assert (label, pid, handover) == ("w#1", 1001, False)
    h.advance(30)  # no kill_timeout runs while the drain is pending
    assert h.ops.procs[1001].alive
    finish()
    h.settle()
    assert term_sent(h, 1001) and h.states("w") == ["stopped"] and done == [True]
    finish()  # a late second call changes nothing
    h.settle()
    assert h.states("w") == ["stopped"]


def test_a_process_that_exits_during_before_stop_is_just_stopped(h: Harness, hooks: FakeHooks) -> None:
    h.sup.add(WEB)
    h.settle()
    h.sup.stop("w")
    h.ops.exit(1001, code=0)
    h.settle()
    assert h.states("w") == ["stopped"]
    hooks.stops[0][3]()
    h.settle()
    assert not term_sent(h, 1001) and h.states("w") == ["stopped"]


# ------------------------------------------------------------------------------------------ rolling


def test_rolling_restart_starts_each_new_process_before_stopping_the_old(h: Harness, hooks: FakeHooks) -> None:
    h.sup.add(dict(WEB, instances=2, rolling=True, rolling_delay=1000))
    h.advance(1)
    got, cb = collect()
    h.sup.restart("w", on_ready=cb)
    h.settle()
    worker = h.sup.workers["w"]
    # The replacement of #1 runs next to the old process, in the other slot, on a new port.
    assert h.pids("w") == [1001, 1002] and h.states("w") == ["running", "running"]
    assert [i.pid for i in worker.incoming] == [1003]
    spec = h.ops.procs[1003].spec
    assert spec.marker == "test:w#1.1" and spec.group == "w.0.1" and spec.env["PORT"] == "20003"
    assert spec.env["APM_INDEX"] == "0"
    fresh, ready = hooks.checks[0]
    assert fresh.pid == 1003 and hooks.stops == []
    h.advance(5)  # not ready yet: nothing else happens
    assert h.pids("w") == [1001, 1002] and len(hooks.checks) == 1
    ready(True)
    h.settle()
    # It took #1's place; the old one drains (handover) before its SIGTERM.
    assert h.pids("w") == [1003, 1002] and ports(h) == [20003, 20002]
    assert [i.pid for i in worker.retiring] == [1001] and worker.incoming == []
    assert hooks.stops[0][:3] == ("w#1", 1001, True) and not term_sent(h, 1001)
    hooks.stops[0][3]()
    h.settle()
    assert not h.ops.procs[1001].alive and worker.retiring == [] and 20001 in hooks.released
    h.advance(0.999)
    assert len(hooks.checks) == 1  # rolling_delay after the old one stopped
    h.advance(0.001)
    assert [i.pid for i in worker.incoming] == [1004]
    assert h.ops.procs[1004].spec.marker == "test:w#2.1"
    hooks.checks[1][1](True)
    h.settle()
    hooks.stops[1][3]()
    h.settle()
    assert h.pids("w") == [1003, 1004] and h.states("w") == ["running", "running"]
    assert got == []
    h.advance(0.5)  # the last one survived its startup grace
    assert got == [None]
    # The next rolling restart moves back to slot 0: the documented marker.
    hooks.auto_drain = True
    h.sup.restart("w")
    h.settle()
    hooks.checks[2][1](True)
    h.settle()
    assert h.pids("w")[0] == 1005 and h.ops.procs[1005].spec.marker == "test:w#1"
    assert h.ops.procs[1005].spec.group == "w.0"


def test_a_single_instance_rolls_with_overlap(h: Harness, hooks: FakeHooks) -> None:
    h.sup.add(dict(WEB, rolling=True))
    h.advance(1)
    hooks.auto_drain = True
    h.sup.restart("w")
    h.settle()
    assert h.pids("w") == [1001] and h.states("w") == ["running"]  # never down
    hooks.checks[0][1](True)
    h.settle()
    assert h.pids("w") == [1002] and not h.ops.procs[1001].alive


def test_a_replacement_that_never_gets_ready_is_dropped(h: Harness, hooks: FakeHooks) -> None:
    h.sup.add(dict(WEB, instances=2, rolling=True))
    h.advance(1)
    hooks.auto_drain = True
    got, cb = collect()
    h.sup.restart("w", on_ready=cb)
    h.settle()
    hooks.checks[0][1](False)
    h.settle()
    assert got and "did not take connections on port 20003" in got[0]["message"]
    assert "PORT" in got[0]["hints"][0]
    assert not h.ops.procs[1003].alive and h.sup.workers["w"].incoming == []
    assert h.pids("w") == [1001, 1002] and h.states("w") == ["running", "running"]
    h.advance(5)
    assert len(h.ops.spawns()) == 3  # #2 was left alone
    assert any("2 instance(s) left untouched" in m for m in h.log("w").messages)


def test_a_replacement_that_crashes_at_start_stops_the_rollout(h: Harness, hooks: FakeHooks) -> None:
    h.sup.add(dict(WEB, instances=2, rolling=True, restart_err=True))
    h.advance(1)
    got, cb = collect()
    h.sup.restart("w", on_ready=cb)
    h.settle()
    h.ops.exit(1003, code=1)
    h.settle()
    assert got and got[0]["exit_code"] == 1
    h.advance(5)
    assert h.pids("w") == [1001, 1002] and h.sup.workers["w"].incoming == []
    assert len(h.ops.spawns()) == 3 and hooks.stops == []


def test_stop_during_an_overlap_stops_the_replacement_too(h: Harness, hooks: FakeHooks) -> None:
    h.sup.add(dict(WEB, instances=2, rolling=True))
    h.advance(1)
    got, cb = collect()
    h.sup.restart("w", on_ready=cb)
    h.settle()
    hooks.auto_drain = True
    done: List[bool] = []
    h.sup.stop("w", lambda: done.append(True))
    h.settle()
    assert got and got[0]["error"] == "rolling restart interrupted"
    assert done == [True] and h.ops.alive() == []
    worker = h.sup.workers["w"]
    assert worker.incoming == [] and worker.retiring == [] and h.states("w") == ["stopped", "stopped"]
    hooks.checks[0][1](True)  # a late answer changes nothing
    h.settle()
    assert h.ops.alive() == []


def test_without_hooks_overlap_rolling_is_unchanged() -> None:
    harness = Harness()
    try:
        harness.sup.add(dict(WEB, instances=2, rolling=True, rolling_delay=0))
        harness.advance(1)
        harness.sup.restart("w")
        harness.settle()
        assert harness.pids("w")[0] == 1003 and not harness.ops.procs[1001].alive  # stopped first, as before
        assert harness.sup.workers["w"].incoming == []
    finally:
        harness.close()


def test_options_the_hooks_apply_live_restart_nothing(h: Harness, hooks: FakeHooks) -> None:
    h.sup.add(WEB)
    h.advance(1)
    h.sup.update("w", {"keep_alive": 5000})
    h.settle()
    assert h.pids("w") == [1001] and hooks.configured[-1] == ("w", "w")
    h.sup.update("w", {"env": ["A=1"]})
    hooks.stops[-1][3]()
    h.settle()
    assert h.pids("w") == [1002]

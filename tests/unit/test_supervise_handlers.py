"""alter/daemon/handlers.py against a fake Request: argument validation and command flows."""

from __future__ import annotations

import os
import signal
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from alter.daemon.handlers import parse_signal, register_worker_commands
from alter.daemon.server import Commands
from alter.errors import ApmError, UsageError
from alter.supervise.testing import Harness


class FakePeer:
    def __init__(self, uid: int = 0, name: str = "root") -> None:
        self.pid = os.getpid()
        self.uid = uid
        self.gid = uid
        self.username = name
        self.can_write = True

    @property
    def is_root(self) -> bool:
        return self.uid == 0


class FakeRequest:
    def __init__(self, cmd: str, args: Any, peer: Optional[FakePeer] = None) -> None:
        self.id = 1
        self.cmd = cmd
        self.args = args
        self.peer = peer or FakePeer()
        self.done = False
        self.result: Any = None
        self.error: Optional[ApmError] = None
        self.events: List[Tuple[str, Any]] = []
        self._close: List[Callable[[], None]] = []

    def reply(self, result: Any = None) -> None:
        assert not self.done, "replied twice"
        self.done, self.result = True, result

    def fail(self, err: ApmError) -> None:
        assert not self.done, "replied twice"
        self.done, self.error = True, err

    def event(self, kind: str, data: Any = None) -> None:
        self.events.append((kind, data))

    def on_close(self, cb: Callable[[], None]) -> None:
        self._close.append(cb)

    def disconnect(self) -> None:
        for cb in self._close:
            cb()
        self.done = True


class Rig:
    def __init__(self) -> None:
        self.h = Harness()
        self.commands = Commands()
        register_worker_commands(self.commands, self.h.sup)

    def call(self, cmd: str, peer: Optional[FakePeer] = None, **args: Any) -> FakeRequest:
        req = FakeRequest(cmd, args, peer)
        command = self.commands.get(cmd)
        assert command is not None
        try:
            command.handler(req)
        except ApmError as exc:
            req.fail(exc)
        return req

    def ok(self, cmd: str, **args: Any) -> Any:
        req = self.call(cmd, **args)
        self.h.settle()
        assert req.error is None, req.error
        assert req.done
        return req.result

    def err(self, cmd: str, **args: Any) -> ApmError:
        req = self.call(cmd, **args)
        self.h.settle()
        assert req.error is not None, f"expected an error, got {req.result!r}"
        return req.error


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    r.h.close()


SLEEP: Dict[str, Any] = {"name": "s", "exec": "sleep", "params": ["100"]}


def test_registered_commands_and_rights(rig: Rig) -> None:
    names = set(rig.commands.names())
    assert names == {
        "run",
        "start",
        "stop",
        "restart",
        "update",
        "list",
        "info",
        "env",
        "remove",
        "stopall",
        "rename",
        "copy",
        "signal",
        "wait",
    }
    assert rig.commands.get("list").write is False and rig.commands.get("wait").write is False
    assert rig.commands.get("info").write is True and rig.commands.get("env").write is True


@pytest.mark.parametrize(
    "cmd,args,match",
    [
        ("run", {}, "'config' is required"),
        ("run", {"config": "sleep 1"}, "'config' must be an object"),
        ("run", {"config": ["sleep"]}, "'config' must be an object, got an array"),
        ("run", {"config": SLEEP, "wait": "yes"}, "'wait' must be true or false"),
        ("run", {"config": SLEEP, "cwd": 5}, "'cwd' must be a non-empty string"),
        ("run", {"config": SLEEP, "cwd": "relative/dir"}, "absolute"),
        ("start", {}, "'name' is required"),
        ("start", {"name": 3}, "'name' must be a non-empty string, got number 3"),
        ("start", {"name": ""}, "got an empty string"),
        ("stop", {"name": None}, "'name' is required"),
        ("restart", {"name": ["s"]}, "got an array"),
        ("update", {"name": "s"}, "'config' is required"),
        ("update", {"name": "s", "config": {}, "restart": "no"}, "'restart' must be true or false"),
        ("info", {"name": {"x": 1}}, "got an object"),
        ("env", {"name": "s", "index": "1"}, "'index' must be a whole number"),
        ("env", {"name": "s", "index": True}, "'index' must be a whole number, got boolean True"),
        ("env", {"name": "s", "index": 0}, "1-based"),
        ("rename", {"name": "s"}, "'new' is required"),
        ("copy", {"name": "s", "new": 7}, "'new' must be"),
        ("signal", {"target": "s"}, "'signal' is required"),
        ("signal", {"target": "s", "signal": "SIGFOO"}, "unknown signal"),
        ("signal", {"target": "s", "signal": True}, "signal must be"),
        ("signal", {"target": "s", "signal": 999}, "does not exist"),
        ("signal", {"target": "s", "signal": ""}, "unknown signal"),
        ("signal", {"signal": "HUP"}, "'target' is required"),
        ("wait", {"name": "s", "timeout": -1}, ">= 0"),
        ("wait", {"name": "s", "timeout": 1.5}, "'timeout' must be a whole number"),
    ],
)
def test_malformed_arguments_are_usage_errors(rig: Rig, cmd: str, args: Dict[str, Any], match: str) -> None:
    rig.h.sup.add(SLEEP)
    err = rig.err(cmd, **args)
    assert isinstance(err, UsageError), err
    assert match in err.message, err.message


@pytest.mark.parametrize(
    "cmd,args,kind,match",
    [
        ("start", {"name": "nope"}, "NotFound", "no worker named 'nope'"),
        ("info", {"name": "ss"}, "NotFound", "no worker named 'ss'"),
        ("signal", {"target": "s#0", "signal": "SIGHUP"}, "NotFound", "no instance #0"),
        ("signal", {"target": "s#99", "signal": "SIGHUP"}, "NotFound", "no instance #99"),
        ("signal", {"target": "s#x", "signal": "SIGHUP"}, "UsageError", "must be a number"),
        ("run", {"config": {"exec": "sleep", "instances": "lots"}}, "ConfigError", "instances"),
        ("run", {"config": {"name": "s", "exec": "sleep"}}, "Conflict", "already exists"),
        ("run", {"config": {"name": "n", "exec": "nodee"}}, "StartFailed", "'nodee' not found"),
        ("rename", {"name": "s", "new": "bad name"}, "ConfigError", "worker name"),
        ("env", {"name": "s", "index": 5}, "NotFound", "no instance #5"),
    ],
)
def test_errors_by_type(rig: Rig, cmd: str, args: Dict[str, Any], kind: str, match: str) -> None:
    rig.h.sup.add(SLEEP)
    err = rig.err(cmd, **args)
    assert type(err).__name__ == kind and match in err.message, err
    if kind == "NotFound" and cmd == "info":
        assert err.hint == "did you mean s?"


def test_run_failed_exec_adds_nothing(rig: Rig) -> None:
    rig.err("run", config={"name": "n", "exec": "nodee"})
    assert not rig.h.sup.exists("n")


def test_run_and_list(rig: Rig) -> None:
    status = rig.ok("run", config={"exec": "sleep", "params": ["5"], "bogus_option": 1}, cwd="/tmp")
    assert status["name"] == "sleep" and status["config"]["path"] == "/tmp"
    assert "unknown worker option 'bogus_option'" in status["warnings"][0]
    workers = rig.ok("list")["workers"]
    assert [w["name"] for w in workers] == ["sleep"] and workers[0]["status"] == "running"


def test_run_wait_replies_after_the_grace(rig: Rig) -> None:
    req = rig.call("run", config=dict(SLEEP, startup_grace=1000), wait=True)
    rig.h.settle()
    assert not req.done
    assert (
        "progress",
        {"message": "Started child #1 (pid 1001)", "instance": 1, "kind": "instance.start"},
    ) in req.events
    rig.h.advance(1)
    assert req.done and req.result["status"] == "running"


def test_run_wait_start_failed_carries_detail(rig: Rig) -> None:
    req = rig.call("run", config=dict(SLEEP, startup_grace=1000), wait=True)
    rig.h.settle()
    rig.h.ops.exit(1001, code=1)
    assert req.error is not None
    wire = req.error.to_dict()
    assert wire["type"] == "StartFailed" and wire["exit"] == 7
    assert "exit code 1" in wire["message"]
    assert wire["detail"]["instance"] == 1 and wire["detail"]["exit_code"] == 1
    assert set(wire["detail"]) >= {"instance", "exit_code", "signal", "runtime_ms", "stderr", "hints"}


def test_stop_replies_once_stopped(rig: Rig) -> None:
    rig.h.ops.ignore_term_next = True
    rig.h.sup.add(dict(SLEEP, kill_timeout=1000))
    rig.h.settle()
    req = rig.call("stop", name="s")
    rig.h.settle()
    assert not req.done
    rig.h.advance(1)
    assert req.result["status"] == "stopped"


def test_start_restart_remove_stopall(rig: Rig) -> None:
    rig.h.sup.add(SLEEP, start=False)
    assert rig.ok("start", name="s")["status"] in ("starting", "running")
    assert rig.ok("restart", name="s")["name"] == "s"
    assert rig.ok("stopall") == {"stopped": ["s"]}
    assert rig.ok("remove", name="s") == {"removed": "s"}
    assert rig.ok("list") == {"workers": []}


def test_start_all_and_stop_all_names(rig: Rig) -> None:
    rig.h.sup.add(SLEEP, start=False)
    rig.h.sup.add(dict(SLEEP, name="t"), start=False)
    assert rig.ok("start", name="all") == {"started": ["s", "t"]}
    assert rig.ok("stop", name="all") == {"stopped": ["s", "t"]}


def test_update_rename_copy_signal_info_env(rig: Rig) -> None:
    rig.h.sup.add(dict(SLEEP, instances=2))
    rig.h.settle()
    assert rig.ok("update", name="s", config={"instances": 3}, restart=False)["instances_wanted"] == 3
    assert rig.ok("rename", name="s", new="s2")["name"] == "s2"
    assert rig.ok("copy", name="s2", new="s3")["name"] == "s3"
    sent = rig.ok("signal", target="s2#2", signal="hup")
    assert sent == {"sent": [{"instance": 2, "pid": 1002}], "signal": "SIGHUP"}
    assert rig.ok("signal", target="s2", signal=10)["signal"] == "SIGUSR1"
    info = rig.ok("info", name="s2")
    assert info["options"]["instances"] == 3 and info["options"]["restart_delay"] == 250
    assert rig.ok("env", name="s2", index=2)["env"]["APM_INDEX"] == "1"
    assert rig.ok("env", name="s2#3")["env"]["APM_INDEX"] == "2"


def test_update_with_wait_and_a_new_name(rig: Rig) -> None:
    rig.h.sup.add(dict(SLEEP, startup_grace=500))
    rig.h.settle()
    req = rig.call("update", name="s", config={"name": "s9", "env": ["A=1"]}, wait=True)
    rig.h.advance(1)
    assert req.result["name"] == "s9" and req.result["instances"][0]["pid"] == 1002


def test_wait_until_running_streams_states(rig: Rig) -> None:
    rig.h.sup.add(dict(SLEEP, restart_err=True, err_delay=1000))
    rig.h.settle()
    rig.h.ops.exit(1001, code=1)
    req = rig.call("wait", name="s", timeout=5000)
    assert not req.done
    rig.h.advance(1)
    assert req.result["status"] == "running"
    assert [d["state"] for k, d in req.events if k == "state"] == ["starting", "running"]
    assert len(rig.h.bus) == 1  # only the harness' own subscription is left


def test_wait_times_out_and_cleans_up(rig: Rig) -> None:
    rig.h.sup.add(SLEEP, start=False)
    req = rig.call("wait", name="s", timeout=2000)
    rig.h.advance(2)
    assert req.error is not None and "timed out after 2000 ms" in req.error.message
    assert len(rig.h.bus) == 1


def test_wait_cancelled_by_disconnect(rig: Rig) -> None:
    rig.h.sup.add(SLEEP, start=False)
    req = rig.call("wait", name="s")
    req.disconnect()
    assert len(rig.h.bus) == 1
    rig.h.advance(40)  # the timer was cancelled too: nothing replies
    assert req.result is None and req.error is None


def test_wait_on_a_running_worker_replies_at_once(rig: Rig) -> None:
    rig.h.sup.add(SLEEP)
    rig.h.settle()
    assert rig.ok("wait", name="s")["status"] == "running"


def test_non_root_caller_runs_as_themself(rig: Rig) -> None:
    alice = FakePeer(1000, "alice")
    req = rig.call("run", peer=alice, config=dict(SLEEP, user="root"))
    rig.h.settle()
    assert req.error is None
    assert rig.h.status("s")["config"]["user"] == "alice"
    assert rig.h.ops.procs[1001].spec.user.name == "alice"
    req = rig.call("update", peer=alice, name="s", config={"user": "root"})
    assert req.error is not None and type(req.error).__name__ == "PermissionDenied"


def test_non_root_caller_cannot_read_files_through_the_daemon(rig: Rig, tmp_path: Any) -> None:
    secret = tmp_path / "secret.env"
    secret.write_text("A=1\n")
    secret.chmod(0o600)
    req = rig.call("run", peer=FakePeer(1000, "alice"), config=dict(SLEEP, env_file=str(secret)))
    assert req.error is not None and "may not read it" in req.error.message
    req = rig.call("run", peer=FakePeer(1000, "alice"), config=dict(SLEEP, log="/etc/apm-test.log"))
    assert req.error is not None and "may not write there" in req.error.message


@pytest.mark.parametrize(
    "value,expected", [("SIGHUP", 1), ("hup", 1), ("TERM", 15), ("9", 9), (10, 10), ("SIGRTMIN", int(signal.SIGRTMIN))]
)
def test_parse_signal(value: Any, expected: int) -> None:
    assert parse_signal(value) == expected


def test_non_root_caller_cannot_change_a_root_worker(rig: Rig) -> None:
    rig.h.sup.add(SLEEP)  # runs as root
    req = rig.call("update", peer=FakePeer(1000, "alice"), name="s", config={"exec": "/bin/sh"})
    assert req.error is not None and "runs as root" in req.error.message
    assert rig.h.status("s")["config"]["exec"] == "sleep"
    req = rig.call("update", peer=FakePeer(1000, "alice"), name="s", config={"instances": 2})
    assert req.error is not None

"""Command dispatch against the fake daemon: requests sent, output, errors, exit codes, --json."""
# ruff: noqa: F811  (pytest fixtures imported from test_cli_fakedaemon are used as arguments)

from __future__ import annotations

import json
import sys
import types

import pytest

import alter.cli.admin as admin
import alter.control.client as client_mod
from alter import __version__
from alter.cli import commands
from alter.errors import (
    ApmError,
    ConfigError,
    Conflict,
    DaemonUnavailable,
    NotFound,
    PermissionDenied,
    ProtocolError,
    StartFailed,
    UsageError,
)
from tests.unit.test_cli_fakedaemon import FakeDaemon, cli, daemon, run_cli, sample_workers, worker  # noqa: F401

# --------------------------------------------------------------------------- dispatch


@pytest.mark.parametrize(
    ("argv", "cmd", "args"),
    [
        (["start", "api"], "start", {"name": "api", "wait": True}),
        (["start", "api", "--no-wait"], "start", {"name": "api", "wait": False}),
        (["stop", "api"], "stop", {"name": "api"}),
        (["restart", "api"], "restart", {"name": "api", "wait": True}),
        (["remove", "api"], "remove", {"name": "api"}),
        (["rm", "api"], "remove", {"name": "api"}),
        (["stopall"], "stopall", {}),
        (["rename", "api", "api2"], "rename", {"name": "api", "new": "api2"}),
        (["copy", "api", "api2"], "copy", {"name": "api", "new": "api2"}),
        (["cp", "api", "api2"], "copy", {"name": "api", "new": "api2"}),
        (["info", "api"], "info", {"name": "api"}),
        (["env", "api"], "env", {"name": "api"}),
        (["env", "api#2"], "env", {"name": "api", "index": 2}),
        (["wait", "api"], "wait", {"name": "api"}),
        (["wait", "api", "--timeout", "5s"], "wait", {"name": "api", "timeout": 5000}),
        (["list"], "list", {}),
        (["ls"], "list", {}),
        (["SIGHUP", "api"], "signal", {"target": "api", "signal": "SIGHUP"}),
        (["SIGUSR1", "api#2"], "signal", {"target": "api#2", "signal": "SIGUSR1"}),
        (["HUP", "api"], "signal", {"target": "api", "signal": "SIGHUP"}),
        (["sigterm", "api"], "signal", {"target": "api", "signal": "SIGTERM"}),
        (["signal", "SIGHUP", "api"], "signal", {"target": "api", "signal": "SIGHUP"}),
        (["signal", "usr2", "api"], "signal", {"target": "api", "signal": "SIGUSR2"}),
        (["signal", "10", "api"], "signal", {"target": "api", "signal": 10}),
        (["SIGRTMIN+2", "api"], "signal", {"target": "api", "signal": "SIGRTMIN+2"}),
        (["--json", "list"], "list", {}),
    ],
)
def test_dispatch_sends_the_protocol_request(cli, daemon: FakeDaemon, argv, cmd, args) -> None:
    daemon.reply(
        cmd,
        {"workers": []}
        if cmd == "list"
        else {"sent": [{"instance": 1, "pid": 7}]}
        if cmd == "signal"
        else {"env": {}}
        if cmd == "env"
        else {"removed": "api"}
        if cmd == "remove"
        else {"stopped": []}
        if cmd == "stopall"
        else worker("api"),
    )
    r = cli(*argv)
    assert r.code == 0, r
    assert daemon.last()["cmd"] == cmd
    assert daemon.last()["args"] == args
    assert daemon.last()["v"] == 1


def test_outputs_of_write_commands(cli, daemon: FakeDaemon) -> None:
    daemon.reply("stop", worker("api", status="stopped", instances=[]))
    assert cli("stop", "api").out == "api stopped 0/0 instances\n"
    daemon.reply("remove", {"removed": "api"})
    assert cli("rm", "api").out == "removed api\n"
    daemon.reply("stopall", {"stopped": ["a", "b"]})
    assert cli("stopall").out == "stopped 2 workers: a, b\n"
    daemon.reply("stopall", {"stopped": []})
    assert cli("stopall").out == "no worker was running\n"
    daemon.reply("rename", worker("api2"))
    assert cli("rename", "api", "api2").out.startswith("renamed api → api2 running 1/1 instance (pid 4242)")
    daemon.reply("signal", {"sent": [{"instance": 1, "pid": 7}, {"instance": 2, "pid": 8}]})
    assert cli("SIGHUP", "api").out == "sent SIGHUP to api#1 (pid 7), api#2 (pid 8)\n"
    daemon.reply("signal", {"sent": []})
    assert "no running instance of api" in cli("HUP", "api").out


def test_progress_events_are_printed(cli, daemon: FakeDaemon) -> None:
    daemon.reply(
        "restart",
        worker("api"),
        events=(("progress", {"message": "Starting child #1"}), ("progress", {"message": "api#1 is up"})),
    )
    r = cli("restart", "api")
    assert r.out.splitlines() == [
        "Restarting api",
        "  Starting child #1",
        "  api#1 is up",
        "api running 1/1 instance (pid 4242)",
    ]


def test_wait_streams_state_events(cli, daemon: FakeDaemon) -> None:
    daemon.reply("wait", worker("db"), events=(("state", {"name": "db", "instance": 1, "status": "starting"}),))
    r = cli("wait", "db")
    assert r.code == 0
    assert r.out.splitlines() == ["  db#1: starting", "db running 1/1 instance (pid 4242)"]


def test_env_prints_sorted_lines(cli, daemon: FakeDaemon) -> None:
    daemon.reply("env", {"env": {"PORT": "3000", "APM_INDEX": "0", "A": "x=y"}})
    assert cli("env", "api").out == "A=x=y\nAPM_INDEX=0\nPORT=3000\n"


def test_run_without_program(cli, daemon: FakeDaemon) -> None:
    r = cli("run")
    assert r.code == 2 and "apm run needs a program to run" in r.err


# --------------------------------------------------------------------------- --json


@pytest.mark.parametrize(
    ("argv", "cmd", "result"),
    [
        (["list", "--json"], "list", {"workers": sample_workers()}),
        (["info", "api", "--json"], "info", dict(worker("api"), options={"instances": 1})),
        (["env", "api", "--json"], "env", {"env": {"A": "1"}}),
        (["wait", "api", "--json"], "wait", worker("api")),
        (["run", "x", "--json"], "run", worker("x")),
        (["stopall", "--json"], "stopall", {"stopped": ["a"]}),
    ],
)
def test_json_is_the_daemon_result_as_is(cli, daemon: FakeDaemon, argv, cmd, result) -> None:
    daemon.reply(cmd, result, events=(("progress", {"message": "hello"}),))
    r = cli(*argv)
    assert r.code == 0, r
    assert json.loads(r.out) == result
    assert r.out.startswith("{\n  ")  # pretty-printed


def test_json_with_events_keeps_stdout_clean(cli, daemon: FakeDaemon) -> None:
    daemon.reply("run", worker("x"), events=(("progress", {"message": "Starting child #1"}),))
    r = cli("run", "x", "--json")
    assert json.loads(r.out)["name"] == "x"
    assert "Starting child #1" in r.err


def test_version_json(cli, daemon: FakeDaemon) -> None:
    data = cli("--version", "--json").json()
    assert data["cli"]["version"] == __version__
    assert data["daemon"] == {"version": "9.9.9", "python": "3.11.0", "pid": 4242}
    assert data["socket"] == "@" + daemon.name


def test_json_refused_where_meaningless(cli, daemon: FakeDaemon) -> None:
    r = cli("convert", "x.json", "--json")
    assert r.code == 2 and "unknown option --json" in r.err


# --------------------------------------------------------------------------- --version and exit (no autostart)


def _no_launch(monkeypatch) -> list:
    launched: list = []

    def launcher(argv0=None):
        launched.append(True)
        raise AssertionError("must not autostart")

    monkeypatch.setattr(client_mod, "launcher_command", launcher)
    return launched


@pytest.mark.parametrize("flag", ["--version", "-v", "version"])
def test_version_with_daemon(cli, daemon: FakeDaemon, flag: str) -> None:
    r = cli(flag)
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0] == f"apm {__version__}"
    assert lines[1] == f"daemon 9.9.9 (pid 4242) on @{daemon.name}"
    assert "another version" in lines[2]


def test_version_without_daemon_does_not_autostart(monkeypatch) -> None:
    launched = _no_launch(monkeypatch)
    r = run_cli("apm-test-cli-nobody-home", "--version")
    assert r.code == 0
    assert r.out == f"apm {__version__}\ndaemon not running (@apm-test-cli-nobody-home)\n"
    data = run_cli("apm-test-cli-nobody-home", "-v", "--json").json()
    assert data["daemon"] is None
    assert launched == []


def test_exit_daemon(cli, daemon: FakeDaemon) -> None:
    daemon.reply("exit", {"stopped": ["a", "b"]})
    r = cli("exit", "daemon")
    assert r.code == 0, r
    assert r.out == "daemon stopped (2 workers stopped)\n"


def test_exit_without_daemon_does_not_autostart(monkeypatch) -> None:
    launched = _no_launch(monkeypatch)
    r = run_cli("apm-test-cli-nobody-home", "exit", "daemon")
    assert r.code == 0
    assert "no apm daemon is running on @apm-test-cli-nobody-home" in r.out
    assert launched == []


def test_exit_needs_the_word_daemon(cli, daemon: FakeDaemon) -> None:
    r = cli("exit")
    assert r.code == 2 and "apm exit daemon" in r.err
    assert cli("exit", "now").code == 2
    assert daemon.requests == []


# --------------------------------------------------------------------------- helpful errors


def test_missing_name_lists_workers(cli, daemon: FakeDaemon) -> None:
    daemon.reply("list", {"workers": sample_workers()})
    for command in ("restart", "stop", "start", "info", "remove"):
        r = cli(command)
        assert r.code == 2
        assert r.err.splitlines()[0] == f"apm: missing worker name for `apm {command}`"
        assert f"usage: apm {command} <name>" in r.err
        assert "workers: api, jobs-nightly-report-generator, web, old, off" in r.err
        assert "Traceback" not in r.err
    assert set(daemon.cmds()) == {"list"}


def test_unknown_name_suggests_close_matches(cli, daemon: FakeDaemon) -> None:
    daemon.reply("list", {"workers": sample_workers()})
    daemon.reply("restart", error=NotFound("no worker named 'ap'"))
    r = cli("restart", "ap")
    assert r.code == 3
    assert r.err == "apm: no worker named 'ap'\n  hint: did you mean api?\n"


def test_unknown_name_with_no_workers(cli, daemon: FakeDaemon) -> None:
    daemon.reply("list", {"workers": []})
    daemon.reply("stop", error=NotFound("no worker named 'zzz'"))
    r = cli("stop", "zzz")
    assert r.code == 3 and "apm run <cmd>" in r.err


def test_daemon_hint_with_suggestion_is_kept(cli, daemon: FakeDaemon) -> None:
    daemon.reply("stop", error=NotFound("no worker named 'ap'", hint="did you mean api?"))
    r = cli("stop", "ap")
    assert r.err == "apm: no worker named 'ap'\n  hint: did you mean api?\n"


def test_unknown_command(cli) -> None:
    r = cli("strat", "api")
    assert r.code == 2
    assert r.err.startswith("apm: unknown command 'strat'\n  hint: did you mean start")
    assert "commands: run, start, stop, restart" in r.err


@pytest.mark.parametrize(
    ("word", "suggestion"),
    [("delete", "apm remove"), ("kill", "apm exit daemon"), ("describe", "apm info"), ("status", "apm list")],
)
def test_pm2_habits(cli, word: str, suggestion: str) -> None:
    r = cli(word, "api")
    assert r.code == 2 and f"`{suggestion}`" in r.err


def test_lowercase_bare_signal_is_not_a_command(cli) -> None:
    assert "unknown command 'hup'" in cli("hup", "api").err


def test_bad_signal_and_bad_instance(cli, daemon: FakeDaemon) -> None:
    r = cli("signal", "SIGNOPE", "api")
    assert r.code == 2 and "'SIGNOPE' is not a signal" in r.err
    r = cli("SIGHUP", "api#0")
    assert r.code == 2 and "numbered from 1" in r.err
    r = cli("SIGHUP")
    assert r.code == 2 and "missing worker name or name#N" in r.err
    assert "signal" not in daemon.cmds()


def test_unknown_global_option(cli) -> None:
    r = cli("--jsn", "list")
    assert r.code == 2 and "did you mean --json?" in r.err


def test_too_many_arguments(cli, daemon: FakeDaemon) -> None:
    r = cli("stop", "a", "b")
    assert r.code == 2 and "unexpected argument 'b' for `apm stop`" in r.err


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UsageError("bad"), 2),
        (ConfigError("bad"), 2),
        (NotFound("bad", hint="x"), 3),
        (Conflict("bad"), 4),
        (PermissionDenied("bad"), 5),
        (DaemonUnavailable("bad"), 6),
        (StartFailed("bad"), 7),
        (ProtocolError("bad"), 8),
        (ApmError("bad"), 1),
        ({"type": "SomethingNew", "message": "bad", "exit": 9}, 9),
        ({"type": "SomethingNew", "message": "bad"}, 1),
    ],
)
def test_exit_code_per_error_type(cli, daemon: FakeDaemon, error, code: int) -> None:
    daemon.reply("stop", error=error)
    r = cli("stop", "api")
    assert r.code == code
    assert r.err.startswith("apm: bad")
    assert "Traceback" not in r.err


def test_error_hint_line(cli, daemon: FakeDaemon) -> None:
    daemon.reply("start", error=Conflict("api is already running", hint="use `apm restart api`"))
    r = cli("start", "api")
    assert r.err == "apm: api is already running\n  hint: use `apm restart api`\n"


def test_error_in_colour_on_a_tty(cli, daemon: FakeDaemon) -> None:
    daemon.reply("start", error=Conflict("api is already running", hint="use restart"))
    r = cli("start", "api", tty=True)
    assert r.err.startswith("apm: \x1b[31;1merror:\x1b[0m api is already running")
    r = cli("start", "api", tty=True, env={"NO_COLOR": "1"})
    assert r.err.startswith("apm: api is already running")


def test_permission_denied_on_write_gets_a_hint(cli, daemon: FakeDaemon) -> None:
    daemon.reply("stop", error={"type": "PermissionDenied", "message": "user bob may not run 'stop'", "exit": 5})
    r = cli("stop", "api")
    assert r.code == 5 and "usermod -aG apm" in r.err


def test_start_failed_shows_stderr_and_hints(cli, daemon: FakeDaemon) -> None:
    error = StartFailed("worker Portal4 failed to start", hint="check logs: apm log Portal4").to_dict()
    error["detail"] = {
        "instance": 1,
        "exit_code": 1,
        "signal": None,
        "runtime_ms": 515,
        "stderr": "Error: Cannot find module 'redis'\n",
        "hints": ["missing node module redis"],
    }
    daemon.reply("restart", error=error, events=(("progress", {"message": "Starting child #1"}),))
    r = cli("restart", "Portal4")
    assert r.code == 7
    assert r.out == "Restarting Portal4\n  Starting child #1\n"
    lines = r.err.splitlines()
    assert lines[0] == " Portal4#1 failed during startup (exit 1, 515 ms)"
    assert lines[1].startswith("── child stderr ─")
    assert lines[2] == "Error: Cannot find module 'redis'"
    assert lines[3] == "─" * 62
    assert lines[4] == "   missing node module redis"
    assert lines[5:] == ["apm: worker Portal4 failed to start", "  hint: check logs: apm log Portal4"]


def test_internal_error_is_one_line(cli, daemon: FakeDaemon, monkeypatch) -> None:
    def boom(ctx, parsed):
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setitem(commands.COMMANDS, "list", commands.COMMANDS["list"].replace(handler=boom))
    r = cli("list")
    assert r.code == 1
    assert r.err == "apm: internal error: RuntimeError: kaboom\n  run with APM_DEBUG=1 for details\n"
    r = cli("list", env={"APM_DEBUG": "1"})
    assert r.code == 1 and "Traceback" in r.err and "kaboom" in r.err


# --------------------------------------------------------------------------- colour through the CLI


def test_list_colour_switches(cli, daemon: FakeDaemon) -> None:
    daemon.reply("list", {"workers": sample_workers()})
    assert "\x1b[" in cli("list", tty=True).out
    assert "\x1b[" not in cli("list").out
    assert "\x1b[" not in cli("list", tty=True, env={"NO_COLOR": "1"}).out
    assert "\x1b[" not in cli("list", "--no-color", tty=True).out
    assert "\x1b[" not in cli("--no-color", "list", tty=True).out
    assert "\x1b[" in cli("list", env={"APM_COLOR": "1"}).out
    assert "\x1b[" in cli("list", "--color").out
    assert "\x1b[" not in cli("list", "--json", tty=True).out


def test_list_respects_columns(cli, daemon: FakeDaemon) -> None:
    daemon.reply("list", {"workers": sample_workers()})
    out = cli("list", env={"COLUMNS": "60"}).out
    assert all(len(line) <= 60 for line in out.splitlines())
    assert "NAMESPACE" not in out


def test_empty_list_hint(cli, daemon: FakeDaemon) -> None:
    daemon.reply("list", {"workers": []})
    assert "apm run <cmd>" in cli("list").out


# --------------------------------------------------------------------------- help


def test_help_forms(cli) -> None:
    main = cli("--help").out
    assert "usage: apm <command>" in main and "run <exec> [args...]" in main
    assert "rename" not in main
    full = cli("-h", "--full").out
    assert "rename <name> <new>" in full and "Exit codes:" in full and "APM_SOCKET" in full
    assert cli().out == main
    assert cli("help", "run").out == cli("run", "--help").out == cli("-h", "run").out
    assert "--instances" in cli("help", "run").out
    assert "--memory_limit SIZE" in cli("help", "options").out
    assert "SIGUSR1" in cli("help", "signals").out
    assert "--no-restart" in cli("update", "-h").out
    r = cli("help", "strat")
    assert r.code == 2 and "did you mean start" in r.err


# --------------------------------------------------------------------------- lazily wired commands


def _missing(monkeypatch, *names: str) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def fake(name, *a, **kw):
        return None if name in names else real(name, *a, **kw)

    monkeypatch.setattr(importlib.util, "find_spec", fake)


@pytest.mark.parametrize(
    ("argv", "module"),
    [
        (["install"], "alter.install"),
        (["uninstall", "--purge"], "alter.install"),
        (["check", "x.conf"], "alter.config.loader"),
        (["convert", "eco.json"], "alter.config.pm2"),
        (["daemon"], "alter.daemon.main"),
    ],
)
def test_not_available_is_clean(cli, monkeypatch, argv, module) -> None:
    _missing(monkeypatch, module)
    r = cli(*argv)
    assert r.code == 1
    assert f"is not available in this build ({module} is missing)" in r.err
    assert "Traceback" not in r.err


def test_daemon_and_install_get_their_words(cli, monkeypatch) -> None:
    seen: list = []
    monkeypatch.setattr(admin, "require_module", lambda module, command: None)
    fake_daemon = types.ModuleType("alter.daemon.main")
    fake_daemon.main = lambda argv: seen.append(("daemon", argv)) or 0  # type: ignore[attr-defined]
    fake_install = types.ModuleType("alter.install")
    fake_install.main = lambda argv: seen.append(("install", argv)) or 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "alter.daemon.main", fake_daemon)
    monkeypatch.setitem(sys.modules, "alter.install", fake_install)
    # Words the real daemon/installer reject harmlessly, should the fakes ever be bypassed.
    assert cli("daemon", "--cli-test-only").code == 0
    assert cli("uninstall", "--cli-test-only").code == 3
    assert seen == [("daemon", ["--cli-test-only"]), ("install", ["uninstall", "--cli-test-only"])]


def test_convert_writes_stdout_or_file(cli, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(admin, "require_module", lambda module, command: None)
    fake = types.ModuleType("alter.config.pm2")
    fake.convert = lambda path: "worker {\n    name a;\n}\n"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "alter.config.pm2", fake)
    source = tmp_path / "eco.json"
    source.write_text("{}")
    assert cli("convert", str(source)).out == "worker {\n    name a;\n}\n"
    target = tmp_path / "out.conf"
    assert cli("convert", str(source), str(target)).code == 0
    assert target.read_text() == "worker {\n    name a;\n}\n"
    r = cli("convert", str(source), str(target))
    assert r.code == 4 and "--force" in r.err
    assert cli("convert", str(source), str(target), "--force").code == 0
    assert cli("convert", str(tmp_path / "nope.json")).code == 2


def test_check_reports_actions(cli, daemon: FakeDaemon, tmp_path) -> None:
    conf = tmp_path / "x.conf"
    conf.write_text(
        "worker api { exec node; params server.js; instances 2; foo 1; }\n"
        "worker new { exec x; }\nworker web { exec changed; }\n"
    )
    daemon.reply(
        "plan",
        {
            "file": str(conf),
            "created": ["new"],
            "changed": ["web"],
            "removed": ["gone"],
            "unchanged": ["api"],
            "skipped": [],
            "changed_keys": {"web": ["exec"]},
            "warnings": [],
        },
    )
    r = cli("check", str(conf))
    assert r.code == 0, r
    sent = daemon.last("plan")["args"]
    assert sent["file"] == str(conf) and [w["config"]["name"] for w in sent["workers"]] == ["api", "new", "web"]
    assert f"warning: {conf}:1:56: unknown worker option 'foo' ignored" in r.out
    assert "  unchanged    api" in r.out
    assert "  would create new" in r.out
    assert "  would change web (exec)" in r.out
    assert "  would remove gone" in r.out
    data = cli("check", str(conf), "--json").json()
    assert {"name": "new", "action": "create"} in data["workers"] and data["ok"] is True
    conf.write_text("worker a { exec x; instances z; }\nworker b { }\n")
    r = cli("check", str(conf))
    assert r.code == 2 and f"error: {conf}:1:30:" in r.out and f"error: {conf}:2:1:" in r.out
    assert "2 errors" in r.out

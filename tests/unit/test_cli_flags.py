"""Flag parsing for run/update (from the option table) and the commands' own flags."""
# ruff: noqa: F811  (pytest fixtures imported from test_cli_fakedaemon are used as arguments)

from __future__ import annotations

import os

import pytest

from alter.cli.commands import find
from alter.cli.flags import coerce_flag, parse
from alter.config.options import BLOCKS
from alter.errors import UsageError
from tests.unit.test_cli_fakedaemon import FakeDaemon, cli, daemon  # noqa: F401

RUN = find("run")
UPDATE = find("update")


def p(*words: str, command=RUN):
    return parse(command, list(words))


def usage_error(*words: str, command=RUN) -> UsageError:
    with pytest.raises(UsageError) as info:
        parse(command, list(words))
    return info.value


# --------------------------------------------------------------------------- the manual's examples


def test_manual_run_example() -> None:
    r = p(
        "node",
        "server.js",
        "--name",
        "myapp",
        "--instances",
        "4",
        "--server",
        "http://0.0.0.0:3000",
        "--watch",
        "*.js",
        "--restart",
        "--rolling",
    )
    assert r.positionals == ["node", "server.js"]
    assert r.options == {
        "name": "myapp",
        "instances": 4,
        "server": ["http://0.0.0.0:3000"],
        "watch": ["*.js"],
        "restart": True,
        "rolling": True,
    }


def test_manual_run_example_end_to_end(cli, daemon: FakeDaemon) -> None:
    daemon.reply(
        "run",
        {
            "name": "myapp",
            "status": "running",
            "instances_wanted": 4,
            "instances_running": 4,
            "instances": [{"index": i, "pid": 100 + i} for i in range(1, 5)],
        },
    )
    r = cli(
        "run",
        "node",
        "server.js",
        "--name",
        "myapp",
        "--instances",
        "4",
        "--server",
        "http://0.0.0.0:3000",
        "--watch",
        "*.js",
        "--restart",
        "--rolling",
    )
    assert r.code == 0, r
    args = daemon.last("run")["args"]
    assert args == {
        "config": {
            "name": "myapp",
            "instances": 4,
            "server": ["http://0.0.0.0:3000"],
            "watch": ["*.js"],
            "restart": True,
            "rolling": True,
            "exec": "node",
            "params": ["server.js"],
            "path": os.getcwd(),
        },
        "cwd": os.getcwd(),
        "wait": True,
    }
    assert "Starting myapp" in r.out
    assert "myapp running 4/4 instances (pid 101, 102, 103, 104)" in r.out


def test_manual_update_example(cli, daemon: FakeDaemon) -> None:
    daemon.reply("update", {"name": "myapp", "status": "running", "instances_wanted": 8})
    r = cli("update", "myapp", "--instances", "8", "--no-restart")
    assert r.code == 0, r
    assert daemon.last("update")["args"] == {
        "name": "myapp",
        "config": {"instances": 8},
        "restart": False,
        "wait": False,
    }
    assert "not restarted" in r.out


# --------------------------------------------------------------------------- forms


@pytest.mark.parametrize("word", ["--restart_err", "--restart-err", "--Restart-Err"])
def test_dash_and_underscore_spellings(word: str) -> None:
    assert p("x", word).options == {"restart_err": True}


def test_equals_and_space_values() -> None:
    assert p("x", "--name=web").options["name"] == "web"
    assert p("x", "--name", "web").options["name"] == "web"
    assert usage_error("x", "--name=").message.startswith("--name '': a worker name is")


@pytest.mark.parametrize(
    ("words", "restart", "positionals"),
    [
        (["x", "--restart"], True, ["x"]),
        (["x", "--restart", "false"], False, ["x"]),
        (["x", "--restart", "no"], False, ["x"]),
        (["x", "--restart", "ON"], True, ["x"]),
        (["x", "--restart=no"], False, ["x"]),
        (["x", "--restart=1"], True, ["x"]),
        (["--restart", "node", "server.js"], True, ["node", "server.js"]),
        (["node", "--restart", "server.js"], True, ["node", "server.js"]),
        (["sleep", "--restart", "1"], True, ["sleep", "1"]),  # 1/0 stay program words
    ],
)
def test_boolean_forms(words, restart, positionals) -> None:
    r = p(*words)
    assert r.options["restart"] is restart
    assert r.positionals == positionals


def test_lists_repeat_or_take_commas() -> None:
    assert p("x", "--server", ":3000,:3001").options["server"] == [":3000", ":3001"]
    assert p("x", "--server", ":3000", "--server=:3001").options["server"] == [":3000", ":3001"]
    assert p("x", "--watch", "*.js,*.json", "--watch", "src*").options["watch"] == ["*.js", "*.json", "src*"]
    assert p("x", "--restart_on_exit_codes", "1,2", "--restart_on_exit_codes", "3").options[
        "restart_on_exit_codes"
    ] == [1, 2, 3]


def test_env_values_keep_commas() -> None:
    r = p("x", "--env", "A=1", "--env", "B=2", "--env", "LIST=a,b,c")
    assert r.options["env"] == ["A=1", "B=2", "LIST=a,b,c"]


def test_durations_and_sizes_are_canonical() -> None:
    r = p("x", "--kill_timeout", "5s", "--memory_limit", "256M", "--restart_delay", "100")
    assert r.options == {"kill_timeout": 5000, "memory_limit": 256 * 1024**2, "restart_delay": 100}


def test_double_dash_passes_everything_verbatim() -> None:
    r = p("node", "server.js", "--name", "web", "--", "--port", "3000", "--name", "inner")
    assert r.positionals == ["node", "server.js"]
    assert r.program == ["--port", "3000", "--name", "inner"]
    assert r.options == {"name": "web"}
    r = p("--name=web", "--", "node", "--inspect", "server.js")
    assert r.positionals == [] and r.program == ["node", "--inspect", "server.js"]


def test_exec_after_double_dash_end_to_end(cli, daemon: FakeDaemon) -> None:
    daemon.reply("run", {"name": "web", "status": "starting"})
    assert cli("run", "--name=web", "--no-wait", "--", "node", "--inspect", "server.js").code == 0
    config = daemon.last("run")["args"]["config"]
    assert config["exec"] == "node" and config["params"] == ["--inspect", "server.js"]
    assert daemon.last("run")["args"]["wait"] is False


def test_negative_numbers_and_dash_are_words() -> None:
    assert p("x", "-1", "-").positionals == ["x", "-1", "-"]


def test_apm_flags_anywhere() -> None:
    r = p("--json", "node", "--no-wait", "server.js", "--instances", "2")
    assert r.flags == {"json": True, "no_wait": True}
    assert r.positionals == ["node", "server.js"]


# --------------------------------------------------------------------------- errors


def test_unknown_flag_suggests_double_dash() -> None:
    err = usage_error("node", "server.js", "--port", "3000")
    assert err.message == (
        "unknown option --port; if it is for the program, put it after `--`: apm run node server.js -- --port 3000"
    )


def test_unknown_flag_suggests_close_option() -> None:
    err = usage_error("node", "--instance", "4")
    assert "did you mean --instances?" in err.hint
    err = usage_error("node", "--restart-er")
    assert "--restart_err" in err.hint


def test_short_flags_after_the_program_go_to_the_program() -> None:
    # `apm run sh -c '...' --name x`: apm's own flags are all --long, so -c belongs to sh.
    parsed = parse(RUN, ["sh", "-c", "echo hi; exit 3", "--name", "x", "-u"])
    assert parsed.positionals == ["sh", "-c", "echo hi; exit 3", "-u"]
    assert parsed.options == {"name": "x"}


def test_unknown_short_flag_before_the_program_is_an_error() -> None:
    err = usage_error("-u", "python3", "app.py")
    assert "unknown option -u" in err.message and "-- -u python3 app.py" in err.message


def test_unknown_flag_on_a_plain_command() -> None:
    err = usage_error("api", "--forse", command=find("stop"))
    assert err.message == "unknown option --forse for `apm stop`"
    err = usage_error("a.json", "--forse", command=find("convert"))
    assert "did you mean --force?" in err.hint


def test_non_cli_option_is_explained() -> None:
    err = usage_error("x", "--on_crash", "y")
    assert "cannot be set with a flag" in err.message


def test_value_flag_without_value() -> None:
    assert usage_error("x", "--name").message == "--name needs a value"
    assert usage_error("x", "--name", "--instances", "2").message == "--name needs a value"
    assert usage_error("api", "--timeout", command=find("wait")).message == "--timeout needs a value"


def test_switch_with_value_is_an_error() -> None:
    assert "takes no value" in usage_error("x", "--no-wait=yes").message


def test_single_value_option_given_twice() -> None:
    err = usage_error("x", "--instances", "2", "--instances=3")
    assert err.message.startswith("--instances given 2 times")


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["--instances", "abc"], "--instances abc: expected a whole number"),
        (["--instances=0"], "--instances 0: 0 is below the minimum 1"),
        (["--restart=maybe"], "--restart maybe: expected true or false"),
        (["--kill_timeout", "5x"], "--kill_timeout 5x: expected milliseconds (e.g. 500, or 2s / 5m / 1h)"),
        (["--memory_limit", "12Q"], "--memory_limit 12Q: expected a size like 512K, 256M or 1G"),
        (["--server", "nope"], "--server nope: 'nope' is not a server address"),
        (["--env", "NOEQUALS"], "--env NOEQUALS: 'NOEQUALS' is not KEY=value"),
        (["--restart_on_exit_codes", "1,x"], "--restart_on_exit_codes 1,x: expected a whole number"),
        (["--name", "bad name"], "--name bad name: a worker name is 1-128 characters"),
    ],
)
def test_malformed_values_name_the_flag(words, message) -> None:
    err = usage_error("x", *words)
    assert err.message.startswith(message), err.message
    assert err.hint.startswith("--")  # says what the flag takes


def test_malformed_enum_and_float_kinds() -> None:
    method = BLOCKS["on_crash"]["method"]
    assert coerce_flag(method, [("--method", "get")]) == "GET"
    with pytest.raises(UsageError) as info:
        coerce_flag(method, [("--method", "PUT")])
    assert info.value.message == "--method PUT: expected one of POST, GET"
    rate = BLOCKS["vanguard"]["rate_limit"]
    with pytest.raises(UsageError) as info:
        coerce_flag(rate, [("--rate_limit", "fast")])
    assert info.value.message == "--rate_limit fast: expected a number"


def test_malformed_value_end_to_end_exit_code(cli, daemon: FakeDaemon) -> None:
    r = cli("run", "node", "--instances", "abc")
    assert r.code == 2
    assert r.err.startswith("apm: --instances abc: expected a whole number\n  hint: --instances takes integer")
    assert daemon.requests == []  # never reached the daemon


# --------------------------------------------------------------------------- update specifics


def test_update_unset_and_params(cli, daemon: FakeDaemon) -> None:
    daemon.reply("update", {"name": "api", "status": "running"})
    assert cli("update", "api", "--unset", "watch", "--unset", "restart-err", "--", "--port", "4000").code == 0
    args = daemon.last("update")["args"]
    assert args["config"] == {"watch": None, "restart_err": None, "params": ["--port", "4000"]}
    assert args["restart"] is True and args["wait"] is True


def test_update_unknown_unset_and_nothing_to_do(cli, daemon: FakeDaemon) -> None:
    r = cli("update", "api", "--unset", "wach")
    assert r.code == 2 and "did you mean watch" in r.err
    r = cli("update", "api")
    assert r.code == 2 and "nothing to update" in r.err
    r = cli("update", "api", "extra")
    assert r.code == 2 and "unexpected argument 'extra'" in r.err
    assert daemon.requests == [] or daemon.cmds() == ["list"]

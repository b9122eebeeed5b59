"""Spawn specs: the clean environment, env_file, user rules, path and exec validation."""

from __future__ import annotations

import pytest

from alter.config import options
from alter.errors import StartFailed
from alter.supervise.launch import build_spec, child_env, expand_vars, parse_env_file
from alter.supervise.ops import FakeOps


def cfg(**kw: object) -> dict:
    return options.effective({"name": "api", "exec": "node", "params": ["server.js"], **kw})


def test_root_daemon_env_is_minimal_and_ordered() -> None:
    ops = FakeOps()
    ops.daemon_env.update({"LC_ALL": "C", "TZ": "UTC", "APM_HOME": "/tmp/h", "AWS_SECRET": "x"})
    ops.files["/srv/app/.env"] = "A=from_file\nB=from_file\n"
    env, warnings = child_env(
        "api",
        2,
        cfg(env_file=".env", path="/srv/app", env=["B=from_env", "APM_NAME=spoof"], env_index="WORKER_ID"),
        ops,
        "apm",
    )
    assert warnings == []
    assert env == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C",
        "TZ": "UTC",
        "APM_HOME": "/tmp/h",
        "HOME": "/root",
        "USER": "root",
        "LOGNAME": "root",
        "SHELL": "/bin/bash",
        "A": "from_file",
        "B": "from_env",
        "APM": "1",
        "APM_NAME": "api",
        "APM_INDEX": "2",
        "WORKER_ID": "2",
        "APM_INSTANCE": "apm:api#3",
    }


def test_other_user_gets_their_home_and_a_standard_path() -> None:
    ops = FakeOps()
    env, _ = child_env("api", 0, cfg(user="alice"), ops, "apm")
    assert (env["HOME"], env["USER"], env["LOGNAME"], env["SHELL"]) == ("/home/alice", "alice", "alice", "/bin/sh")
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    spec, _ = build_spec("api", 0, cfg(user="alice"), ops, "apm")
    assert spec.user is not None and spec.user.uid == 1000 and spec.user.groups == (1000, 27)
    assert spec.cwd == "/home/alice"  # no path: the user's home


def test_unknown_user() -> None:
    with pytest.raises(StartFailed, match="no user named 'bob'"):
        build_spec("api", 0, cfg(user="bob"), FakeOps(), "apm")


def test_non_root_daemon_refuses_other_users() -> None:
    ops = FakeOps(is_root=False)
    with pytest.raises(StartFailed, match="user 'root' needs a root daemon"):
        build_spec("api", 0, cfg(user="root"), ops, "apm")
    spec, _ = build_spec("api", 0, cfg(user="alice"), ops, "apm")  # its own user is fine
    assert spec.user is None


def test_memory_limit_on_a_user_daemon_warns() -> None:
    spec, warnings = build_spec("api", 0, cfg(memory_limit=64 << 20), FakeOps(is_root=False), "apm")
    assert spec.memory_limit is None and "memory_limit needs a root daemon" in warnings[0]


def test_path_is_expanded_with_the_child_env() -> None:
    ops = FakeOps()
    ops.dirs.add("/home/alice/app")
    spec, _ = build_spec("api", 0, cfg(user="alice", path="$HOME/app"), ops, "apm")
    assert spec.cwd == "/home/alice/app"
    with pytest.raises(StartFailed, match=r"path '\$HOME/nope' is not a directory \(expanded: /home/alice/nope\)"):
        build_spec("api", 0, cfg(user="alice", path="$HOME/nope"), ops, "apm")


def test_a_path_the_target_user_cannot_enter_is_refused() -> None:
    ops = FakeOps()
    ops.closed_dirs[("/root", "alice")] = "/root is drwx------ root:root"
    with pytest.raises(StartFailed, match=r"user 'alice' cannot enter path '/root' \(/root is drwx------ root:root\)"):
        build_spec("api", 0, cfg(user="alice", path="/root"), ops, "apm")
    spec, _ = build_spec("api", 0, cfg(path="/root"), ops, "apm")  # the daemon's own user is not checked
    assert spec.cwd == "/root"


def test_exec_resolution() -> None:
    ops = FakeOps()
    spec, _ = build_spec("api", 0, cfg(path="/srv/app"), ops, "apm")
    assert spec.executable == "/usr/bin/node" and spec.argv == ["node", "server.js"]
    ops.executables.add("/srv/app/bin/run")
    spec, _ = build_spec("api", 0, cfg(exec="bin/run", path="/srv/app"), ops, "apm")
    assert spec.executable == "/srv/app/bin/run" and spec.argv[0] == "bin/run"
    with pytest.raises(StartFailed, match="'nodee' not found in PATH"):
        build_spec("api", 0, cfg(exec="nodee"), ops, "apm")


def test_missing_env_file_is_a_clear_error() -> None:
    with pytest.raises(StartFailed, match="cannot read env_file /srv/app/.env"):
        build_spec("api", 0, cfg(env_file=".env", path="/srv/app"), FakeOps(), "apm")


def test_env_file_syntax() -> None:
    text = '# comment\n\nexport A=1\nB = two words \nC="quoted \\"x\\"\\nline"\nD=\'single $x\'\nbad line\n1X=2\nE=\n'
    env, warnings = parse_env_file(text, "/f")
    assert env == {"A": "1", "B": "two words", "C": 'quoted "x"\nline', "D": "single $x", "E": ""}
    assert warnings == ["/f:7: ignored 'bad line' (expected KEY=VALUE)", "/f:8: ignored '1X=2' (expected KEY=VALUE)"]


def test_expand_vars() -> None:
    env = {"HOME": "/home/a", "X": "x"}
    assert expand_vars("$HOME/${X}/$NOPE", env) == "/home/a/x/$NOPE"
    assert expand_vars("~/app", env) == "/home/a/app"

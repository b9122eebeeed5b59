"""`apm run` / `apm update` flags through the built `dist/apm` (docs/cli.md, "Flags of run and update").

Every option of issue 3 as a run flag and as an update flag; `--a_b` == `--a-b`;
booleans bare or with a value; list options repeated or comma-separated; apm's
flags anywhere before `--`, the program's words kept in order, everything after
`--` verbatim; unknown flags and bad values refused before anything is sent.

One daemon serves the whole module (parsing tests do not need isolation);
each test uses its own worker names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from typing import Any, Dict, Iterator, List

import psutil
import pytest

from tests.helpers import wait_for
from tests.integration.conftest import Apm, _require_build, pid_alive, wait_gone

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux only")

# Every option issue 3 names, as `apm run` and `apm update` flags.
ISSUE_OPTIONS = [
    "name",
    "exec",
    "params",
    "path",
    "instances",
    "user",
    "env",
    "env_index",
    "env_file",
    "restart",
    "restart_delay",
    "max_restarts",
    "restart_err",
    "err_delay",
    "max_err_restarts",
    "err_grace",
    "restart_on_exit_codes",
    "kill_timeout",
    "depends_on",
    "depends_timeout",
    "startup_grace",
    "namespace",
    "enabled",
]


@pytest.fixture(scope="module")
def apm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Apm]:
    _require_build()
    home = str(tmp_path_factory.mktemp("apm-flags"))
    os.chmod(home, 0o755)
    inst = Apm(home)
    yield inst
    pid = inst.daemon_pid()
    procs = []
    if pid and pid_alive(pid):
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    subprocess.run(inst.cmd("exit", "daemon"), env=inst.env, capture_output=True, timeout=30)
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
        wait_gone(p.pid, 5)
    shutil.rmtree(home, ignore_errors=True)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def config_of(apm: Apm, name: str) -> Dict[str, Any]:
    return apm.json("info", name)["config"]


def options_of(apm: Apm, name: str) -> Dict[str, Any]:
    return apm.json("info", name)["options"]


def cmdline(pid: int) -> List[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [x.decode() for x in f.read().split(b"\0") if x]


def test_every_issue_option_is_a_run_flag_and_an_update_flag(apm: Apm, tmp_path) -> None:
    base = unique("dep")
    apm("run", "sleep", "300", "--name", base, "--startup-grace", "0")
    env_file = tmp_path / "vars.env"
    env_file.write_text("FROM_FILE=yes\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(env_file, 0o644)
    name = unique("all")
    # Mixed spellings on purpose: dashes, underscores, --flag=value.
    apm(
        "run", "--name", name, "--exec", "sleep", "--params", "301", "--path", str(tmp_path), "--instances", "2",
        "--user", "root", "--env", "A=1", "--env_index", "IDX", "--env-file", str(env_file), "--restart",
        "--restart-delay", "1s", "--max_restarts=3", "--restart_err", "--err-delay", "700", "--max-err-restarts", "4",
        "--err_grace", "5s", "--restart-on-exit-codes", "3,4", "--kill_timeout", "900", "--depends-on", base,
        "--depends_timeout", "2s", "--startup-grace", "100", "--namespace", "ns1", "--enabled=true", "--no-wait",
    )  # fmt: skip
    expected = {
        "name": name,
        "exec": "sleep",
        "params": ["301"],
        "path": str(tmp_path),
        "instances": 2,
        "user": "root",
        "env": ["A=1"],
        "env_index": "IDX",
        "env_file": str(env_file),
        "restart": True,
        "restart_delay": 1000,
        "max_restarts": 3,
        "restart_err": True,
        "err_delay": 700,
        "max_err_restarts": 4,
        "err_grace": 5000,
        "restart_on_exit_codes": [3, 4],
        "kill_timeout": 900,
        "depends_on": [base],
        "depends_timeout": 2000,
        "startup_grace": 100,
        "namespace": "ns1",
        "enabled": True,
    }
    assert set(expected) == set(ISSUE_OPTIONS)
    config = config_of(apm, name)
    wrong = {k: (config.get(k), v) for k, v in expected.items() if config.get(k) != v}
    assert not wrong, f"run flags stored wrongly (got, wanted): {wrong}"
    wait_for(lambda: apm.json("info", name)["instances_running"] == 2, 10, what="2 instances")
    env = apm.json("env", f"{name}#2")["env"]
    assert env["A"] == "1" and env["IDX"] == "1" and env["FROM_FILE"] == "yes"

    other = tmp_path / "other"
    other.mkdir()
    os.chmod(other, 0o755)
    new_name = unique("upd")
    apm(
        "update", name, "--name", new_name, "--exec", "sleep", "--params", "302", "--path", str(other),
        "--instances", "1", "--user", "nobody", "--env", "B=2", "--env-index", "IX", "--env_file", str(env_file),
        "--restart", "false", "--restart_delay", "300", "--max-restarts", "5", "--restart-err", "no",
        "--err_delay=800", "--max_err_restarts", "6", "--err-grace", "7s", "--restart_on_exit_codes", "9",
        "--restart-on-exit-codes", "10", "--kill-timeout", "2s", "--depends_on", f"{base},{base}x",
        "--depends-timeout", "3000", "--startup_grace", "150", "--namespace", "ns2", "--enabled", "off",
        "--no-restart",
    )  # fmt: skip
    expected.update(
        name=new_name,
        params=["302"],
        path=str(other),
        instances=1,
        user="nobody",
        env=["B=2"],
        env_index="IX",
        restart=False,
        restart_delay=300,
        max_restarts=5,
        restart_err=False,
        err_delay=800,
        max_err_restarts=6,
        err_grace=7000,
        restart_on_exit_codes=[9, 10],
        kill_timeout=2000,
        depends_on=[base, base + "x"],
        depends_timeout=3000,
        startup_grace=150,
        namespace="ns2",
        enabled=False,
    )
    config = config_of(apm, new_name)
    wrong = {k: (config.get(k), v) for k, v in expected.items() if config.get(k) != v}
    assert not wrong, f"update flags stored wrongly (got, wanted): {wrong}"
    status = apm.json("info", new_name)
    assert status["status"] == "disabled" and status["instances_running"] == 0, "enabled off stops the worker"
    apm("rm", new_name)
    apm("rm", base)


def test_dash_and_underscore_spellings_and_booleans(apm: Apm) -> None:
    a, b, c, d = (unique(x) for x in "abcd")
    apm("run", "sleep", "300", "--name", a, "--restart-err", "--no-wait", "--enabled", "false")
    apm("run", "sleep", "300", "--name", b, "--restart_err", "--no-wait", "--enabled", "false")
    assert options_of(apm, a)["restart_err"] is True and options_of(apm, b)["restart_err"] is True
    apm("update", a, "--restart-err", "false", "--restart=yes", "--no-restart")
    opts = options_of(apm, a)
    assert opts["restart_err"] is False and opts["restart"] is True
    apm("update", a, "--restart=no", "--restart_err=on", "--no-restart")
    opts = options_of(apm, a)
    assert opts["restart"] is False and opts["restart_err"] is True

    # A bare boolean takes the next word only when it is true/false/yes/no/on/off.
    apm("run", "echo", "--restart", "server.js", "--name", c, "--no-wait", "--enabled", "false")
    assert config_of(apm, c)["params"] == ["server.js"] and config_of(apm, c)["restart"] is True
    apm("run", "echo", "--restart", "1", "--name", d, "--no-wait", "--enabled", "false")
    assert config_of(apm, d)["params"] == ["1"], "`--restart 1` leaves 1 to the program"
    for n in (a, b, c, d):
        apm("rm", n)


def test_list_options_repeat_or_take_commas(apm: Apm) -> None:
    name = unique("lists")
    apm(
        "run", "sleep", "300", "--name", name, "--env", "A=1", "--env", "LIST=a,b", "--restart-on-exit-codes", "3,4",
        "--restart_on_exit_codes", "5", "--depends-on", "x,y", "--depends-on", "z", "--params", "p1",
        "--no-wait", "--enabled", "false",
    )  # fmt: skip
    config = config_of(apm, name)
    assert config["env"] == ["A=1", "LIST=a,b"], "--env keeps commas inside a value"
    assert config["restart_on_exit_codes"] == [3, 4, 5]
    assert config["depends_on"] == ["x", "y", "z"]
    assert config["params"] == ["p1", "300"] or config["params"] == ["300", "p1"]
    apm("rm", name)


def test_flags_anywhere_program_words_in_order_and_dashdash_verbatim(apm: Apm) -> None:
    name = unique("myapp")
    # The issue's example, with a real program: apm's flags in the middle of the program's words.
    apm(
        "run", "sleep", "300", "--name", name, "--instances", "2", "--startup-grace", "0",
        "--", "--name", "x",
    )  # fmt: skip
    status = apm.json("info", name)
    assert status["config"]["params"] == ["300", "--name", "x"]
    assert status["instances_wanted"] == 2 and status["name"] == name
    apm("rm", name)

    name = unique("argv")
    apm(
        "run", sys.executable, "-c", "import time; time.sleep(300)", "a", "--name", name, "b", "--instances", "2",
        "c", "--startup-grace", "0", "--", "--port", "3000", "--name", "y", "--", "-x",
    )  # fmt: skip
    status = apm.json("info", name)
    want = ["-c", "import time; time.sleep(300)", "a", "b", "c", "--port", "3000", "--name", "y", "--", "-x"]
    assert status["config"]["params"] == want
    assert status["instances_wanted"] == 2
    wait_for(lambda: apm.json("info", name)["instances_running"] == 2, 10, what="2 instances")
    for inst in apm.json("info", name)["instances"]:
        assert cmdline(inst["pid"])[1:] == want, "the program gets exactly these words"
    apm("rm", name)


def test_unknown_flags_and_bad_values_are_refused_before_sending(apm: Apm) -> None:
    before = {w["name"] for w in apm.json("list")["workers"]}
    r = apm("run", "node", "server.js", "--port", "3000", check=False)
    assert r.returncode == 2
    assert "unknown option --port" in r.stderr and "apm run node server.js -- --port 3000" in r.stderr, r.stderr
    r = apm("run", "sleep", "300", "--instanses", "2", check=False)
    assert r.returncode == 2 and "did you mean --instances" in r.stderr, r.stderr
    short = unique("short")  # short options after the program name are the program's (`apm run sh -c ...`)
    apm("run", "sleep", "300", "-x", "--name", short, "--no-wait", "--enabled", "false")
    assert config_of(apm, short)["params"] == ["300", "-x"]
    apm("rm", short)
    r = apm("run", "-x", "sleep", check=False)
    assert r.returncode == 2 and "unknown option -x" in r.stderr
    r = apm("run", "sleep", "300", "--instances", "abc", check=False)
    assert r.returncode == 2 and "--instances abc: expected a whole number" in r.stderr, r.stderr
    r = apm("run", "sleep", "300", "--kill-timeout", "soon", check=False)
    assert r.returncode == 2 and "--kill-timeout" in r.stderr
    r = apm("run", "sleep", "300", "--name", "a", "--name", "b", check=False)
    assert r.returncode == 2 and "given 2 times" in r.stderr
    r = apm("run", "sleep", "300", "--env", "not a pair", check=False)
    assert r.returncode == 2 and "KEY=value" in r.stderr
    r = apm("run", "sleep", "300", "--name", check=False)
    assert r.returncode == 2 and "needs a value" in r.stderr
    r = apm("run", "sleep", "300", "--on-crash", "x", check=False)
    assert r.returncode == 2 and "config file" in r.stderr
    r = apm("run", check=False)
    assert r.returncode == 2 and "needs a program" in r.stderr
    r = apm("update", "whatever", "--bogus", "1", check=False)
    assert r.returncode == 2 and "unknown option --bogus" in r.stderr
    r = apm("update", "whatever", "--instances", "0", check=False)
    assert r.returncode == 2 and "--instances" in r.stderr
    assert "Traceback" not in r.stderr
    assert {w["name"] for w in apm.json("list")["workers"]} == before, "nothing was created"


def test_name_forms_and_default_name(apm: Apm) -> None:
    a = unique("eq")
    apm("run", "sleep", "300", f"--name={a}", "--no-wait", "--enabled", "false")
    assert config_of(apm, a)["name"] == a
    apm("rm", a)
    # Named after the executable unless --name is given; path defaults to the caller's directory.
    r = apm("run", "/bin/sleep", "300", "--no-wait", "--enabled", "false", "--json", cwd="/tmp")
    assert '"name": "sleep"' in r.stdout
    assert config_of(apm, "sleep")["path"] == "/tmp"
    apm("rm", "sleep")

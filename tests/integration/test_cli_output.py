"""What the built `dist/apm` prints: colour only on a terminal (NO_COLOR, --color/--no-color,
APM_COLOR), `--json` everywhere it is documented, errors as `apm: ...` + hint, and a CLI that
never imports the daemon's machinery.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from typing import Dict, Optional, Tuple

import pytest

from tests.integration.conftest import APM_BIN, Apm

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux only")

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Never imported by a CLI command (docs/development.md, docs/cli.md "Startup cost").
FORBIDDEN = ("psutil", "argon2", "alter.daemon", "alter.supervise", "alter.linux", "alter.logs", "alter.web",
             "alter.proxy", "alter.install")  # fmt: skip


def on_tty(apm: Apm, *args: str, env: Optional[Dict[str, str]] = None, drop: Tuple[str, ...] = ()) -> Tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; returns (exit code, output)."""
    run_env = dict(apm.env)
    run_env.update(env or {})
    for key in drop:
        run_env.pop(key, None)
    master, slave = pty.openpty()
    proc = subprocess.Popen(apm.cmd(*args), stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=run_env)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return proc.returncode, out.decode("utf-8", "replace")


def test_colour_only_on_a_terminal_and_no_color_respected(apm: Apm) -> None:
    apm("run", "sleep", "300", "--name", "web", "--startup-grace", "0")
    apm("run", "sleep", "300", "--name", "off", "--startup-grace", "0")
    apm("stop", "off")
    wide = {"COLUMNS": "200"}

    code, out = on_tty(apm, "list", env=wide, drop=("NO_COLOR",))
    assert code == 0
    assert "\x1b[32mrunning\x1b[0m" in out, f"running is green on a terminal: {out!r}"
    assert "\x1b[90mstopped" in out, "stopped is gray"
    assert ANSI.sub("", out).split()[:9] == ["NAME", "NAMESPACE", "STATUS", "INST", "PID", "CPU", "MEM", "UPTIME",
                                             "RESTARTS"]  # fmt: skip

    for env, drop, extra in (
        ({"NO_COLOR": ""}, (), ()),  # NO_COLOR with any value, even empty
        ({"NO_COLOR": "1"}, (), ()),
        ({"TERM": "dumb"}, ("NO_COLOR",), ()),
        ({}, ("NO_COLOR",), ("--no-color",)),
        ({"APM_COLOR": "0"}, ("NO_COLOR",), ()),
    ):
        code, out = on_tty(apm, "list", *extra, env={**wide, **env}, drop=drop)
        assert code == 0 and "running" in out
        assert "\x1b[" not in out, f"colour with {env} {extra}: {out!r}"

    # Piped: no colour unless forced.
    r = apm("list", env={"NO_COLOR": ""})
    assert "\x1b[" not in r.stdout
    env = dict(apm.env)
    env.pop("NO_COLOR")
    plain = subprocess.run(apm.cmd("list"), env=env, capture_output=True, text=True, timeout=30)
    assert "\x1b[" not in plain.stdout, "no colour when stdout is a pipe"
    forced = subprocess.run(apm.cmd("list", "--color"), env=env, capture_output=True, text=True, timeout=30)
    assert "\x1b[32mrunning" in forced.stdout
    forced = subprocess.run(apm.cmd("list"), env={**env, "APM_COLOR": "1"}, capture_output=True, text=True, timeout=30)
    assert "\x1b[32mrunning" in forced.stdout

    # Errors: red `error:` on a terminal, plain when piped; the exit code is the error's.
    code, out = on_tty(apm, "stop", "nope", env=wide, drop=("NO_COLOR",))
    assert code == 3 and "apm: \x1b[" in out and "error:" in out
    r = apm("stop", "nope", check=False)
    assert r.returncode == 3 and r.stderr.startswith("apm: no worker named 'nope'") and "\x1b[" not in r.stderr


def test_a_terminal_reporting_zero_columns_still_gets_every_column(apm: Apm) -> None:
    apm("run", "sleep", "300", "--name", "web", "--startup-grace", "0")
    # pty.openpty() gives a 0x0 terminal, like a serial console: the width is unknown, not zero.
    code, out = on_tty(apm, "list", env={"NO_COLOR": "1"}, drop=("COLUMNS",))
    assert code == 0
    assert out.split()[:9] == ["NAME", "NAMESPACE", "STATUS", "INST", "PID", "CPU", "MEM", "UPTIME", "RESTARTS"], out


def test_every_read_command_takes_json(apm: Apm) -> None:
    version = apm.json("version")
    assert version["daemon"] is None and version["socket"] == "@" + apm.socket, "version never starts a daemon"
    assert set(version["cli"]) == {"version", "python"}
    assert apm.daemon_pid() is None
    apm("run", "sleep", "300", "--name", "web", "--instances", "2", "--startup-grace", "0")
    version = apm.json("--version")
    assert version["daemon"]["pid"] == apm.daemon_pid() and version["daemon"]["version"] == version["cli"]["version"]
    listing = apm.json("list")
    assert set(listing) == {"workers"} and listing["workers"][0]["name"] == "web"
    info = apm.json("info", "web")
    assert info["name"] == "web" and "options" in info and len(info["instances"]) == 2
    env = apm.json("env", "web#2")
    assert set(env) == {"env"} and env["env"]["APM_INDEX"] == "1"
    waited = apm.json("wait", "web")
    assert waited["status"] == "running"
    sent = apm.json("SIGCONT", "web")
    assert {s["instance"] for s in sent["sent"]} == {1, 2}
    # --json is recognised anywhere before `--`, and progress then goes to stderr.
    r = apm("--json", "restart", "web")
    assert json.loads(r.stdout)["status"] == "running" and "Starting child" in r.stderr
    # Text mode never prints JSON.
    assert not apm("list").stdout.lstrip().startswith("{")


def test_cli_import_hygiene_on_the_built_file(apm: Apm) -> None:
    apm("run", "sleep", "300", "--name", "web", "--startup-grace", "0")
    for args in (("list",), ("info", "web"), ("stop", "web"), ("--version",)):
        proc = subprocess.run(
            [apm.python, "-X", "importtime", APM_BIN, *args], env=apm.env, capture_output=True, text=True, timeout=30
        )
        assert proc.returncode == 0, proc.stderr
        modules = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "import time:" in line]
        assert "alter.cli.main" in modules, "the -X importtime report is missing: wrong interpreter?"
        bad = [m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
        assert not bad, f"`apm {' '.join(args)}` imported {bad}"

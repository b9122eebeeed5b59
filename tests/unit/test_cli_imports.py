"""The CLI starts fast: no daemon/supervise/linux/psutil/argon2 imports, small import time."""
# ruff: noqa: F811  (pytest fixtures imported from test_cli_fakedaemon are used as arguments)

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.unit.test_cli_fakedaemon import FakeDaemon, daemon, sample_workers  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FORBIDDEN = (
    "psutil",
    "argon2",
    "alter.daemon",
    "alter.supervise",
    "alter.linux",
    "alter.logs",
    "alter.web",
    "alter.proxy",
    "alter.install",
)

PROBE = """
import json, sys
sys.argv = ['apm'] + {argv!r}
from alter.cli.main import main
rc = main(sys.argv[1:])
sys.stdout.flush()
sys.stderr.write('\\nMODULES ' + json.dumps({{'rc': rc, 'modules': sorted(sys.modules)}}) + '\\n')
"""


def _env(socket_name: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APM_")}
    env.update({"APM_SOCKET": socket_name, "PYTHONPATH": ROOT, "NO_COLOR": "1"})
    return env


def _probe(argv: list, socket_name: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)],
        capture_output=True,
        text=True,
        env=_env(socket_name),
        cwd=ROOT,
        timeout=60,
    )
    line = [x for x in proc.stderr.splitlines() if x.startswith("MODULES ")]
    assert line, proc.stderr
    data = json.loads(line[-1][len("MODULES ") :])
    data["stdout"] = proc.stdout
    return data


def _forbidden(modules: list) -> list:
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]


@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        ["info", "api"],
        ["stop", "api"],
        ["--version"],
        ["help", "run"],
        ["run", "node", "x.js", "--instances", "2"],
    ],
)
def test_cli_commands_import_nothing_heavy(daemon: FakeDaemon, argv: list) -> None:
    daemon.reply("list", {"workers": sample_workers()})
    daemon.reply("info", sample_workers()[0])
    daemon.reply("stop", sample_workers()[3])
    daemon.reply("run", sample_workers()[0])
    data = _probe(argv, daemon.name)
    assert data["rc"] == 0, data["stdout"]
    assert _forbidden(data["modules"]) == []
    if argv == ["list"]:
        assert "api" in data["stdout"]
        assert "alter.config.options" not in data["modules"]  # only run/update/info need the option table


def test_plain_import_stays_light() -> None:
    code = (
        "import sys, json; import alter.cli.main; print(json.dumps(sorted(sys.modules)));"
        "import alter.control.client; print(json.dumps(sorted(sys.modules)))"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=_env("unused"), cwd=ROOT, timeout=60
    )
    after_main, after_client = (json.loads(line) for line in proc.stdout.splitlines())
    lazy = (
        "argparse",
        "subprocess",
        "difflib",
        "shutil",
        "shlex",
        "textwrap",
        "signal",
        "alter.config.options",
        "alter.control.client",
        "alter.cli.info",
        "alter.cli.help",
    )
    assert [m for m in lazy if m in after_main] == []
    # What every command pays (main + client): no typing, dataclasses, inspect, hashlib.
    heavy = ("typing", "dataclasses", "inspect", "hashlib", "subprocess", "argparse")
    assert [m for m in heavy if m in after_client] == []
    assert _forbidden(after_client) == []


def _cumulative_us(output: str, module: str) -> int:
    for line in output.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)$", line)
        if m and m.group(3) == module:
            return int(m.group(1))
    raise AssertionError(f"{module} not in -X importtime output")


def test_import_time_is_small(tmp_path) -> None:
    """`python3 -X importtime -c 'import alter.cli.main'`: best of 5, bytecode cached."""
    env = _env("unused")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pyc")
    cmd = [sys.executable, "-X", "importtime", "-c", "import alter.cli.main"]
    subprocess.run(cmd, capture_output=True, env=env, cwd=ROOT, timeout=60)  # warm the bytecode cache
    best = min(
        _cumulative_us(
            subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60).stderr, "alter.cli.main"
        )
        for _ in range(5)
    )
    print(f"alter.cli.main cumulative import time: {best / 1000:.1f} ms")
    assert best < 30_000, f"importing alter.cli.main took {best / 1000:.1f} ms"

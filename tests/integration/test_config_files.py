"""Ecosystem JSON, `apm convert` (PM2 .js and .json), and saveconf round trips through dist/apm."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from tests.integration.conftest import Apm
from tests.integration.test_config_lifecycle import running, sleeper, workers, write

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux only")


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def flat(text: str) -> str:
    """Whitespace-insensitive view of apm.conf text (the printer aligns values per block)."""
    return " ".join(text.split())


ECOSYSTEM = {
    "apps": [
        {
            "name": "web-server",
            "command": "sleep",
            "args": ["1001"],
            "namespace": "production",
            "instances": 2,
            "env": {"PORT": "3000", "NODE_ENV": "production"},
            "autorestart": True,
        },
        {"name": "worker", "command": "sleep", "args": ["1002"], "autorestart": False},
    ]
}


def test_apm_load_takes_ecosystem_json(apm: Apm) -> None:
    path = os.path.join(apm.home, "ecosystem.json")
    write(path, json.dumps(ECOSYSTEM, indent=2))
    result = apm.json("load", path)
    assert result["created"] == ["web-server", "worker"]
    found = running(apm, "web-server", "worker")
    assert len(found["web-server"]) == 2
    web = workers(apm)["web-server"]
    assert web["namespace"] == "production"
    assert web["config"]["restart"] is True and web["config"]["restart_err"] is True
    assert workers(apm)["worker"]["config"].get("restart") is False
    assert apm.json("env", "web-server")["env"]["PORT"] == "3000"
    assert {k: web["origin"].get(k) for k in ("kind", "file", "line", "root")} == {
        "kind": "file",
        "file": path,
        "line": 3,
        "root": path,
    }
    # Same file again with a change: reload diffs JSON like apm.conf.
    ECOSYSTEM_2 = json.loads(json.dumps(ECOSYSTEM))
    ECOSYSTEM_2["apps"][1]["args"] = ["2002"]
    write(path, json.dumps(ECOSYSTEM_2))
    result = apm.json("reload", path)
    assert result["changed"] == ["worker"] and result["unchanged"] == ["web-server"]
    assert running(apm, "web-server")["web-server"] == found["web-server"]
    # A leading `{` is enough, whatever the name.
    odd = write(os.path.join(apm.home, "apps.txt"), json.dumps({"apps": [{"name": "odd", "command": "sleep"}]}))
    assert apm.json("load", odd)["created"] == ["odd"]


@pytest.mark.skipif(not shutil.which("node"), reason="needs node")
def test_convert_pm2_js_and_json_to_stdout_and_to_a_file(apm: Apm) -> None:
    js = write(
        os.path.join(apm.home, "ecosystem.config.js"),
        "module.exports = { apps: [{ name: 'api', script: 'server.js', instances: 2, env: { PORT: 3000 },"
        " max_memory_restart: '300M', wait_ready: true }] };\n",
    )
    r = apm("convert", js)
    out = flat(r.stdout)
    assert "name api;" in out and "exec node;" in out and "params server.js;" in out and "instances 2;" in out
    assert "# WARN: wait_ready" in out and "env PORT=3000;" in out
    assert apm.daemon_pid() is None, "convert runs in the CLI"
    source = write(os.path.join(apm.home, "eco.json"), json.dumps(ECOSYSTEM))
    out = os.path.join(apm.home, "out.conf")
    r = apm("convert", source, out)
    assert r.stdout == "" and f"wrote {out}" in r.stderr
    text = flat(read(out))
    assert "name web-server;" in text and "namespace production;" in text
    assert not [f for f in os.listdir(apm.home) if f.endswith(".tmp")]
    r = apm("convert", source, out, check=False)
    assert r.returncode == 4 and "--force" in r.stderr
    apm("convert", js, out, "--force")
    assert "name api;" in flat(read(out))
    check = apm("check", out)  # what convert writes is a valid apm.conf
    assert "OK, 1 worker" in check.stdout


def test_saveconf_round_trip_gives_identical_workers(apm: Apm) -> None:
    conf = os.path.join(apm.home, "apps.conf")
    text = (
        "# my services\n\n"
        "# the api\n"
        + sleeper("api", 1001, "    instances 2;  # two is enough\n    env A=1 B=2;\n")
        + "\n# background\n"
        + sleeper("jobs", 1002, "    restart_err true;\n")
    )
    write(conf, text)
    apm("load", conf)
    running(apm, "api", "jobs")
    apm("update", "api", "--instances", "3", "--no-wait")
    r = apm("saveconf")
    assert f"saved {conf} (api, jobs)" in r.stdout
    saved = read(conf)
    for comment in ("# my services", "# the api", "# two is enough", "# background"):
        assert comment in saved
    assert "instances 3;" in flat(saved)
    before = {n: w["config"] for n, w in workers(apm).items()}
    apm("unload", conf)
    assert workers(apm) == {}
    apm("load", conf)
    after = {n: w["config"] for n, w in workers(apm).items()}
    assert after == before, "saveconf -> unload -> load gives the same workers"


def test_saveconf_name_file_gives_a_run_worker_its_file(apm: Apm) -> None:
    apm("run", "sleep", "1003", "--name", "adhoc", "--no-wait", cwd=apm.home)
    r = apm("saveconf", check=False)  # not a terminal: no prompt, an error with a hint
    assert r.returncode == 2 and "1 worker without a config file: adhoc" in r.stderr
    assert "apm saveconf <name> <file>" in r.stderr
    target = os.path.join(apm.home, "conf.d", "adhoc.conf")
    os.makedirs(os.path.dirname(target))
    r = apm("saveconf", "adhoc", target)
    assert f"saved adhoc to {target}" in r.stdout
    origin = apm.json("info", "adhoc")["origin"]
    assert origin["kind"] == "file" and origin["file"] == target
    assert "name adhoc;" in flat(read(target)) and f"path {apm.home};" in flat(read(target))
    pid = running(apm, "adhoc")["adhoc"]
    result = apm.json("reload", "adhoc")  # it reloads from its new file now
    assert result["unchanged"] == ["adhoc"] and running(apm, "adhoc")["adhoc"] == pid
    assert apm("saveconf").returncode == 0
    broken = write(os.path.join(apm.home, "mixed.conf"), "daemon { auto_reload true; }\n")
    r = apm("saveconf", "adhoc", broken, check=False)
    assert r.returncode == 4 and "holds more than worker blocks" in r.stderr

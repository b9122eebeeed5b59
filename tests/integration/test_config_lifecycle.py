"""Config lifecycle through dist/apm: load, reload (diff: same pids for unchanged), unload, --force,
reload <worker>, broken reloads, check, includes (globs, cycles)."""

from __future__ import annotations

import json
import os
import sys
from typing import Dict, List, Optional

import pytest

from tests.helpers import wait_for
from tests.integration.conftest import Apm, pid_alive, wait_gone

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux only")


# --------------------------------------------------------------------------- helpers (imported by test_config_*)


def write(path: str, text: str) -> str:
    with open(path, "w") as f:
        f.write(text)
    return path


def workers(apm: Apm) -> Dict[str, dict]:
    return {w["name"]: w for w in apm.json("list")["workers"]}


def pids(apm: Apm, name: str) -> List[Optional[int]]:
    return [i["pid"] for i in workers(apm)[name]["instances"]]


def running(apm: Apm, *names: str) -> Dict[str, List[int]]:
    """Wait until every named worker runs; their pids."""

    def check() -> Optional[Dict[str, List[int]]]:
        found = workers(apm)
        if all(n in found and found[n]["status"] == "running" for n in names):
            return {n: [i["pid"] for i in found[n]["instances"]] for n in names}
        return None

    return wait_for(check, timeout=10, what=f"{names} running")


def where(path: str, text: str, line: int, word: str) -> str:
    """`path:line:col` of `word` on 1-based `line` of `text` (what error messages point at)."""
    return f"{path}:{line}:{text.splitlines()[line - 1].index(word) + 1}"


def sleeper(name: str, seconds: int, extra: str = "") -> str:
    return f"worker {name} {{\n    exec sleep;\n    params {seconds};\n    startup_grace 0;\n{extra}}}\n"


# --------------------------------------------------------------------------- tests


def test_load_reload_unload_diff_keeps_unchanged_pids(apm: Apm) -> None:
    conf = write(
        os.path.join(apm.home, "app.conf"),
        sleeper("alpha", 1001) + sleeper("beta", 1002, "    instances 2;\n") + sleeper("gamma", 1003),
    )
    r = apm("load", conf)
    assert "created    alpha, beta, gamma" in r.stdout, r.stdout
    before = running(apm, "alpha", "beta", "gamma")
    assert len(before["beta"]) == 2
    info = apm.json("info", "alpha")
    assert info["origin"]["kind"] == "file" and info["origin"]["file"] == conf and info["origin"]["line"] == 1
    assert info["config"]["path"] == apm.home  # unset path: the file's folder

    again = apm.json("load", conf)  # load skips what exists
    assert again["created"] == [] and sorted(again["skipped"]) == ["alpha", "beta", "gamma"]

    write(conf, sleeper("alpha", 2001) + sleeper("beta", 1002, "    instances 2;\n") + sleeper("delta", 1004))
    result = apm.json("reload", conf)
    assert result["created"] == ["delta"] and result["changed"] == ["alpha"]
    assert result["removed"] == ["gamma"] and result["unchanged"] == ["beta"]
    assert result["changed_keys"] == {"alpha": ["params"]}
    after = running(apm, "alpha", "beta", "delta")
    assert after["beta"] == before["beta"], "unchanged workers keep their pids"
    assert after["alpha"] != before["alpha"]
    assert "gamma" not in workers(apm) and not pid_alive(before["gamma"][0])

    forced = apm("reload", conf, "--force")
    assert "unchanged  alpha, beta, delta" in forced.stdout
    wait_for(lambda: running(apm, "beta")["beta"] != after["beta"], what="beta restarted by --force")

    current = running(apm, "alpha", "delta")
    write(conf, sleeper("alpha", 3001) + sleeper("beta", 1002, "    instances 2;\n") + sleeper("delta", 3004))
    one = apm.json("reload", "alpha")  # a worker name: only that worker, from its file
    assert one["file"] == conf and one["changed"] == ["alpha"] and one["created"] == one["removed"] == []
    assert running(apm, "delta")["delta"] == current["delta"]
    assert apm.json("info", "delta")["config"]["params"] == ["1004"]

    gone = apm.json("unload", conf)
    assert sorted(gone["removed"]) == ["alpha", "beta", "delta"]
    assert workers(apm) == {}
    for pid_list in running_pids_of(after):
        assert wait_gone(pid_list, 5)


def running_pids_of(table: Dict[str, List[int]]) -> List[int]:
    return [p for ps in table.values() for p in ps if p]


def test_broken_reload_changes_nothing_and_lists_every_error(apm: Apm) -> None:
    conf = write(os.path.join(apm.home, "app.conf"), sleeper("alpha", 1001) + sleeper("beta", 1002))
    apm("load", conf)
    before = running(apm, "alpha", "beta")
    broken = (
        "worker alpha { exec sleep; params 5; instances lots; }\n"
        "worker beta { params 1; }\n"
        "worker gamma { exec sleep; restart perhaps; }\n"
    )
    write(conf, broken)
    r = apm("reload", conf, check=False)
    assert r.returncode == 2, r
    assert "3 errors in config" in r.stderr
    for spot in (where(conf, broken, 1, "lots"), f"{conf}:2:1", where(conf, broken, 3, "perhaps")):
        assert spot + ":" in r.stderr, (spot, r.stderr)
    assert running(apm, "alpha", "beta") == before
    assert "gamma" not in workers(apm)


def test_check_lists_all_errors_then_the_plan_and_never_starts_a_daemon(apm: Apm) -> None:
    conf = write(os.path.join(apm.home, "app.conf"), sleeper("alpha", 1001) + sleeper("beta", 1002))
    r = apm("check", conf)
    assert "would create alpha" in r.stdout and "no daemon is running" in r.stdout
    assert apm.daemon_pid() is None, "check never starts a daemon"
    apm("load", conf)
    running(apm, "alpha", "beta")
    write(conf, sleeper("alpha", 999) + sleeper("gamma", 1003, "    colour blue;\n"))
    r = apm("check", conf)
    assert "would create gamma" in r.stdout
    assert "would change alpha (params)" in r.stdout
    assert "would remove beta" in r.stdout
    assert "unknown worker option 'colour' ignored" in r.stdout
    data = apm.json("check", conf)
    assert {"name": "beta", "action": "remove"} in data["workers"] and data["ok"] is True
    broken = "worker a { exec sleep; instances x; }\nworker b { params 1; }\nworker c { exec sleep; bogus 1; }\n"
    write(conf, broken)
    r = apm("check", conf, check=False)
    assert r.returncode == 2
    assert f"error: {where(conf, broken, 1, 'x;')}:" in r.stdout and f"error: {conf}:2:1:" in r.stdout
    assert "unknown worker option 'bogus' ignored" in r.stdout  # a warning, never an error
    assert "2 errors" in r.stdout
    assert sorted(workers(apm)) == ["alpha", "beta"], "check applies nothing"


def test_include_globs_and_cycles_through_the_daemon(apm: Apm) -> None:
    root = os.path.join(apm.home, "site")
    drop = os.path.join(root, "conf.d")
    os.makedirs(drop)
    main = write(os.path.join(root, "main.conf"), "include conf.d/*.conf;\n" + sleeper("main", 1000))
    write(os.path.join(drop, "10-a.conf"), sleeper("a", 1001))
    write(os.path.join(drop, "20-b.conf"), sleeper("b", 1002))
    write(os.path.join(drop, "notes.txt"), "not a config")
    assert apm.json("load", main)["created"] == ["a", "b", "main"]
    first = running(apm, "a", "b", "main")
    assert apm.json("info", "b")["origin"]["file"] == os.path.join(drop, "20-b.conf")
    assert apm.json("info", "b")["origin"]["root"] == main
    os.unlink(os.path.join(drop, "10-a.conf"))
    write(os.path.join(drop, "30-c.conf"), sleeper("c", 1003))
    result = apm.json("reload", main)
    assert result["created"] == ["c"] and result["removed"] == ["a"] and sorted(result["unchanged"]) == ["b", "main"]
    assert running(apm, "b")["b"] == first["b"]
    # Unloading one drop-in removes just its workers.
    assert apm.json("unload", os.path.join(drop, "30-c.conf"))["removed"] == ["c"]

    loop_a = write(os.path.join(apm.home, "loop-a.conf"), "include loop-b.conf;\n" + sleeper("la", 1))
    write(os.path.join(apm.home, "loop-b.conf"), "include loop-a.conf;\n")
    r = apm("load", loop_a, check=False)
    assert r.returncode == 2 and "circular include: loop-a.conf -> loop-b.conf -> loop-a.conf" in r.stderr
    assert "la" not in workers(apm)


def test_reload_of_a_worker_without_a_file_explains(apm: Apm) -> None:
    apm("run", "sleep", "100", "--name", "adhoc", "--no-wait")
    r = apm("reload", "adhoc", check=False)
    assert r.returncode == 2 and "did not come from a config file" in r.stderr
    assert "apm saveconf adhoc <file>" in r.stderr
    r = apm("reload", os.path.join(apm.home, "missing.conf"), check=False)
    assert r.returncode == 2 and "no such file" in r.stderr
    data = json.loads(apm("unload", os.path.join(apm.home, "never.conf"), "--json").stdout)
    assert data["removed"] == []

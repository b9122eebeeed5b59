"""saveconf against the FakeOps harness and real files: round trips, comments, the rewrite rule, origins."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List

import pytest

from alter.config import options
from alter.config.loader import load_file
from alter.daemon.config_access import DAEMON, read_config
from alter.daemon.reloader import Reloader
from alter.daemon.saveconf import save_all, save_one
from alter.errors import Conflict, UsageError
from alter.supervise.testing import Harness

TEXT = """# apps of this host
# (edited by hand)

# the public API
worker api {
    exec       sleep;
    params     100;
    # four is plenty
    instances  4;  # see capacity.md
}

# --- background ---

worker jobs {
    exec  sleep;  # placeholder
    env   MODE=batch;
    # nothing after this
}
# end of file
"""


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


@pytest.fixture
def rl(h: Harness, tmp_path) -> Reloader:
    h.ops.dirs.add(str(tmp_path))
    return Reloader(h.sup, options.effective({}, options.DAEMON_OPTIONS), str(tmp_path / "boot.conf"), h.bus)


def load(h: Harness, rl: Reloader, path: str) -> Dict[str, Any]:
    out: List[Dict[str, Any]] = []
    rl.apply(rl.plan(read_config(path), path), on_done=out.append)
    h.advance(3)
    return out[0]


def configs(path: str) -> Dict[str, Dict[str, Any]]:
    result = load_file(path)
    assert not result.errors, result.errors
    return result.configs()


def test_round_trip_keeps_configs_and_every_comment(h: Harness, rl: Reloader, tmp_path) -> None:
    path = tmp_path / "apps.conf"
    path.write_text(TEXT)
    load(h, rl, str(path))
    before = configs(str(path))
    result = save_all(rl, DAEMON)
    assert result["saved"] == [{"file": str(path), "workers": ["api", "jobs"]}]
    assert result["refused"] == [] and result["unsaved"] == []
    text = path.read_text()
    assert configs(str(path)) == before
    for comment in (
        "apps of this host",
        "(edited by hand)",
        "the public API",
        "four is plenty",
        "see capacity.md",
        "--- background ---",
        "placeholder",
        "nothing after this",
        "end of file",
    ):
        assert comment in text, comment
    assert text.index("the public API") < text.index("name       api")
    assert "path" not in text  # implicit: loading fills in the same folder
    assert save_all(rl, DAEMON)["saved"][0]["file"] == str(path)
    assert path.read_text() == text  # stable: saving twice writes the same bytes


def test_saved_changes_load_back_identical(h: Harness, rl: Reloader, tmp_path) -> None:
    path = tmp_path / "apps.conf"
    path.write_text(TEXT)
    load(h, rl, str(path))
    h.sup.update("api", {"instances": 2, "env": ["A=1", "B=two words"]}, restart=False)
    save_all(rl, DAEMON)
    saved = configs(str(path))
    assert saved["api"]["instances"] == 2 and saved["api"]["env"] == ["A=1", "B=two words"]
    running = {name: dict(w.config) for name, w in h.sup.workers.items()}
    for config in running.values():
        config.pop("path")  # implicit
    assert saved == running
    summary = load(h, rl, str(path))  # reloading what was saved changes nothing
    assert summary["changed"] == [] and sorted(summary["unchanged"]) == ["api", "jobs"]


def test_files_with_more_than_workers_are_refused_untouched(h: Harness, rl: Reloader, tmp_path) -> None:
    drop = tmp_path / "conf.d"
    drop.mkdir()
    (drop / "a.conf").write_text("worker a { exec sleep; }\n")
    main = tmp_path / "main.conf"
    original = "daemon { log_max_files 3; }\ninclude conf.d/*.conf;\nworker m { exec sleep; }\n"
    main.write_text(original)
    load(h, rl, str(main))
    result = save_all(rl, DAEMON)
    assert result["saved"] == [{"file": str(drop / "a.conf"), "workers": ["a"]}]
    assert [r["file"] for r in result["refused"]] == [str(main)]
    assert "holds more than worker blocks" in result["refused"][0]["reason"]
    assert main.read_text() == original


def test_unknown_blocks_and_broken_files_are_not_overwritten(h: Harness, rl: Reloader, tmp_path) -> None:
    path = tmp_path / "apps.conf"
    path.write_text("worker a { exec sleep; }\n")
    load(h, rl, str(path))
    path.write_text("worker a { exec sleep; }\nworker stranger { exec sleep; }\n")
    result = save_all(rl, DAEMON)
    assert "also defines stranger" in result["refused"][0]["reason"]
    path.write_text("worker a { exec sleep;\n")
    assert "syntax errors" in save_all(rl, DAEMON)["refused"][0]["reason"]
    assert path.read_text() == "worker a { exec sleep;\n"


def test_save_one_gives_a_cli_worker_a_file(h: Harness, rl: Reloader, tmp_path) -> None:
    h.sup.add({"name": "adhoc", "exec": "sleep", "params": ["5"], "path": "/srv/app"}, {"kind": "cli", "file": None})
    h.settle()
    assert save_all(rl, DAEMON)["unsaved"] == [{"name": "adhoc", "origin": "cli", "path": "/srv/app"}]
    target = tmp_path / "adhoc.conf"
    result = save_one(rl, "adhoc", str(target), DAEMON)
    assert result["saved"] == [{"file": str(target), "workers": ["adhoc"]}]
    origin = h.sup.workers["adhoc"].origin
    assert origin["kind"] == "file" and origin["file"] == str(target) and origin["root"] == str(target)
    assert configs(str(target))["adhoc"]["path"] == "/srv/app"  # not the file's folder: written out
    pid = h.pids("adhoc")
    summary = load(h, rl, str(target))
    assert summary["unchanged"] == ["adhoc"] and h.pids("adhoc") == pid
    other = h.sup.add({"name": "second", "exec": "sleep"}, {"kind": "cli", "file": None})
    save_one(rl, other["name"], str(target), DAEMON)
    assert sorted(configs(str(target))) == ["adhoc", "second"]
    with pytest.raises(UsageError):
        save_one(rl, "adhoc", str(tmp_path / "x.json"), DAEMON)


def test_save_one_into_a_foreign_file_is_refused(h: Harness, rl: Reloader, tmp_path) -> None:
    h.sup.add({"name": "adhoc", "exec": "sleep"}, {"kind": "cli", "file": None})
    target = tmp_path / "theirs.conf"
    target.write_text("worker theirs { exec sleep; }\n")
    with pytest.raises(Conflict):
        save_one(rl, "adhoc", str(target), DAEMON)
    assert target.read_text() == "worker theirs { exec sleep; }\n"
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]

"""GUI settings: one table, strict validation, all-or-nothing updates, 0600 persistence."""

from __future__ import annotations

import json
import os
import stat

import pytest

from alter.errors import UsageError
from alter.web.settings import SETTINGS, Settings, defaults, schema


def test_defaults_and_schema_cover_every_setting():
    d = defaults()
    assert d["ui"]["theme"] == "system" and d["security"]["lock_timeout"] == 900
    assert len(schema()["settings"]) == len(SETTINGS)
    assert {(s["section"], s["key"]) for s in schema()["settings"]} == {(s.section, s.key) for s in SETTINGS}


@pytest.mark.parametrize(
    "change",
    [
        {"ui": {"theme": "neon"}},
        {"ui": {"accent": "red"}},
        {"ui": {"font_size": 99}},
        {"ui": {"compact": "yes"}},
        {"ui": {"columns": ["cpu", "cpu"]}},
        {"ui": {"columns": ["nope"]}},
        {"general": {"tail_lines": 10}},
        {"general": {"refresh_interval": True}},
        {"general": {"latency_targets": ["8.8.8.8"]}},
        {"general": {"latency_targets": ["host:99999"]}},
        {"security": {"lock_timeout": -1}},
        {"security": {"lock_timeout": 3601}},
        {"security": {"password": "x"}},
        {"nope": {}},
        {"ui": []},
        [],
    ],
)
def test_bad_values_are_refused(tmp_path, change):
    s = Settings(str(tmp_path / "settings.json"))
    with pytest.raises(UsageError):
        s.update(change)
    assert s.all() == defaults()


def test_update_is_all_or_nothing_and_persists(tmp_path):
    path = str(tmp_path / "settings.json")
    s = Settings(path)
    with pytest.raises(UsageError):
        s.update({"ui": {"theme": "dark", "accent": "blue"}})
    assert s.get("ui", "theme") == "system"
    out = s.update({"ui": {"theme": "dark", "columns": ["pid", "cpu"]}, "security": {"lock_timeout": 0}})
    assert out["ui"]["theme"] == "dark" and out["security"]["lock_timeout"] == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = Settings(path)
    assert again.get("ui", "columns") == ["pid", "cpu"] and again.get("security", "lock_timeout") == 0
    # A stored value that is no longer valid falls back to the default.
    with open(path) as f:
        data = json.load(f)
    data["ui"]["font_size"] = 500
    with open(path, "w") as f:
        json.dump(data, f)
    assert Settings(path).get("ui", "font_size") == 14

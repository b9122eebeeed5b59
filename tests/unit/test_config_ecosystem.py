"""ecosystem.load_json: alter/PM2 JSON apps -> LoadResult."""

from __future__ import annotations

import json

from alter.config.ecosystem import load_json
from tests.unit.config_helpers import fixture


def test_path_and_text_give_the_same_workers():
    path = fixture("alter_ecosystem.json")
    from_path = load_json(path)
    with open(path, encoding="utf-8") as fh:
        from_text = load_json(fh.read(), filename="eco.json")
    assert from_path.configs() == from_text.configs()
    assert from_path.files == [path]
    assert from_text.files == []


def test_bad_json_reports_line_and_col():
    result = load_json('{\n  "apps": [\n    {"name": "a" "command": "x"}\n  ]\n}', filename="eco.json")
    assert [e.where for e in result.errors] == ["eco.json:3:18"]
    assert result.errors[0].message == "eco.json:3:18: invalid JSON: Expecting ',' delimiter"


def test_app_errors_point_at_the_app():
    text = json.dumps(
        {
            "apps": [
                {"name": "ok", "command": "node"},
                {"name": "bad"},
                {"name": "n", "command": "x", "instances": "lots"},
            ]
        },
        indent=2,
    )
    result = load_json(text, filename="eco.json")
    assert list(result.configs()) == ["ok", "n"]
    assert [(e.where, e.message.split(": ", 1)[1]) for e in result.errors] == [
        ("eco.json:7:5", "apps[1] (bad) has no script or command"),
        ("eco.json:10:5", "apps[2] instances lots: expected a whole number, got 'lots'"),
    ]
    assert result.workers[1].origin["line"] == 10


def test_warnings_for_fields_without_equivalent_and_deploy():
    text = json.dumps({"apps": [{"name": "a", "script": "a.js", "vizion": False}], "deploy": {}})
    result = load_json(text, filename="eco.json")
    assert result.errors == []
    assert result.warnings == [
        "eco.json: deploy {} has no apm equivalent (apm does not deploy code; keep your deploy tool or CI)",
        "eco.json:1:11: vizion false has no apm equivalent (apm keeps no version metadata)",
    ]


def test_bare_list_and_duplicates():
    result = load_json('[{"command": "node", "name": "a"}, {"command": "x", "name": "a"}]', filename="e.json")
    assert list(result.configs()) == ["a"]
    assert [e.message for e in result.errors] == ["e.json:1:36: duplicate worker name 'a' (first at e.json:1:2)"]


def test_not_an_ecosystem():
    result = load_json('{"name": "x"}', filename="e.json")
    assert [e.message for e in result.errors] == ["e.json: the ecosystem file has no apps"]
    result = load_json("/nonexistent/eco.json")
    assert result.errors[0].where == "/nonexistent/eco.json"

"""diff.plan: what a reload does."""

from __future__ import annotations

from alter.config.diff import normalized, plan


def test_plan_create_change_remove_unchanged():
    running = {
        "a": {"name": "a", "exec": "x"},
        "b": {"name": "b", "exec": "y", "instances": 2},
        "c": {"name": "c", "exec": "z"},
    }
    new = {
        "a": {"name": "a", "exec": "x", "instances": 1},  # explicit default: unchanged
        "b": {"name": "b", "exec": "y", "instances": 4},
        "d": {"name": "d", "exec": "w"},
    }
    result = plan(running, new)
    assert (result.create, result.change, result.remove, result.unchanged) == (["d"], ["b"], ["c"], ["a"])
    assert result.changed_keys == {"b": ["instances"]}
    assert not result.empty


def test_plan_sub_blocks_and_lists():
    base = {"name": "a", "exec": "x", "server": [":80", ":81"], "vanguard": {"rate_limit": 5.0}}
    assert plan({"a": base}, {"a": dict(base, vanguard={"rate_limit": 5.0, "log": True})}).unchanged == ["a"]
    assert plan({"a": base}, {"a": dict(base, vanguard={"rate_limit": 6.0})}).changed_keys == {"a": ["vanguard"]}
    assert plan({"a": base}, {"a": dict(base, server=[":81", ":80"])}).change == ["a"]  # order matters
    assert plan({"a": base}, {"a": {k: v for k, v in base.items() if k != "vanguard"}}).changed_keys == {
        "a": ["vanguard"]
    }


def test_plan_empty_and_pure():
    running = {"a": {"name": "a", "exec": "x"}}
    snapshot = {"a": dict(running["a"])}
    result = plan(running, running)
    assert result.empty and result.unchanged == ["a"]
    assert running == snapshot
    assert plan({}, {}).empty


def test_normalized_fills_defaults():
    n = normalized(
        {"name": "a", "exec": "x", "dashboard": {"module": [{"type": "led", "id": 1, "x": 0, "y": 0, "w": 1, "h": 1}]}}
    )
    assert n["instances"] == 1 and n["dashboard"]["cols"] == 6 and n["dashboard"]["module"][0]["max"] == 100

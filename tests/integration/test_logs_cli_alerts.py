"""Log alerts, the `events` stream and the Log Volume counts, through dist/apm and a real daemon."""

from __future__ import annotations

import json
import time

from tests.helpers import wait_for
from tests.integration.conftest import Apm
from tests.integration.test_logs_cli_read import COUNTER, Stream, error_type, request, run_worker


def test_alert_fires_event_with_cooldown_and_persists(apm: Apm, tmp_path) -> None:
    r = apm("alerts", "set", "boom", r"BOOM- \d+", "--cooldown", "1500ms")
    assert "boom" in r.stdout and "BOOM-" in r.stdout
    assert apm.json("alerts")["alerts"] == [
        {
            "name": "boom",
            "pattern": r"BOOM- \d+",
            "cooldown_ms": 1500,
            "enabled": True,
            "ignore_case": False,
            "channel": "app",
        }
    ]
    events = Stream(apm, "events", "--kind", "log.alert", "--json")
    try:
        time.sleep(0.5)  # the subscription is in place before the first BOOM
        run_worker(apm, tmp_path, "bomb", COUNTER, "BOOM-", "0.05")
        got = [json.loads(line) for _, line in events.take_timed(1, timeout=10)]
        got += [json.loads(line) for _, line in events.drain(3.2)]
        assert 2 <= len(got) <= 3, got  # every 50 ms a match, but one alert per 1.5 s
        assert all(
            e["kind"] == "log.alert" and e["data"]["worker"] == "bomb" and e["data"]["name"] == "boom" for e in got
        )
        assert all(e["data"]["line"].startswith("BOOM- ") and e["data"]["stream"] == "out" for e in got)
        stamps = [e["data"]["ts"] for e in got]
        assert all(b - a >= 1.45 for a, b in zip(stamps, stamps[1:])), stamps
        # Disabled: silence.
        apm("alerts", "disable", "boom")
        events.drain(0.3)
        assert events.drain(1.8) == []
        code, err = events.interrupt()
        assert code == 0 and err == ""
    finally:
        events.close()
    # Persisted in the daemon state: a restarted daemon has it (still disabled).
    apm("exit", "daemon")
    alerts = apm.json("alerts")["alerts"]
    assert [(a["name"], a["enabled"]) for a in alerts] == [("boom", False)]
    apm("alerts", "enable", "boom")
    assert apm.json("alerts")["alerts"][0]["enabled"] is True
    # The text listing; bad input.
    assert "boom" in apm("alerts", "list").stdout
    r = apm("alerts", "set", "bad", "(", check=False)
    assert r.returncode == 2 and "not a valid regular expression" in r.stderr
    r = apm("alerts", "set", "x", "y", "--cooldown", "soon", check=False)
    assert r.returncode == 2 and "--cooldown soon" in r.stderr
    r = apm("alerts", "frob", check=False)
    assert r.returncode == 2 and "unknown action" in r.stderr
    apm("alerts", "rm", "boom")
    r = apm("alerts", "rm", "boom", check=False)
    assert r.returncode == 3 and "no log alert named 'boom'" in r.stderr
    assert "no log alerts" in apm("alerts").stdout
    assert error_type(apm, "alerts.set", {"alerts": "ERROR"}) == "UsageError"
    assert error_type(apm, "alerts.set", {"alerts": [{"pattern": "("}]}) == "ConfigError"
    assert (
        error_type(apm, "alerts.set", {"alerts": [{"name": "a", "pattern": "x", "cooldown_ms": -1}]}) == "ConfigError"
    )
    assert (
        error_type(apm, "alerts.set", {"alerts": [{"name": "a", "pattern": "x"}, {"name": "a", "pattern": "y"}]})
        == "ConfigError"
    )
    for channel in ("sms", "", 3, None):
        assert error_type(apm, "alerts.set", {"alerts": [{"pattern": "x", "channel": channel}]}) == "ConfigError"
    _, reply = request(apm, "alerts.set", {"alerts": [{"pattern": "x", "channel": "both"}]})
    _, listed = request(apm, "alerts.list")
    assert reply.get("ok", True) and listed["result"]["alerts"][0]["channel"] == "both", (reply, listed)


def test_events_stream_state_changes_and_log_volume(apm: Apm, tmp_path) -> None:
    run_worker(apm, tmp_path, "v", COUNTER, "v", "0.02")
    stream = Stream(apm, "events", "--json")
    try:
        time.sleep(0.5)
        apm("stop", "v")
        seen = []
        deadline = time.monotonic() + 10
        while not any(e["kind"] == "worker.state" and e["data"]["status"] == "stopped" for e in seen):
            assert time.monotonic() < deadline, seen
            seen += [json.loads(line) for line in stream.take(1)]
        kinds = {e["kind"] for e in seen}
        assert {"instance.state", "instance.exit", "worker.state"} <= kinds
        assert all(e["data"]["worker"] == "v" for e in seen if "worker" in e["data"])
    finally:
        stream.close()
    # Recent history without following; text form; --kind filter by prefix.
    recent = [json.loads(x) for x in apm("events", "--no-follow", "--json").stdout.splitlines()]
    assert recent[0]["kind"] == "worker.added" and recent[-1]["kind"] == "worker.state"
    text = apm("events", "--no-follow", "--kind", "instance.").stdout.splitlines()
    assert text and all(" instance." in line and " v#1 " in line for line in text)
    r = apm("events", "--no-follow", "-n", "9999", check=False)
    assert r.returncode == 2
    assert error_type(apm, "events", {"kinds": "log.alert"}) == "UsageError"
    assert error_type(apm, "events", {"follow": False, "n": -1}) == "UsageError"
    # Log Volume: lines per hour per worker, what the GUI charts.
    _, reply = request(apm, "logvolume", {"name": "v", "hours": 2})
    rows = reply["result"]["rows"]
    assert rows and rows[-1]["worker"] == "v" and rows[-1]["hour"] % 3600 == 0
    total = reply["result"]["totals"]["v"]
    assert total["out"] >= 10 and total["apm"] >= 1 and total["err"] == 0
    wait_for(lambda: request(apm, "logvolume", {})[1]["result"]["totals"]["v"]["out"] >= total["out"], timeout=5)
    assert error_type(apm, "logvolume", {"hours": 0}) == "UsageError"
    assert error_type(apm, "logvolume", {"name": "nope"}) == "NotFound"

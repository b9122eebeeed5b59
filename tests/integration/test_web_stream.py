"""The live stream (Server-Sent Events) against a real daemon."""

from __future__ import annotations

import pytest

from tests.integration.web_support import SseReader, start_gui

pytestmark = pytest.mark.timeout(120)


def test_stream_carries_state_changes_stats_and_log_lines(apm):
    gui = start_gui(apm)
    api = gui.login()
    apm("run", "sleep", "300", "--name", "quiet")
    stream = SseReader(api, "/api/v1/stream?logs=chatty&tail=10")
    try:
        assert stream.status == 200 and stream.content_type == "text/event-stream; charset=utf-8"
        hello = stream.wait("hello")
        assert hello["version"] and hello["heartbeat"] > 0
        snap = stream.wait("snapshot")
        assert [w["name"] for w in snap["workers"]] == ["quiet"]

        # A state change arrives as the changed worker's full status.
        apm("stop", "quiet")
        stream.wait("workers", lambda d: any(w["name"] == "quiet" and w["status"] == "stopped" for w in d["workers"]))
        note = stream.wait("notify", lambda d: d["kind"] == "stop" and d["worker"] == "quiet")
        assert note["message"] == "quiet stopped" and note["level"] == "info"

        # A new worker: its status, then its log lines (subscribed by name before it existed).
        apm("run", "sh", "--name", "chatty", "--", "-c", "echo hello-from-chatty; sleep 300")
        stream.wait("workers", lambda d: any(w["name"] == "chatty" for w in d["workers"]))
        log = stream.wait("log", lambda d: any("hello-from-chatty" in x["text"] for x in d["lines"]))
        assert log["worker"] == "chatty"
        line = next(x for x in log["lines"] if "hello-from-chatty" in x["text"])
        assert line["stream"] == "out" and line["index"] == 1 and line["ts"] > 0

        # Stats once a second: the running worker's memory, and the host.
        stats = stream.wait("stats", lambda d: "chatty" in d["workers"] and d["workers"]["chatty"]["memory"])
        assert stats["workers"]["chatty"]["instances"][0]["index"] == 1
        assert stats["host"]["memory"]["total"] > 0

        # Removing a worker is a `removed` delta.
        apm("remove", "quiet")
        stream.wait("removed", lambda d: d["names"] == ["quiet"])
        notes = api.get("/api/v1/notifications").json()["notifications"]
        assert any(n["kind"] == "stop" and n["worker"] == "quiet" for n in notes)
    finally:
        stream.close()


def test_stream_backlog_and_crash_notifications(apm):
    gui = start_gui(apm)
    api = gui.login()
    apm("run", "sh", "--name", "early", "--", "-c", "echo first; echo second; sleep 300")
    api.get("/api/v1/workers/early/logs")
    stream = SseReader(api, "/api/v1/stream?logs=early&tail=50&stats=0")
    try:
        backlog = stream.wait("log", lambda d: d.get("backlog"))
        texts = [x["text"] for x in backlog["lines"]]
        assert "first" in texts and "second" in texts
        apm("run", "sh", "--name", "crasher", "--restart-err", "--no-wait", "--", "-c", "sleep 0.3; exit 3")
        crash = stream.wait("notify", lambda d: d["kind"] == "crash" and d["worker"] == "crasher")
        assert crash["level"] == "error" and "exit code 3" in crash["message"]
        stream.wait("notify", lambda d: d["kind"] == "restart" and d["worker"] == "crasher")
        assert not any(kind == "stats" for kind, _ in stream.events)  # stats=0
    finally:
        stream.close()


def test_stream_ends_on_logout_lock_and_daemon_exit(apm):
    gui = start_gui(apm)
    api = gui.login()
    first = SseReader(api)
    first.wait("snapshot")
    api.post("/api/v1/auth/lock")
    first.wait("locked", timeout=30)  # checked on the next wake-up (stats every second)
    assert first.done.wait(5)
    assert api.get("/api/v1/stream").status == 423  # a locked session cannot open one
    api.post("/api/v1/auth/unlock", {"password": "Correct-Horse-42"})

    second = SseReader(api)
    second.wait("snapshot")
    api.post("/api/v1/auth/logout")
    second.wait("logout")
    assert second.done.wait(5)

    api = gui.login()
    third = SseReader(api)
    third.wait("snapshot")
    apm("exit", "daemon")
    assert third.done.wait(10)  # "Session ended": the page sees the stream close
    assert any(kind == "bye" for kind, _ in third.events)


def test_stream_with_a_bearer_token(apm):
    gui = start_gui(apm)
    gui.login()
    made = apm.json("token", "create", "--name", "monitor")
    client = gui.api()
    client.token = made["token"]
    stream = SseReader(client, "/api/v1/stream?stats=0")
    try:
        stream.wait("snapshot")
        apm.json("token", "revoke", made["id"])
        stream.wait("logout", timeout=10)
    finally:
        stream.close()

"""The live stream (Server-Sent Events) against a real daemon."""

from __future__ import annotations

import json

import pytest

from tests.helpers import wait_for
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


def test_stream_all_workers_tail_is_interleaved_in_time_order(apm):
    gui = start_gui(apm)
    api = gui.login()
    # Two workers writing alternately: a1 b1 a2 b2 a3 b3 (each waits for the other's line file).
    for me in ("a", "b"):
        script = (
            f'cd "$0"; for i in 1 2 3; do '
            f"if [ {me} = b ]; then while [ ! -e a$i ]; do sleep 0.01; done; fi; "
            f"if [ {me} = a ] && [ $i -gt 1 ]; then while [ ! -e b$((i-1)) ]; do sleep 0.01; done; fi; "
            f"echo {me}-line-$i; sleep 0.02; touch {me}$i; done; sleep 300"
        )
        apm("run", "sh", "--name", me, "--", "-c", script, str(apm.home))

    def done():
        tails = [api.get(f"/api/v1/workers/{n}/logs?lines=10").json()["lines"] for n in ("a", "b")]
        return all(any("-line-3" in x["text"] for x in t) for t in tails)

    wait_for(done, 15, what="both workers' three lines")
    stream = SseReader(api, "/api/v1/stream?logs=*&tail=4&stats=0&workers=0&notify=0")
    try:
        stream.wait("hello")
        stream.wait("log", lambda d: d.get("backlog"))
        stream.wait("snapshot")
        backlog = [d for k, d in stream.events if k == "log" and d.get("backlog")]
        lines = [(d["worker"], x["text"]) for d in backlog for x in d["lines"] if "-line-" in x["text"]]
        assert [t for _, t in lines] == ["b-line-1", "a-line-2", "b-line-2", "a-line-3", "b-line-3"][-len(lines) :]
        assert len([x for d in backlog for x in d["lines"]]) <= 4, backlog  # bounded by tail
        stamps = [x["ts"] for d in backlog for x in d["lines"]]
        assert stamps == sorted(stamps)
        assert {w for w, _ in lines} == {"a", "b"} and len(lines) >= 3, backlog
    finally:
        stream.close()


def test_settings_changes_reach_every_stream(apm):
    gui = start_gui(apm)
    api = gui.login()
    other = gui.login()  # a second page, another session
    logs_page = SseReader(other, "/api/v1/stream?workers=0&stats=0&notify=0&logs=*")
    main_page = SseReader(api, "/api/v1/stream")
    try:
        logs_page.wait("hello"), main_page.wait("hello")
        assert api.patch("/api/v1/settings", {"ui": {"theme": "light", "font_size": 16}}).status == 200
        expected = api.get("/api/v1/settings").json()
        for page in (logs_page, main_page):
            got = page.wait("settings", lambda d: d["ui"]["theme"] == "light")
            assert got == expected and got["security"]["password_set"] is True
            assert "password" not in got["security"] and "hash" not in json.dumps(got)
        # A token made with the CLI changes security.tokens: pushed too.
        apm("token", "create", "--name", "ci")
        got = main_page.wait("settings", lambda d: d["security"]["tokens"] == 1)
        assert got["ui"]["theme"] == "light"
        # A refused change pushes nothing.
        assert api.patch("/api/v1/settings", {"ui": {"theme": "neon"}}).status == 400
        assert api.patch("/api/v1/settings", {"general": {"tail_lines": 300}}).status == 200
        got = main_page.wait("settings", lambda d: d["general"]["tail_lines"] == 300)
        assert all(d["ui"]["theme"] != "neon" for k, d in main_page.events if k == "settings")
    finally:
        logs_page.close()
        main_page.close()

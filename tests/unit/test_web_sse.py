"""The live stream hub on a fake engine: coalesced deltas, stats, logs, overflow -> resync, ownership."""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, List

from alter.supervise.testing import Harness
from alter.web import sse
from alter.web.notify import Notifications
from alter.web.sse import StreamClient, StreamHub, Want


class FakeSampler:
    def __init__(self) -> None:
        self.watchers = 0

    def watch(self, delta: int) -> None:
        self.watchers += delta

    def snapshot(self) -> Dict[str, Any]:
        return {"t": 1.0, "workers": {}, "host": {}}

    def removed(self, name: str) -> None:
        pass

    def renamed(self, old: str, new: str) -> None:
        pass


class FakeLog:
    def __init__(self) -> None:
        self.subs: List[Any] = []

    def subscribe(self, cb: Any) -> Any:
        self.subs.append(cb)
        return lambda: self.subs.remove(cb)

    def tail(self, n: int) -> List[Dict[str, Any]]:
        return [{"ts": 1.0, "worker": "w", "index": 1, "stream": "out", "text": "old"}][-n:]


def events(client: StreamClient) -> List[tuple]:
    items, state = client.take(0)
    out = []
    for frame in b"".join(items).decode().split("\n\n"):
        if not frame:
            continue
        kind, data = frame.split("\n", 1)
        out.append((kind[len("event: ") :], json.loads(data[len("data: ") :])))
    return out


def make(want: Want):
    h = Harness()
    sampler = FakeSampler()
    notes: List[Dict[str, Any]] = []
    hub = StreamHub(h.loop, h.sup, h.bus, sampler, None)

    def publish(item: Dict[str, Any]) -> None:
        notes.append(item)
        hub.publish_notification(item)

    hub.notifications = Notifications(publish)
    hub.attach()
    client = StreamClient("owner-1", want)
    hub.add_client(client)
    return h, hub, client, sampler, notes


def test_snapshot_then_coalesced_worker_deltas():
    h, hub, client, sampler, notes = make(Want(logs=()))
    assert [k for k, _ in events(client)] == ["hello", "snapshot"]
    assert sampler.watchers == 1
    h.sup.add({"name": "w", "exec": "sleep", "params": ["100"]})
    h.settle()
    assert [k for k, _ in events(client)] == ["notify"]  # "w is running"; worker deltas wait 100 ms
    h.advance(0.2)
    got = events(client)
    assert [k for k, _ in got] == ["workers"]  # one delta for all the events of those 100 ms
    assert [w["name"] for w in got[0][1]["workers"]] == ["w"]
    h.sup.remove("w")
    h.advance(1)
    got = dict(events(client))
    assert got["removed"] == {"names": ["w"]}
    assert [n["kind"] for n in notes if n["worker"] == "w"][-1] == "stop"
    hub.remove_client(client)
    assert sampler.watchers == 0
    h.close()


def test_stats_and_notifications_are_encoded_once_for_all():
    h, hub, a, _, _ = make(Want())
    b = StreamClient("owner-2", Want(stats=False))
    hub.add_client(b)
    events(a), events(b)
    hub.publish_stats({"t": 1, "workers": {"w": {"cpu": 1.0}}, "host": {}})
    assert [k for k, _ in events(a)] == ["stats"] and events(b) == []
    hub.notifications.on_event("instance.crash", {"worker": "w", "instance": 1, "code": 3, "runtime_ms": 5})
    na, nb = events(a), events(b)
    assert na == nb and na[0][1]["kind"] == "crash" and "exit code 3" in na[0][1]["message"]
    h.close()


def test_log_lines_go_only_to_pages_that_asked():
    h, hub, logs_client, _, _ = make(Want(logs=["w"], tail=5, stats=False))
    other = StreamClient("owner-2", Want(stats=False))
    hub.add_client(other)
    h.sup.add({"name": "w", "exec": "sleep", "params": ["100"]})
    fake = FakeLog()
    h.sup.workers["w"].log = fake
    hub._reconcile_logs()
    assert len(fake.subs) == 1
    events(logs_client), events(other)
    fake.subs[0]([{"ts": 2.0, "worker": "w", "index": 1, "stream": "out", "text": "<b>hi</b>"}])
    fake.subs[0]([{"ts": 2.1, "worker": "w", "index": 1, "stream": "err", "text": "second"}])
    h.advance(0.2)
    got = [(k, d) for k, d in events(logs_client) if k == "log"]
    assert len(got) == 1 and [x["text"] for x in got[0][1]["lines"]] == ["<b>hi</b>", "second"]
    assert [k for k, _ in events(other) if k == "log"] == []
    hub.remove_client(logs_client)
    assert fake.subs == []  # nobody wants w's lines any more
    h.close()


def test_raw_frames_never_contain_angle_brackets():
    frame = sse.frame("log", {"lines": [{"text": "<script>alert(1)</script> & co"}]})
    assert b"<" not in frame and b">" not in frame and b"&" not in frame.split(b"\n")[1][6:].replace(b"\\u0026", b"")
    assert json.loads(frame.split(b"\n")[1][6:])["lines"][0]["text"] == "<script>alert(1)</script> & co"


def test_overflow_means_resync_not_blocking():
    h, hub, client, _, _ = make(Want())
    events(client)
    for _ in range(sse.MAX_QUEUED + 5):
        client.push(b"event: stats\ndata: {}\n\n")  # the loop never blocks on a slow page
    items, state = client.take(0)
    assert state == "overflow" and items == [] and client.dropped >= sse.MAX_QUEUED
    hub.resync(client)
    assert [k for k, _ in events(client)] == ["resync", "snapshot"]
    h.close()


def test_owner_end_closes_only_that_owners_streams():
    h, hub, a, _, _ = make(Want())
    b = StreamClient("owner-2", Want())
    hub.add_client(b)
    hub.end_owner("owner-1")
    assert a.take(0)[1] == "closed" and a.reason == "logout"
    assert b.take(0)[1] == ""
    hub.detach("bye")
    assert b.take(0)[1] == "closed" and b.reason == "bye"
    h.close()


def test_serve_stream_drains_and_stops_on_reason():
    h, hub, client, _, _ = make(Want())
    written: List[bytes] = []

    class Bridge:
        closed = True
        loop = h.loop

        def run(self, fn: Any, *args: Any) -> Any:
            return fn(*args)

    reasons = iter([None, "locked"])
    t = threading.Thread(
        target=sse.serve_stream,
        args=(written.append, client, Bridge(), hub, lambda: next(reasons)),
        kwargs={"heartbeat": 0.01},
    )
    t.start()
    t.join(5)
    text = b"".join(written).decode()
    assert text.startswith("retry: ") and "event: hello" in text and text.rstrip().endswith('{"reason":"locked"}')
    h.close()


class ListLog(FakeLog):
    """A log whose tail() answers from a list (oldest first) and counts the lines it built."""

    def __init__(self, name: str, stamps: List[float]) -> None:
        super().__init__()
        self.lines = [{"ts": t, "worker": name, "index": 1, "stream": "out", "text": f"{name}@{t}"} for t in stamps]
        self.built = 0

    def tail(self, n: int) -> List[Dict[str, Any]]:
        got = self.lines[-n:] if n > 0 else []
        self.built += len(got)
        return got


def test_merged_tail_is_exact_time_ordered_and_bounded():
    busy = ListLog("busy", [float(t) for t in range(1000)])  # every line newer than the quiet ones
    quiet = {f"q{i:03d}": ListLog(f"q{i:03d}", [-100.0 - i, -50.0 - i]) for i in range(200)}
    sources = {"busy": busy.tail, **{n: log.tail for n, log in quiet.items()}}
    got = sse.merged_tail(sources, 300)
    assert [line["ts"] for _, line in got] == [float(t) for t in range(700, 1000)]
    assert busy.built <= 4 * 300 and sum(log.built for log in quiet.values()) <= 2 * 200
    # Interleaved workers: exact global order, ties keep each worker's own order.
    a = ListLog("a", [1.0, 3.0, 5.0, 5.0])
    b = ListLog("b", [2.0, 4.0, 5.0])
    got = sse.merged_tail({"a": a.tail, "b": b.tail}, 5)
    assert [line["text"] for _, line in got] == ["a@3.0", "b@4.0", "a@5.0", "a@5.0", "b@5.0"]
    assert sse.merged_tail({"a": a.tail}, 0) == [] and sse.merged_tail({}, 10) == []
    assert len(sse.merged_tail({"a": a.tail, "b": b.tail}, 100)) == 7


def test_all_workers_tail_replays_interleaved_runs_in_one_item():
    h, hub, client, _, _ = make(Want(stats=False))
    for name in ("x", "y"):
        h.sup.add({"name": name, "exec": "sleep", "params": ["100"]})
    h.sup.workers["x"].log = ListLog("x", [1.0, 2.0, 5.0])
    h.sup.workers["y"].log = ListLog("y", [3.0, 4.0, 6.0])
    star = StreamClient("owner-2", Want(stats=False, logs=["*"], tail=5))
    hub.add_client(star)
    items, _ = star.take(0)
    assert len(items) == 3  # hello, snapshot, and the whole backlog as one queue item
    logs = [d for k, d in events_of(items) if k == "log"]
    assert [(d["worker"], [x["ts"] for x in d["lines"]]) for d in logs] == [
        ("x", [2.0]),
        ("y", [3.0, 4.0]),
        ("x", [5.0]),
        ("y", [6.0]),
    ]
    assert all(d["backlog"] for d in logs)
    none = StreamClient("owner-3", Want(stats=False, logs=["*"], tail=0))
    hub.add_client(none)
    assert [k for k, _ in events(none)] == ["hello", "snapshot"]
    h.close()


def events_of(items: List[bytes]) -> List[tuple]:
    out = []
    for chunk in b"".join(items).decode().split("\n\n"):
        if chunk:
            kind, data = chunk.split("\n", 1)
            out.append((kind[len("event: ") :], json.loads(data[len("data: ") :])))
    return out


def test_settings_go_to_every_stream_whatever_it_asked_for():
    h, hub, a, _, _ = make(Want())
    b = StreamClient("owner-2", Want(workers=False, stats=False, notify=False))
    hub.add_client(b)
    events(a), events(b)
    hub.publish_settings({"ui": {"theme": "light"}, "security": {"lock_timeout": 0}})
    for client in (a, b):
        assert events(client) == [("settings", {"ui": {"theme": "light"}, "security": {"lock_timeout": 0}})]
    h.close()


def test_statuses_take_cpu_and_memory_from_the_sampler():
    h, hub, client, sampler, _ = make(Want())
    h.sup.add({"name": "w", "exec": "sleep", "params": ["100"]})
    h.sup.start("w")
    h.settle()
    pid = h.pids("w")[0]
    asked: List[int] = []

    def usage(p: int):
        asked.append(p)
        return 12.5, 4096

    sampler.usage = usage
    inst = hub.statuses()[0]["instances"][0]
    assert (inst["cpu"], inst["memory"]) == (12.5, 4096) and asked == [pid]
    assert hub.statuses(["w", "gone"])[0]["name"] == "w" and len(hub.statuses(["gone"])) == 0
    h.close()

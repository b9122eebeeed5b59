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

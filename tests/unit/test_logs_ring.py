"""Ring buffer, volume counts (fake clock across hours) and alert cooldowns."""

from __future__ import annotations

import pytest

from alter.errors import ConfigError
from alter.logs.alerts import LogAlerts
from alter.logs.ring import LineRing
from alter.logs.volume import KEEP_HOURS, LogVolume, WorkerVolume


def block(*texts: str) -> bytes:
    return "".join(t + "\n" for t in texts).encode()


# ------------------------------------------------------------------ ring


def test_ring_keeps_at_least_max_lines() -> None:
    ring = LineRing("w", max_lines=10)
    for i in range(100):
        ring.append(float(i), "out", 1, block(f"a{i}", f"b{i}", f"c{i}"), 3)
    assert 10 <= len(ring) < 13
    tail = ring.tail(10)
    assert [d["text"] for d in tail] == ["c96", "a97", "b97", "c97", "a98", "b98", "c98", "a99", "b99", "c99"]
    assert tail[0]["ts"] == 96.0 and tail[-1]["ts"] == 99.0
    assert len(ring.tail(1000)) == len(ring)


def test_ring_byte_cap() -> None:
    ring = LineRing("w", max_lines=5000, max_bytes=1000)
    for i in range(50):
        ring.append(float(i), "out", 1, block("x" * 99), 1)
    assert ring.bytes <= 1000 and len(ring) == 10


def test_ring_huge_single_block_is_trimmed_to_whole_lines() -> None:
    ring = LineRing("w", max_lines=5000, max_bytes=100)
    ring.append(1.0, "out", 1, block(*[f"line{i:03d}" for i in range(100)]), 100)
    texts = [d["text"] for d in ring.tail(1000)]
    assert texts == [f"line{i:03d}" for i in range(100 - len(texts), 100)]
    assert 0 < ring.bytes <= 100


def test_ring_tail_partial_block_filters_and_cont() -> None:
    ring = LineRing("w")
    ring.append(1.0, "out", 1, block("x", "y"), 2, cont=True)
    ring.append(2.0, "err", 2, block("e1", "e2", "e3"), 3)
    assert [d["text"] for d in ring.tail(2)] == ["e2", "e3"]
    assert ring.tail(5)[0] == {"ts": 1.0, "worker": "w", "index": 1, "stream": "out", "text": "x", "cont": True}
    assert [d["text"] for d in ring.tail(1, stream="out")] == ["y"]
    assert [d["text"] for d in ring.tail(9, index=2)] == ["e1", "e2", "e3"]
    assert ring.tail(0) == []
    ring.clear()
    assert ring.tail() == [] and len(ring) == 0


def test_ring_replaces_invalid_utf8_on_read() -> None:
    ring = LineRing("w")
    ring.append(1.0, "out", 1, b"\xff\xfeok\n", 1)
    assert ring.tail()[0]["text"] == "\ufffd\ufffdok"


def test_ring_append_parts_is_lazy_and_reads_like_append() -> None:
    lazy, eager = LineRing("w"), LineRing("w")
    lead, data = b"first half ", b"second half\nb\nc\npartial"
    end = data.rindex(b"\n") + 1
    lazy.append_parts(1.0, "out", 1, lead, data, end, 3, cont=True)
    eager.append(1.0, "out", 1, lead + data[:end], 3, cont=True)
    assert lazy._entries[0][3] == (lead, data, end)  # nothing joined yet
    assert lazy.tail() == eager.tail() and lazy.tail(2) == eager.tail(2)
    assert [d["text"] for d in lazy.tail()] == ["first half second half", "b", "c"]
    assert (lazy.lines, lazy.bytes) == (eager.lines, eager.bytes) == (3, len(lead) + end)


def test_ring_append_parts_whole_chunk_is_kept_as_is() -> None:
    ring = LineRing("w")
    data = block("a", "b")
    ring.append_parts(1.0, "out", 1, b"", data, len(data), 2)
    assert ring._entries[0][3] is data


def test_ring_append_parts_copies_when_it_would_pin_a_big_unused_tail() -> None:
    ring = LineRing("w")
    data = b"short\n" + b"p" * 1000  # a partial line much longer than the block
    ring.append_parts(1.0, "out", 1, b"", data, 6, 1)
    stored = ring._entries[0][3]
    assert stored == b"short\n" and stored is not data
    assert ring.bytes == 6


def test_ring_append_parts_byte_cap_and_eviction() -> None:
    ring = LineRing("w", max_lines=5000, max_bytes=100)
    for i in range(20):
        data = block(f"{i:02d}" + "x" * 17) + b"tail"
        ring.append_parts(float(i), "out", 1, b"", data, len(data) - 4, 1)
    assert ring.bytes <= 100 and len(ring) == 5
    assert [d["text"][:2] for d in ring.tail()] == ["15", "16", "17", "18", "19"]
    big = block(*[f"l{i:03d}" for i in range(100)])
    ring.append_parts(99.0, "out", 1, b"", big, len(big), 100)  # over the cap: trimmed to whole lines
    assert 0 < ring.bytes <= 100 and ring.tail()[-1]["text"] == "l099"


# ------------------------------------------------------------------ volume

H = 3600 * 500_000  # some hour boundary


def test_volume_counts_across_hour_boundaries() -> None:
    v = WorkerVolume()
    v.add("out", H - 0.001, 5)
    v.add("out", H, 2)
    v.add("err", H + 3599.999, 1)
    v.add("out", H + 3600, 7)
    assert v.series() == {"out": {H - 3600: 5, H: 2, H + 3600: 7}, "err": {H: 1}, "apm": {}}
    assert v.series(since=H, until=H + 3600) == {"out": {H: 2}, "err": {H: 1}, "apm": {}}
    assert v.total() == 15 and v.total("err") == 1


def test_volume_prunes_after_seven_days() -> None:
    v = WorkerVolume()
    v.add("out", H, 1)
    v.add("out", H + 3600 * (KEEP_HOURS - 1), 1)
    assert len(v.counts["out"]) == 2
    v.add("out", H + 3600 * KEEP_HOURS, 1)
    assert sorted(v.counts["out"]) == [H + 3600 * (KEEP_HOURS - 1), H + 3600 * KEEP_HOURS]


def test_volume_snapshot_restore_and_query() -> None:
    vol = LogVolume()
    vol.worker("api").add("out", H + 10, 3)
    vol.worker("api").add("err", H + 20, 1)
    vol.worker("db").add("out", H + 3700, 4)
    snap = vol.snapshot()
    import json

    again = LogVolume()
    again.restore(json.loads(json.dumps(snap)))
    assert (
        again.query()
        == vol.query()
        == [
            {"hour": H, "worker": "api", "out": 3, "err": 1, "apm": 0},
            {"hour": H + 3600, "worker": "db", "out": 4, "err": 0, "apm": 0},
        ]
    )
    again.rename("db", "database")
    again.remove("api")
    assert again.names() == ["database"]
    again.restore({"workers": {"x": {"out": {"bad": 1, str(H): "2"}}}})
    assert again.worker("x").counts["out"] == {H: 2}


# ------------------------------------------------------------------ alerts


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def test_alert_cooldown_per_pattern_and_worker() -> None:
    clock = Clock()
    a = LogAlerts(
        [{"name": "e", "pattern": "ERROR", "cooldown_ms": 500}, {"pattern": "(?i)timeout", "cooldown_ms": 0}],
        clock=clock,
    )
    events = []
    pub = lambda topic, payload: events.append((topic, payload["name"], payload["worker"], payload["line"]))  # noqa: E731
    assert a.scan("w1", 1, "out", 0.0, b"ok\nERROR one\nTIMEOUT x\nERROR two\n", pub) == 2
    assert a.scan("w1", 1, "out", 0.0, b"ERROR three\n", pub) == 0  # cooling down
    assert a.scan("w2", 1, "out", 0.0, b"ERROR w2\n", pub) == 1  # other worker: own cooldown
    clock.t = 0.6
    assert a.scan("w1", 1, "err", 0.0, b"ERROR four\n", pub) == 1
    assert events == [
        ("log.alert", "e", "w1", "ERROR one"),
        ("log.alert", "(?i)timeout", "w1", "TIMEOUT x"),
        ("log.alert", "e", "w2", "ERROR w2"),
        ("log.alert", "e", "w1", "ERROR four"),
    ]


def test_alert_disabled_ignore_case_and_regex_anchors() -> None:
    a = LogAlerts([{"pattern": "^fatal", "ignore_case": True}, {"pattern": "x", "enabled": False}])
    events = []
    a.scan("w", 1, "out", 0.0, b"not fatal\nFATAL: boom\nx\n", lambda t, p: events.append(p["line"]))
    assert events == ["FATAL: boom"]  # MULTILINE: ^ is a line start; disabled alert never fires
    assert [x["enabled"] for x in a.alerts()] == [True, False]


@pytest.mark.parametrize(
    "spec",
    [
        {"pattern": "("},
        {"pattern": ""},
        {},
        {"pattern": "a", "cooldown_ms": -1},
        {"pattern": "a", "cooldown_ms": "x"},
        "nope",
    ],
)
def test_alert_validation(spec) -> None:
    a = LogAlerts([{"pattern": "keep"}])
    with pytest.raises(ConfigError):
        a.set_alerts([spec])
    assert [x["pattern"] for x in a.alerts()] == ["keep"]  # a bad list changes nothing


def test_alert_duplicate_names_rejected() -> None:
    with pytest.raises(ConfigError):
        LogAlerts([{"name": "n", "pattern": "a"}, {"name": "n", "pattern": "b"}])

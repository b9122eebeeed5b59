"""CPU/memory history rings: gaps, wrap-around, 1-minute averages, renames."""

from __future__ import annotations

from alter.web.history import History


def test_fine_ring_wraps_and_marks_gaps():
    h = History(interval=5, fine_slots=4, coarse_every=2, coarse_slots=3)
    h.record(100, {"a": (10.0, 1000)})
    h.record(105, {"a": (20.0, 2000), "b": (1.0, 10)})
    h.record(110, {"b": (3.0, 30)})
    s = h.series("a")
    assert s["t"] == [100, 105, 110] and s["cpu"] == [10.0, 20.0, None] and s["memory"] == [1000, 2000, None]
    assert h.series("b")["cpu"] == [None, 1.0, 3.0]  # b did not exist at the first sample
    for t in (115, 120, 125):
        h.record(t, {"a": (5.0, 500)})
    assert h.series("a")["t"] == [110, 115, 120, 125]  # 4 slots
    assert h.series("missing")["cpu"] == [None] * 4


def test_coarse_ring_averages():
    h = History(interval=5, fine_slots=10, coarse_every=2, coarse_slots=5)
    h.record(0, {"a": (10.0, 100)})
    h.record(5, {"a": (30.0, 300)})
    h.record(10, {"a": (50.0, 500), "b": (2.0, 20)})
    h.record(15, {"b": (4.0, 40)})
    c = h.series("a", "24h")
    assert c["interval"] == 10 and c["t"] == [5, 15]
    assert c["cpu"] == [20.0, 50.0] and c["memory"] == [200, 500]
    assert h.series("b", "24h")["cpu"] == [None, 3.0]


def test_rename_and_remove():
    h = History(interval=5, fine_slots=4)
    h.record(0, {"a": (1.0, 1)})
    h.rename("a", "z")
    assert h.series("z")["cpu"] == [1.0] and h.names() == ["z"]
    h.remove("z")
    assert h.names() == []

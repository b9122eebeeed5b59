"""Parsing written log lines back (alter/daemon/log_replay.py): what `apm log` replays from the files."""

from __future__ import annotations

import os
import time

from alter.config.options import effective
from alter.daemon.log_replay import LineParser, TimeParser, lines_backwards, read_set, snapshot
from alter.daemon.loop import EventLoop
from alter.logs.pipeline import WorkerLog
from alter.paths import resolve


def write_log(tmp_path, name="api", instances=2, **cfg):
    paths = resolve({"APM_HOME": str(tmp_path)}, os.geteuid())
    clock = iter(1795268718.0 + k * 0.25 for k in range(10_000))
    wl = WorkerLog(EventLoop(), name, effective({"name": name, **cfg}), {}, paths, wall_clock=lambda: next(clock))
    for index in range(1, instances + 1):
        out = wl.open_stream(index, "out", instances)
        err = wl.open_stream(index, "err", instances)
        out.feed(f"out {index} \x1b[31mred\x1b[0m\n".encode())
        err.feed(f"err {index}\n".encode())
    wl.system("config updated")
    return wl


def parse_all(wl, **filters):
    sources = snapshot(wl)
    cfg = wl.config
    parser = LineParser(wl.name, cfg.get("prefix"), cfg.get("log_time_format") or "")
    want = filters.get("want", lambda s, i: True)
    try:
        return read_set(sources[0], parser, want, filters.get("n", 1000), filters.get("since"), lambda: False)[0]
    finally:
        for s in sources:
            s.close()


def test_default_layout_round_trip(tmp_path) -> None:
    wl = write_log(tmp_path)
    rows = parse_all(wl)
    got = [(s, i, t) for _, s, i, _, _, t in rows]
    assert got == [
        ("out", 1, b"out 1 \x1b[31mred\x1b[0m"),
        ("err", 1, b"err 1"),
        ("out", 2, b"out 2 \x1b[31mred\x1b[0m"),
        ("err", 2, b"err 2"),
        ("apm", 0, b"config updated"),
    ]
    assert [round(b[0] - a[0], 6) for a, b in zip(rows, rows[1:])] == [0.25] * 4  # one wall-clock read per chunk
    assert rows[0][4].endswith(b"\x1b[38;5;244m|\x1b[0m ")  # the head as written


def test_custom_prefix_time_format_and_strip(tmp_path) -> None:
    wl = write_log(tmp_path, instances=1, prefix="ç82-svcçR-", log_time_format="%d/%m %T", strip_ansi=True)
    rows = parse_all(wl)
    assert [(s, i) for _, s, i, _, _, _ in rows] == [("out", 1), ("err", 1), ("apm", 0)]
    assert rows[0][5] == b"out 1 red" and rows[0][4].endswith(b" svc | ")
    assert all(r[0] == int(r[0]) for r in rows)  # whole seconds in that format
    assert time.strftime("%d/%m", time.localtime(rows[0][0])) == time.strftime("%d/%m", time.localtime(1795268718))


def test_no_timestamp_and_filters(tmp_path) -> None:
    wl = write_log(tmp_path, log_time_format="")
    rows = parse_all(wl, want=lambda s, i: s == "err" and i == 2)
    assert [(s, i, t) for _, s, i, _, _, t in rows] == [("err", 2, b"err 2")]
    assert rows[0][4] == b"\x1b[38;5;82mapi#2\x1b[0m \x1b[38;5;196m!\x1b[0m "


def test_since_and_n(tmp_path) -> None:
    wl = write_log(tmp_path)
    assert len(parse_all(wl, n=2)) == 2
    t0 = parse_all(wl)[0][0]
    assert [r[5] for r in parse_all(wl, since=t0 + 0.6)] == [b"err 2", b"config updated"]


def test_time_parser() -> None:
    tp = TimeParser("ç214-%Y-%m-%d %Tç59-.%FçR-")
    ts = tp("2026-11-21 14:05:09.123456", 0)
    assert ts is not None and abs(ts - (time.mktime((2026, 11, 21, 14, 5, 9, 0, 0, -1)) + 0.123456)) < 1e-6
    assert tp("garbage", 0) is None
    only_time = TimeParser("%T")
    ref = time.mktime((2026, 11, 21, 0, 10, 0, 0, 0, -1))
    assert only_time("23:50:00", ref) == time.mktime((2026, 11, 20, 23, 50, 0, 0, 0, -1))  # the evening before
    assert TimeParser("")("", ref) is None


def test_lines_backwards(tmp_path) -> None:
    path = tmp_path / "f"
    data = b"".join(b"line %d %s\n" % (i, b"x" * (i % 700)) for i in range(3000))
    path.write_bytes(data + b"partial")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert list(lines_backwards(fd, len(data))) == data.splitlines()[::-1]
        assert next(lines_backwards(fd, len(data) + 7)) == b"partial"
        assert list(lines_backwards(fd, 0)) == []
    finally:
        os.close(fd)

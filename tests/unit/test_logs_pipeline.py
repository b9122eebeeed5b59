"""WorkerLog end to end on a temp dir: layout, prefixes, destinations, ring, subscribers, alerts."""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Tuple

import pytest

from alter.config.options import effective
from alter.daemon.loop import EventLoop
from alter.logs.alerts import LogAlerts
from alter.logs.layout import PALETTE
from alter.logs.pipeline import WorkerLog
from alter.logs.volume import LogVolume
from alter.paths import resolve

ESC = b"\x1b"


class Bus:
    def __init__(self) -> None:
        self.events: List[Tuple[str, Dict[str, Any]]] = []

    def publish(self, topic: str, payload: Dict[str, Any]) -> None:
        self.events.append((topic, payload))

    def topics(self) -> List[str]:
        return [t for t, _ in self.events]


class Clock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def env(tmp_path):
    loop = EventLoop(clock=Clock())
    made: List[WorkerLog] = []
    bus = Bus()

    def make(name: str = "api", daemon: Dict[str, Any] = None, **opts: Any) -> WorkerLog:
        extra = {k: v for k, v in opts.items() if k in ("alerts", "volume", "wall_clock")}
        cfg = effective({"name": name, "exec": "x", **{k: v for k, v in opts.items() if k not in extra}})
        wl = WorkerLog(loop, name, cfg, daemon or {}, resolve({"APM_HOME": str(tmp_path)}), bus, **extra)
        made.append(wl)
        return wl

    make.bus = bus  # type: ignore[attr-defined]
    make.loop = loop  # type: ignore[attr-defined]
    make.home = tmp_path  # type: ignore[attr-defined]
    yield make
    for wl in made:
        wl.close()
    loop.close()


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def plain_lines(path: str) -> List[str]:
    return read(path).decode("utf-8", "replace").splitlines()


LINE_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}) (\S+) ([|!*+]) (.*)$")


def test_default_layout_and_colours(env) -> None:
    wl = env()
    w = wl.open_stream(1, "out", 1)
    w.feed(b"hello\n")
    wl.close()
    data = read(wl.out_path)
    assert wl.out_path == os.path.join(str(env.home), "logs", "api", "out.log")
    m = re.match(
        rb"^\x1b\[38;5;214m\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\x1b\[38;5;59m\.\d{6}\x1b\[0m "
        rb"\x1b\[38;5;51mapi\x1b\[0m \x1b\[38;5;244m\|\x1b\[0m hello\n$",
        data,
    )
    assert m, data


def test_multi_instance_prefixes_and_stderr_marker(env) -> None:
    wl = env(instances=3, strip_ansi=False)
    writers = [wl.open_stream(i, "out", 3) for i in (1, 2, 3)]
    for i, w in enumerate(writers, 1):
        w.feed(b"from %d\n" % i)
    wl.open_stream(2, "err", 3).feed(b"oops\n")
    data = read(wl.out_path)
    for i in (1, 2, 3):
        assert b"\x1b[38;5;%dmapi#%d\x1b[0m" % (PALETTE[i - 1], i) in data
    assert len({PALETTE[i - 1] for i in (1, 2, 3)}) == 3
    assert b"api#2\x1b[0m \x1b[38;5;196m!\x1b[0m oops\n" in data


def test_strip_ansi_strips_apps_and_apms_colours_in_files_only(env) -> None:
    wl = env(strip_ansi=True, instances=2, prefix="ç51,0,1-webçR-")
    w = wl.open_stream(2, "out", 2)
    w.feed(b"\x1b[31mred\x1b[0m and \x1b]0;title\x07plain\n")
    lines = plain_lines(wl.out_path)
    assert ESC not in read(wl.out_path)
    m = LINE_RE.match(lines[0])
    assert m and m.group(2) == "web#2" and m.group(3) == "|" and m.group(4) == "red and plain"
    assert wl.tail()[0]["text"] == "\x1b[31mred\x1b[0m and \x1b]0;title\x07plain"  # ring keeps ANSI


def test_custom_prefix_colours(env) -> None:
    wl = env(instances=2, prefix="ç82-myappçR-")
    wl.open_stream(2, "out", 2).feed(b"x\n")
    assert b"\x1b[38;5;82mmyapp\x1b[0m\x1b[38;5;%dm#2\x1b[0m" % PALETTE[1] in read(wl.out_path)
    wl2 = env(name="other", prefix="plain")
    wl2.open_stream(1, "out", 1).feed(b"x\n")
    assert b"\x1b[38;5;%dmplain\x1b[0m" % PALETTE[0] in read(wl2.out_path)


def test_no_timestamp_format(env) -> None:
    wl = env(log_time_format="", strip_ansi=True)
    wl.open_stream(1, "out", 1).feed(b"a\nb\n")
    assert plain_lines(wl.out_path) == ["api | a", "api | b"]


def test_custom_time_format(env) -> None:
    wl = env(log_time_format="[%H:%M:%S]", strip_ansi=True)
    wl.open_stream(1, "out", 1).feed(b"a\n")
    assert re.match(r"^\[\d\d:\d\d:\d\d\] api \| a$", plain_lines(wl.out_path)[0])


def test_one_timestamp_per_chunk_and_interleaving(env) -> None:
    wl = env(strip_ansi=True)
    out, err = wl.open_stream(1, "out", 1), wl.open_stream(1, "err", 1)
    out.feed(b"o1\no2\no3\n")
    err.feed(b"e1\n")
    out.feed(b"o4\n")
    parsed = [LINE_RE.match(line) for line in plain_lines(wl.out_path)]
    assert [(m.group(3), m.group(4)) for m in parsed] == [
        ("|", "o1"),
        ("|", "o2"),
        ("|", "o3"),
        ("!", "e1"),
        ("|", "o4"),
    ]
    assert len({m.group(1) for m in parsed[:3]}) == 1
    assert wl.err_path == wl.out_path  # err_log defaults to the log file


def test_separate_err_log_and_relative_paths(env, tmp_path) -> None:
    wl = env(log=str(tmp_path / "custom" / "o.log"), err_log="e.log", path=str(tmp_path / "cwd"), strip_ansi=True)
    assert wl.out_path == str(tmp_path / "custom" / "o.log")
    assert wl.err_path == str(tmp_path / "cwd" / "e.log")
    wl.open_stream(1, "out", 1).feed(b"to out\n")
    wl.open_stream(1, "err", 1).feed(b"to err\n")
    wl.system("apm line")
    assert [LINE_RE.match(x).group(4) for x in plain_lines(wl.out_path)] == ["to out", "apm line"]
    assert [LINE_RE.match(x).group(4) for x in plain_lines(wl.err_path)] == ["to err"]
    assert wl.files() == [wl.out_path, wl.err_path]


def test_partial_line_and_close(env) -> None:
    wl = env(strip_ansi=True)
    w = wl.open_stream(1, "out", 1)
    w.feed(b"complete\nparti")
    w.feed(b"al")
    assert len(plain_lines(wl.out_path)) == 1
    w.close()
    w.feed(b"ignored after close\n")
    assert [LINE_RE.match(x).group(4) for x in plain_lines(wl.out_path)] == ["complete", "partial"]
    w2 = wl.open_stream(1, "err", 1)
    w2.feed(b"unfinished")
    wl.close()  # closing the WorkerLog flushes open streams
    assert LINE_RE.match(plain_lines(wl.out_path)[-1]).group(4) == "unfinished"


def test_invalid_utf8_and_binary(env) -> None:
    wl = env(strip_ansi=True)
    w = wl.open_stream(1, "out", 1)
    w.feed(b"bad \xff\xfe utf8\n\x00\x01\x02binary\x7f\n" + "ok é ✓ 😀\n".encode())
    data = read(wl.out_path)
    assert b"bad \xff\xfe utf8\n" in data and b"\x00\x01\x02binary\x7f\n" in data  # raw bytes kept on disk
    texts = [d["text"] for d in wl.tail()]
    assert texts == ["bad \ufffd\ufffd utf8", "\x00\x01\x02binary\x7f", "ok é ✓ 😀"]


def test_long_line_continuation(env) -> None:
    wl = env(strip_ansi=True)
    w = wl.open_stream(1, "out", 1)
    w.feed(b"a" * 70_000 + b"\nnext\n")
    markers = [LINE_RE.match(x).group(3) for x in plain_lines(wl.out_path)]
    assert markers == ["|", "+", "|"]
    d = wl.tail()
    assert [len(x["text"]) for x in d] == [65536, 70_000 - 65536, 4]
    assert [x.get("cont", False) for x in d] == [False, True, False]


def test_system_lines(env) -> None:
    wl = env(instances=2, strip_ansi=True)
    wl.open_stream(1, "out", 2)
    wl.system("started pid 42", index=2)
    wl.system("worker stopped\n")
    lines = [LINE_RE.match(x) for x in plain_lines(wl.out_path)]
    assert [(m.group(2), m.group(3), m.group(4)) for m in lines] == [
        ("api#2", "*", "started pid 42"),
        ("api", "*", "worker stopped"),
    ]
    assert [(d["stream"], d["index"]) for d in wl.tail()] == [("apm", 2), ("apm", 0)]


def test_tail_filters_and_line_dicts(env) -> None:
    wl = env(instances=2)
    o1, o2, e1 = wl.open_stream(1, "out", 2), wl.open_stream(2, "out", 2), wl.open_stream(1, "err", 2)
    o1.feed(b"a\nb\n")
    o2.feed(b"c\n")
    e1.feed(b"d\n")
    assert [d["text"] for d in wl.tail()] == ["a", "b", "c", "d"]
    assert [d["text"] for d in wl.tail(2)] == ["c", "d"]
    assert [d["text"] for d in wl.tail(stream="out")] == ["a", "b", "c"]
    assert [d["text"] for d in wl.tail(index=1)] == ["a", "b", "d"]
    assert [d["text"] for d in wl.tail(stream="err", index=2)] == []
    d = wl.tail(1)[0]
    assert set(d) == {"ts", "worker", "index", "stream", "text"}
    assert d["worker"] == "api" and d["index"] == 1 and d["stream"] == "err" and isinstance(d["ts"], float)


def test_subscribers(env) -> None:
    wl = env()
    got: List[List[Dict[str, Any]]] = []
    unsub = wl.subscribe(got.append)
    wl.subscribe(lambda batch: 1 / 0)  # a broken subscriber does not stop the others
    w = wl.open_stream(1, "out", 1)
    w.feed(b"x\ny\n")
    w.feed(b"z")
    w.feed(b"\n")
    assert [[d["text"] for d in b] for b in got] == [["x", "y"], ["z"]]
    unsub()
    unsub()
    w.feed(b"after\n")
    assert len(got) == 2


def test_status_and_clear(env) -> None:
    wl = env(log_max_size=200, strip_ansi=True)
    w = wl.open_stream(1, "out", 1)
    for i in range(30):
        w.feed(b"line %d\n" % i)
    st = wl.status()
    assert st["out"] == st["err"] == wl.out_path
    assert st["error"] is None and st["lines"] == 30 and st["bytes"] == sum(len(b"line %d\n" % i) for i in range(30))
    assert st["rotations"] > 0 and len(wl.files()) > 1
    wl.clear()
    assert wl.files() == [wl.out_path] and read(wl.out_path) == b"" and wl.tail() == []
    w.feed(b"fresh\n")
    assert LINE_RE.match(plain_lines(wl.out_path)[0]).group(4) == "fresh"


def test_reconfigure_moves_files_and_format(env, tmp_path) -> None:
    wl = env(strip_ansi=True)
    w = wl.open_stream(1, "out", 1)
    w.feed(b"before\n")
    cfg = effective(
        {"name": "api", "exec": "x", "log": str(tmp_path / "new.log"), "log_time_format": "", "strip_ansi": True}
    )
    wl.reconfigure(cfg)
    w.feed(b"after\n")
    assert plain_lines(str(tmp_path / "new.log")) == ["api | after"]
    assert wl.tail(5)[0]["text"] == "before"


def test_alerts_through_the_pipeline(env) -> None:
    clock = Clock(0.0)
    alerts = LogAlerts([{"name": "errors", "pattern": "ERROR|OOM", "cooldown_ms": 1000}], clock=clock)
    wl = env(alerts=alerts)
    other = env(name="db", alerts=alerts)
    w = wl.open_stream(1, "out", 1)
    w.feed(b"fine\nan \x1b[31mERROR\x1b[0m here\nERROR again\n")
    alerts_seen = [p for t, p in env.bus.events if t == "log.alert"]
    assert len(alerts_seen) == 1
    assert alerts_seen[0]["worker"] == "api" and alerts_seen[0]["line"] == "an ERROR here"
    assert alerts_seen[0]["pattern"] == "ERROR|OOM" and alerts_seen[0]["name"] == "errors"
    w.feed(b"ERROR during cooldown\n")
    other.open_stream(1, "err", 1).feed(b"OOM in db\n")  # cooldown is per worker
    clock.t = 1.5
    w.feed(b"OOM after cooldown\n")
    wl.system("ERROR in apm's own line is not an alert")
    got = [(p["worker"], p["line"]) for t, p in env.bus.events if t == "log.alert"]
    assert got == [("api", "an ERROR here"), ("db", "OOM in db"), ("api", "OOM after cooldown")]


def test_set_alerts_on_worker(env) -> None:
    wl = env()
    wl.set_alerts([{"pattern": "panic"}])
    wl.open_stream(1, "out", 1).feed(b"kernel panic\n")
    assert env.bus.topics() == ["log.alert"]


def test_volume_counts(env) -> None:
    vol = LogVolume()
    wall = Clock(7200.0 * 100 + 3599.5)
    wl = env(volume=vol, wall_clock=wall)
    w, e = wl.open_stream(1, "out", 1), wl.open_stream(1, "err", 1)
    w.feed(b"a\nb\nc\n")
    e.feed(b"x\n")
    wall.t += 1  # next hour
    w.feed(b"d\n")
    rows = vol.query("api")
    h = 7200 * 100
    assert rows == [
        {"hour": h, "worker": "api", "out": 3, "err": 1, "apm": 0},
        {"hour": h + 3600, "worker": "api", "out": 1, "err": 0, "apm": 0},
    ]


def test_daemon_rotation_defaults(env) -> None:
    wl = env(daemon={"log_max_size": 1234, "log_max_files": 7, "log_daily": False, "log_retention_days": 3})
    pol = wl._files[wl.out_path].policy
    assert (pol.max_size, pol.max_files, pol.daily, pol.retention_days) == (
        1234,
        7,  # the worker sets no log_max_files, so the daemon-wide default applies
        False,
        3,
    )  # worker's log_max_files wins
    wl2 = env(name="b", log_max_size=99, log_max_files=2)
    pol2 = wl2._files[wl2.out_path].policy
    assert (pol2.max_size, pol2.max_files, pol2.daily, pol2.retention_days) == (99, 2, True, 30)


# ------------------------------------------------------------------ the zero-copy hot path


def _capture(
    tmp_path, name: str, chunks: List[bytes], fast: bool, monkeypatch, **opts: Any
) -> Tuple[bytes, list, dict]:
    from alter.logs import files
    from alter.logs.lines import LineAssembler

    monkeypatch.setattr(files, "BEHIND_MIN", 64)  # some writes through the writer thread, some on the loop
    real_take = LineAssembler.take
    taken = []

    def take(self: LineAssembler, data: bytes) -> Any:
        got = real_take(self, data) if fast else None
        taken.append(got is not None)
        return got

    monkeypatch.setattr(LineAssembler, "take", take)
    loop = EventLoop(clock=Clock())
    cfg = effective({"name": "api", "exec": "x", "instances": 2, **opts})
    clock = Clock(1_795_268_718.25)
    wl = WorkerLog(loop, "api", cfg, {}, resolve({"APM_HOME": str(tmp_path / name)}), wall_clock=clock)
    seen: list = []
    wl.subscribe(seen.extend)
    w = wl.open_stream(2, "out", 2)
    for i, c in enumerate(chunks):
        clock.t += 0.001 * (i % 3)
        w.feed(c)
    wl.settle()
    status = {k: v for k, v in wl.status().items() if k not in ("out", "err")}
    tail = wl.tail(10_000)
    wl.close()
    loop.close()
    monkeypatch.undo()
    assert any(taken) == fast  # (the fast run did go through take())
    return read(wl.out_path), [tail, seen], status


SAMPLE = (
    b"".join(b"line %04d \x1b[32mgreen\x1b[0m \xff caf\xc3\xa9 \xe7a\n" % i for i in range(300))
    + b"x" * 70_000
    + b"\n\nlast partial"
)


@pytest.mark.parametrize("strip", [False, True])
@pytest.mark.parametrize("step", [1, 7, 100, 997, 4096, 30_000, 65536])
def test_fast_path_writes_exactly_what_the_generic_path_writes(tmp_path, monkeypatch, strip, step) -> None:
    chunks = [SAMPLE[i : i + step] for i in range(0, len(SAMPLE), step)]
    if step == 1:
        chunks = chunks[:3000] + [SAMPLE[3000:]]  # (byte by byte for the first lines only: fast enough)
    fast = _capture(tmp_path, "fast", chunks, True, monkeypatch, strip_ansi=strip)
    slow = _capture(tmp_path, "slow", chunks, False, monkeypatch, strip_ansi=strip)
    assert fast == slow
    data, (tail, seen), status = fast
    assert status["lines"] == 300 + 2 + 1 and status["dropped_lines"] == 0
    assert data.count(b"\n") == 300 + 2 + 1 + 1  # the 70,000-byte line in two pieces, "", then (at close) the partial
    assert len(tail) == 303 and tail == seen[:303] and seen[303]["text"] == "last partial"
    assert (ESC in data) != strip

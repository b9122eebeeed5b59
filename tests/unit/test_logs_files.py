"""LogFile: size rotation, daily rollover, retention, failures and recovery (fake clocks)."""

from __future__ import annotations

import calendar
import os
import time
from typing import List

import pytest

from alter.daemon.loop import EventLoop
from alter.logs import archive
from alter.logs.files import RETRY, LogFile, Policy


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def local(y: int, m: int, d: int, hh: int = 12, mm: int = 0) -> float:
    return time.mktime((y, m, d, hh, mm, 0, 0, 0, -1))


@pytest.fixture
def loop():
    mono = Clock(100.0)
    lp = EventLoop(clock=mono)
    lp.mono = mono  # type: ignore[attr-defined]
    yield lp
    lp.close()


def run_timers(loop, seconds: float) -> None:
    loop.mono.t += seconds
    loop.run_once(max_timeout=0)
    loop.run_once(max_timeout=0)


def lines(n: int, start: int = 0) -> bytes:
    return b"".join(b"line %05d\n" % i for i in range(start, start + n))


def write(f: LogFile, data: bytes, now: float) -> bool:
    return f.write((data,), len(data), data.count(b"\n"), now)


def content(paths: List[str]) -> bytes:
    out = b""
    for p in paths:
        with open(p, "rb") as fh:
            out += fh.read()
    return out


def test_size_rotation_keeps_max_files_and_order(tmp_path, loop) -> None:
    wall = Clock(local(2026, 11, 21))
    f = LogFile(loop, str(tmp_path / "w" / "out.log"), Policy(max_size=100, max_files=3, daily=False), wall)
    f.open()
    for i in range(20):
        assert write(f, lines(3, i * 3), wall.t)  # 33 bytes per chunk: 3 chunks per file
    names = [os.path.basename(p) for p in f.files()]
    assert names == ["out.log.3", "out.log.2", "out.log.1", "out.log"]
    data = content(f.files())
    assert data == lines(60)[-len(data) :]  # the newest lines, in order, none doubled
    for p in f.files():
        assert os.path.getsize(p) <= 100
    f.close()


def test_big_chunk_is_split_between_lines_across_rotations(tmp_path, loop) -> None:
    wall = Clock(local(2026, 11, 21))
    f = LogFile(loop, str(tmp_path / "out.log"), Policy(max_size=50, max_files=20, daily=False), wall)
    f.open()
    long = b"L" * 80 + b"\n"
    write(f, lines(1), wall.t)
    write(f, lines(20, 1), wall.t)  # 220 bytes: fills files of 4 lines (44 bytes) one after the other
    write(f, lines(1, 21) + long + lines(2, 22), wall.t)  # a line longer than max_size gets a file of its own
    assert content(f.files()) == lines(22) + long + lines(2, 22)
    assert [os.path.getsize(p) for p in f.files()] == [44, 44, 44, 44, 44, 22, 81, 22]
    f.close()


def test_daily_rollover_and_dated_names(tmp_path, loop) -> None:
    wall = Clock(local(2026, 11, 21, 23, 59))
    path = str(tmp_path / "out.log")
    f = LogFile(loop, path, Policy(max_size=100, max_files=5, daily=True, retention_days=30), wall)
    f.open()
    for i in range(5):
        write(f, lines(4, i * 4), wall.t)  # 44 bytes each: rotations during the day
    wall.t = local(2026, 11, 22, 0, 0) + 1
    write(f, lines(1, 20), wall.t)
    names = [os.path.basename(p) for p in f.files()]
    assert names == ["out.log.2026-11-21.2", "out.log.2026-11-21.1", "out.log.2026-11-21", "out.log"]
    assert content(f.files()) == lines(21)
    assert content([path]) == lines(1, 20)
    f.close()


def test_idle_file_rolls_over_on_the_timer(tmp_path, loop) -> None:
    wall = Clock(local(2026, 11, 21, 23, 59))
    f = LogFile(loop, str(tmp_path / "out.log"), Policy(daily=True), wall)
    f.open()
    write(f, lines(2), wall.t)
    wall.t = local(2026, 11, 22, 0, 0) + 3
    run_timers(loop, RETRY + 0.1)
    assert [os.path.basename(p) for p in f.files()] == ["out.log.2026-11-21", "out.log"]
    f.close()


def test_empty_file_is_not_archived(tmp_path, loop) -> None:
    wall = Clock(local(2026, 11, 21, 23, 59))
    f = LogFile(loop, str(tmp_path / "out.log"), Policy(daily=True), wall)
    f.open()
    wall.t += 3600
    write(f, lines(1), wall.t)
    assert [os.path.basename(p) for p in f.files()] == ["out.log"]
    f.close()


def test_old_file_at_open_is_archived_under_its_own_date(tmp_path, loop) -> None:
    path = tmp_path / "out.log"
    path.write_bytes(lines(3))
    old = local(2026, 11, 19, 15)
    os.utime(path, (old, old))
    (tmp_path / "out.log.2026-11-19").write_bytes(b"already there\n")
    wall = Clock(local(2026, 11, 21))
    f = LogFile(loop, str(path), Policy(daily=True), wall)
    f.open()
    names = [os.path.basename(p) for p in f.files()]
    assert names == ["out.log.2026-11-19", "out.log.2026-11-19_2", "out.log"]  # never overwritten
    assert (tmp_path / "out.log.2026-11-19_2").read_bytes() == lines(3)
    f.close()


def test_retention_deletes_old_dated_archives(tmp_path, loop) -> None:
    for name in [
        "out.log.2026-10-20",
        "out.log.2026-10-21.1",
        "out.log.2026-10-22",
        "out.log.2026-11-20",
        "out.log.3",
        "err.log.2026-01-01",
        "unrelated",
    ]:
        (tmp_path / name).write_bytes(b"x\n")
    wall = Clock(local(2026, 11, 21))
    f = LogFile(loop, str(tmp_path / "out.log"), Policy(daily=True, retention_days=30), wall)
    f.open()
    left = sorted(os.listdir(tmp_path))
    assert left == [
        "err.log.2026-01-01",
        "out.log",
        "out.log.2026-10-22",
        "out.log.2026-11-20",
        "out.log.3",
        "unrelated",
    ]
    f.close()
    g = LogFile(loop, str(tmp_path / "err.log"), Policy(daily=True, retention_days=0), wall)  # 0 = forever
    g.open()
    assert os.path.exists(tmp_path / "err.log.2026-01-01")
    g.close()


def test_archive_sort_order(tmp_path) -> None:
    base = str(tmp_path / "o.log")
    names = [
        "o.log.1",
        "o.log.2",
        "o.log.2026-01-02",
        "o.log.2026-01-02.1",
        "o.log.2026-01-02.2",
        "o.log.2026-01-02_2",
        "o.log.2026-01-01",
        "o.log.10",
    ]
    for n in names:
        (tmp_path / n).write_bytes(b"")
    got = [os.path.basename(a.path) for a in archive.scan(base)]
    assert got == [
        "o.log.2026-01-01",
        "o.log.2026-01-02.2",
        "o.log.2026-01-02.1",
        "o.log.2026-01-02",
        "o.log.2026-01-02_2",
        "o.log.10",
        "o.log.2",
        "o.log.1",
    ]


def test_disk_full_drops_counts_and_recovers(tmp_path, loop) -> None:
    """A symlink to /dev/full: every write fails with ENOSPC."""
    wall = Clock(local(2026, 11, 21))
    path = tmp_path / "out.log"
    real = tmp_path / "real.log"
    os.symlink("/dev/full", path)
    errors, resumed = [], []
    f = LogFile(
        loop,
        str(path),
        Policy(max_size=0, daily=False),
        wall,
        on_error=errors.append,
        on_resume=lambda s, t: resumed.append(t),
    )
    f.open()
    assert not write(f, lines(3), wall.t)
    assert not write(f, lines(2), wall.t)
    assert f.error and f.error.startswith(f"disk full writing {path} (since ")
    assert (f.dropped_lines, f.dropped_bytes) == (5, 55)
    assert len(errors) == 1  # published once
    run_timers(loop, RETRY + 0.1)  # still full: still failing, no second event
    assert f.error and len(errors) == 1 and not resumed
    os.unlink(path)
    os.symlink(real, path)  # "space freed": the path now leads to a writable file
    run_timers(loop, RETRY + 0.1)
    assert f.error is None and len(resumed) == 1
    assert "5 lines (55 bytes) lost" in resumed[0] and "disk full" in resumed[0]
    assert write(f, lines(1, 99), wall.t)
    data = real.read_bytes()
    assert data.endswith(lines(1, 99)) and b"log writing resumed: 5 lines (55 bytes) lost" in data
    f.close()


def test_unwritable_path_at_open_then_fixed(tmp_path, loop) -> None:
    wall = Clock(local(2026, 11, 21))
    blocker = tmp_path / "dir"
    blocker.write_bytes(b"a file where the folder should be")
    errors: list = []
    f = LogFile(loop, str(blocker / "out.log"), Policy(daily=False), wall, on_error=errors.append)
    f.open()
    assert f.fd < 0 and "Not a directory" in (f.error or "")
    assert not write(f, lines(2), wall.t)
    blocker.unlink()
    run_timers(loop, RETRY + 0.1)
    assert f.error is None
    write(f, lines(1, 5), wall.t)
    assert (blocker / "out.log").read_bytes().endswith(lines(1, 5))
    f.close()


def test_deleted_file_is_reopened(tmp_path, loop) -> None:
    wall = Clock(local(2026, 11, 21))
    path = tmp_path / "out.log"
    f = LogFile(loop, str(path), Policy(daily=False), wall)
    f.open()
    write(f, lines(1), wall.t)
    path.unlink()
    run_timers(loop, RETRY + 0.1)
    write(f, lines(1, 1), wall.t)
    assert path.read_bytes() == lines(1, 1)
    f.close()


def test_short_write_is_cut_back_to_whole_lines(tmp_path, loop, monkeypatch) -> None:
    wall = Clock(local(2026, 11, 21))
    path = tmp_path / "out.log"
    f = LogFile(loop, str(path), Policy(daily=False, max_size=0), wall)
    f.open()
    write(f, lines(1), wall.t)
    real_write = os.write

    def short_writev(fd, parts):  # the disk fills up 25 bytes into the chunk
        data = b"".join(parts)
        return real_write(fd, data[:25])

    def full_write(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "writev", short_writev)
    monkeypatch.setattr(os, "write", full_write)
    assert not write(f, lines(4, 1), wall.t)
    monkeypatch.undo()
    assert path.read_bytes() == lines(3)  # line 0 + two whole lines of the chunk, no half line
    assert (f.dropped_lines, f.dropped_bytes) == (2, 22)
    f.close()


def test_day_bounds_are_local_midnights() -> None:
    start, end = archive.day_bounds(local(2026, 3, 7, 15, 30))
    assert time.localtime(start)[:6] == (2026, 3, 7, 0, 0, 0)
    assert time.localtime(end)[:6] == (2026, 3, 8, 0, 0, 0)
    assert archive.retention_cutoff(local(2026, 3, 7), 30) == "2026-02-05"
    assert archive.retention_cutoff(local(2026, 3, 7), 0) is None
    assert calendar.isleap(2028)


# ------------------------------------------------------------------ write-behind (the writer thread)


@pytest.fixture
def behind(monkeypatch):
    """Every write goes through the writer thread."""
    from alter.logs import files

    monkeypatch.setattr(files, "BEHIND_MIN", 1)
    return files


def test_write_behind_keeps_order_and_rotation_exact(tmp_path, loop, behind) -> None:
    wall = Clock(local(2026, 11, 21))
    path = tmp_path / "out.log"
    f = LogFile(loop, str(path), Policy(max_size=1000, max_files=100, daily=False), wall)
    f.open()
    sizes = [1, 7, 30, 120, 3, 55]  # chunks of many sizes, several rotations inside one chunk
    n = 0
    for i in range(60):
        k = sizes[i % len(sizes)]
        assert write(f, lines(k, n), wall.t)
        n += k
    assert f._behind is not None and f._behind._thread is not None  # the thread did the writing
    f.settle()
    assert content(f.files()) == lines(n)  # every line once, in order, across all files
    assert f.rotations > 10
    assert all(os.path.getsize(p) <= 1000 for p in f.files())
    assert f.size == os.path.getsize(path) and f.written_bytes == len(lines(n))
    f.close()


def test_write_behind_disk_full_is_reported_and_counted(tmp_path, loop, behind) -> None:
    wall = Clock(local(2026, 11, 21))
    path = tmp_path / "out.log"
    os.symlink("/dev/full", path)
    errors: list = []
    f = LogFile(loop, str(path), Policy(max_size=0, daily=False), wall, on_error=errors.append)
    f.open()
    assert write(f, lines(3), wall.t)  # in flight: the failure is not known yet
    assert not write(f, lines(2), wall.t)  # the next write waits for it, sees ENOSPC, is dropped too
    assert f.error and f.error.startswith(f"disk full writing {path}") and len(errors) == 1
    assert (f.dropped_lines, f.dropped_bytes) == (5, 55) and f.written_bytes == 0
    f.close()


def test_write_behind_failure_shows_on_the_timer_without_another_write(tmp_path, loop, behind) -> None:
    wall = Clock(local(2026, 11, 21))
    path = tmp_path / "out.log"
    os.symlink("/dev/full", path)
    f = LogFile(loop, str(path), Policy(max_size=0, daily=False), wall)
    f.open()
    write(f, lines(4), wall.t)
    run_timers(loop, RETRY + 0.1)
    assert f.error and (f.dropped_lines, f.dropped_bytes) == (4, 44)
    f.close()


def test_write_behind_short_write_is_cut_back_to_whole_lines(tmp_path, loop, behind, monkeypatch) -> None:
    wall = Clock(local(2026, 11, 21))
    path = tmp_path / "out.log"
    f = LogFile(loop, str(path), Policy(daily=False, max_size=0), wall)
    f.open()
    write(f, lines(1), wall.t)
    f.settle()
    real_write = os.write

    def short_writev(fd, parts):  # the disk fills up 25 bytes into the chunk
        return real_write(fd, b"".join(parts)[:25])

    def full_write(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "writev", short_writev)
    monkeypatch.setattr(os, "write", full_write)
    write(f, lines(4, 1), wall.t)
    f.settle()
    monkeypatch.undo()
    assert path.read_bytes() == lines(3)  # line 0 + two whole lines of the chunk, no half line
    assert (f.dropped_lines, f.dropped_bytes) == (2, 22)
    assert f.size == len(lines(3)) and f.error
    f.close()


def test_write_behind_flush_and_close_wait_for_the_write_in_flight(tmp_path, loop, behind) -> None:
    wall = Clock(local(2026, 11, 21))
    path = tmp_path / "out.log"
    f = LogFile(loop, str(path), Policy(daily=False), wall)
    f.open()
    write(f, lines(50), wall.t)
    f.clear()  # `apm flush` must not be undone by a write that lands after the truncate
    assert path.read_bytes() == b"" and f.size == 0
    write(f, lines(2, 7), wall.t)
    f.close()
    assert path.read_bytes() == lines(2, 7)

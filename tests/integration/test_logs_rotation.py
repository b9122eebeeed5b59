"""Rotation under load, daily rollover (injected clock), retention — real files, real children."""

from __future__ import annotations

import datetime
import os
import time

import pytest

from tests.integration.test_logs_capture import NUMBERED, file_bodies, logenv_for, run_until


@pytest.fixture
def logenv(tmp_path):
    yield from logenv_for(tmp_path)


SLOW_NUMBERED = """
import os, sys, time
n = int(sys.argv[1])
for i in range(n):
    os.write(1, b"seq %07d\\n" % i)
    if i % 200 == 199:
        time.sleep(0.01)
"""


def numbers(paths):
    return [int(b.split()[1]) for b in file_bodies(paths)]


def test_no_line_lost_or_doubled_across_50_rotations(logenv) -> None:
    wl = logenv.worker(log_max_size=64 * 1024, log_max_files=1000)
    p = logenv.pump(wl, NUMBERED, "60000")
    run_until(logenv.loop, lambda: p.done, timeout=60, what="child to finish")
    st = wl.status()
    assert st["rotations"] >= 50, st
    files = wl.files()
    assert len(files) == st["rotations"] + 1
    assert numbers(files) == list(range(60000))  # every number exactly once, in order
    for path in files[:-1]:
        assert os.path.getsize(path) <= 64 * 1024
        with open(path, "rb") as f:
            assert f.read().endswith(b"\n")  # rotated between lines


def test_rotation_keeps_only_log_max_files(logenv) -> None:
    wl = logenv.worker(log_max_size=16 * 1024, log_max_files=3)
    p = logenv.pump(wl, NUMBERED, "20000")
    run_until(logenv.loop, lambda: p.done, timeout=60, what="child to finish")
    files = wl.files()
    assert [os.path.basename(f) for f in files] == ["out.log.3", "out.log.2", "out.log.1", "out.log"]
    got = numbers(files)
    assert got == list(range(got[0], 20000))  # the newest lines, contiguous


class CrossingMidnight:
    """Wall clock that starts `lead` seconds before a local midnight and runs at real speed."""

    def __init__(self, lead: float) -> None:
        tomorrow = datetime.date.today() + datetime.timedelta(days=1)
        self.midnight = time.mktime(tomorrow.timetuple())
        self.offset = self.midnight - lead - time.time()

    def __call__(self) -> float:
        return time.time() + self.offset


def test_daily_rollover_while_writing(logenv) -> None:
    wall = CrossingMidnight(lead=0.3)
    wl = logenv.worker(wall_clock=wall, log_max_size=8 * 1024, log_max_files=100)
    p = logenv.pump(wl, SLOW_NUMBERED, "8000")
    run_until(logenv.loop, lambda: p.done, timeout=60, what="child to finish")
    day = datetime.date.fromtimestamp(wall.midnight - 1).isoformat()
    names = [os.path.basename(f) for f in wl.files()]
    assert f"out.log.{day}" in names, names
    dated = [f for f in wl.files() if f".log.{day}" in f]
    today = [f for f in wl.files() if f".log.{day}" not in f]
    assert dated and today and today[-1] == wl.out_path
    assert numbers(wl.files()) == list(range(8000))
    # What the dated archives hold was written before midnight, the rest after.
    with open(dated[-1], "rb") as f:
        assert f.read()  # yesterday's last file is not empty
    assert all(os.path.getsize(f) > 0 for f in today)


def test_retention_removes_old_dated_archives(logenv) -> None:
    folder = logenv.home / "logs" / "api"
    folder.mkdir(parents=True)
    today = datetime.date.today()
    old = (today - datetime.timedelta(days=40)).isoformat()
    edge = (today - datetime.timedelta(days=7)).isoformat()
    recent = (today - datetime.timedelta(days=2)).isoformat()
    for name in [f"out.log.{old}", f"out.log.{old}.1", f"out.log.{edge}", f"out.log.{recent}"]:
        (folder / name).write_bytes(b"archived\n")
    wl = logenv.worker(daemon={"log_retention_days": 7})
    names = sorted(os.listdir(folder))
    assert names == sorted(["out.log", f"out.log.{edge}", f"out.log.{recent}"])
    wl.close()
    # ... and at a rollover: yesterday's file ages out the 7-day-old one.
    wall = CrossingMidnight(lead=0.2)
    wl2 = logenv.worker(name="api", wall_clock=wall, daemon={"log_retention_days": 7})
    p = logenv.pump(wl2, SLOW_NUMBERED, "8000")  # >= 0.4 s of output: crosses midnight
    run_until(logenv.loop, lambda: p.done, timeout=60, what="child to finish")
    names = os.listdir(folder)
    assert f"out.log.{edge}" not in names and f"out.log.{recent}" in names
    assert f"out.log.{today.isoformat()}" in names

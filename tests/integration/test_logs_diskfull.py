"""A full disk (real tmpfs) and a path that becomes unwritable: the worker and the loop never notice."""

from __future__ import annotations

import errno
import os
import pathlib
import re

import pytest

from alter.logs import files as files_mod
from alter.logs.colors import strip_ansi
from tests.helpers import mount_tmpfs
from tests.integration.test_logs_capture import Lateness, logenv_for, run_for, run_until


@pytest.fixture
def logenv(tmp_path):
    yield from logenv_for(tmp_path)


pytestmark = pytest.mark.root

STEADY = """
import os, sys, time
i = 0
while True:
    os.write(1, b"".join(b"seq %07d %s\\n" % (i + k, b"d" * 60) for k in range(20)))
    i += 20
    time.sleep(0.005)
"""


@pytest.fixture
def tmpfs(tmp_path):
    with mount_tmpfs(str(tmp_path), "512k") as mnt:
        yield pathlib.Path(mnt)


@pytest.fixture
def fast_retry(monkeypatch):
    monkeypatch.setattr(files_mod, "RETRY", 0.2)


def fill(path) -> None:
    """Write until the filesystem says ENOSPC."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                os.write(fd, b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    finally:
        os.close(fd)


def last_seq(wl) -> int:
    lines = wl.tail(1, stream="out")
    return int(lines[-1]["text"].split()[1]) if lines else -1


def seqs_in(paths):
    out = []
    for p in paths:
        with open(p, "rb") as f:
            for line in strip_ansi(f.read()).decode().splitlines():
                m = re.search(r" \| seq (\d+) d+$", line)
                if m:
                    out.append(int(m.group(1)))
                else:
                    assert " * " in line, line  # apm's own lines only
    return out


def test_disk_full_then_space_freed(logenv, tmpfs, fast_retry) -> None:
    log = tmpfs / "api" / "out.log"
    wl = logenv.worker(log=str(log), log_max_size=64 * 1024, log_max_files=2)
    p = logenv.pump(wl, STEADY)
    late = Lateness(logenv.loop)
    run_until(logenv.loop, lambda: last_seq(wl) > 500, what="first lines")
    fill(tmpfs / "filler")
    run_until(logenv.loop, lambda: wl.status()["error"], timeout=10, what="the disk-full error")
    st = wl.status()
    assert st["error"].startswith(f"disk full writing {log} (since ")
    assert logenv.bus.count("log.error") == 1
    event = next(e for t, e in logenv.bus.events if t == "log.error")
    assert event["worker"] == "api" and event["path"] == str(log) and event["errno"] == errno.ENOSPC

    # The child keeps running and we keep reading its pipe while nothing can be written.
    before = last_seq(wl)
    run_for(logenv.loop, 1.0)
    assert p.alive() and last_seq(wl) > before + 500
    assert wl.status()["dropped_lines"] > 0
    assert logenv.bus.count("log.error") == 1  # published once per episode
    assert late.worst < 0.5, f"loop timer {late.worst:.3f}s late"

    os.unlink(tmpfs / "filler")
    run_until(logenv.loop, lambda: wl.status()["error"] is None, timeout=10, what="writing to resume")
    lost = wl.status()["dropped_lines"]
    resumed = [e for t, e in logenv.bus.events if t == "log.resumed"]
    assert len(resumed) == 1 and resumed[0]["message"].startswith(f"log writing resumed: {lost} lines (")
    assert any(d["stream"] == "apm" and d["text"] == resumed[0]["message"] for d in wl.tail(5000))
    run_for(logenv.loop, 0.3)
    p.stop()
    got = seqs_in(wl.files())
    assert got == sorted(set(got))  # in order, nothing doubled, no half line (rotation kept working)


def test_lost_lines_are_exactly_the_missing_ones(logenv, tmpfs, fast_retry) -> None:
    log = tmpfs / "w" / "out.log"
    wl = logenv.worker(name="w", log=str(log), log_max_size=0)  # no rotation: the file keeps everything
    p = logenv.pump(wl, STEADY)
    run_until(logenv.loop, lambda: last_seq(wl) > 200, what="first lines")
    fill(tmpfs / "filler")
    run_until(logenv.loop, lambda: wl.status()["error"], timeout=10, what="the disk-full error")
    run_for(logenv.loop, 0.5)
    os.unlink(tmpfs / "filler")
    run_until(logenv.loop, lambda: wl.status()["error"] is None, timeout=10, what="writing to resume")
    run_for(logenv.loop, 0.2)
    p.stop()
    st = wl.status()
    got = seqs_in([str(log)])
    missing = sorted(set(range(got[0], got[-1] + 1)) - set(got))
    assert got == sorted(set(got)) and got[0] == 0
    assert len(missing) == st["dropped_lines"] > 0  # the count we report is exactly what is missing
    assert f"log writing resumed: {len(missing)} lines (" in strip_ansi(log.read_bytes()).decode()


def test_path_made_unwritable_mid_run(logenv, tmp_path, fast_retry) -> None:
    folder = tmp_path / "logs-here"
    log = folder / "out.log"
    wl = logenv.worker(log=str(log))
    p = logenv.pump(wl, STEADY)
    run_until(logenv.loop, lambda: last_seq(wl) > 200, what="first lines")
    os.rename(folder, tmp_path / "moved-away")
    folder.write_bytes(b"a file where the log folder was")  # nothing can be created under it now
    run_until(logenv.loop, lambda: wl.status()["error"], timeout=10, what="the write error")
    assert "Not a directory" in wl.status()["error"] and str(log) in wl.status()["error"]
    assert logenv.bus.count("log.error") == 1
    before = last_seq(wl)
    run_for(logenv.loop, 0.5)
    assert p.alive() and last_seq(wl) > before
    folder.unlink()
    run_until(logenv.loop, lambda: wl.status()["error"] is None, timeout=10, what="writing to resume")
    run_for(logenv.loop, 0.2)
    p.stop()
    text = strip_ansi(log.read_bytes()).decode()
    first = text.splitlines()[0]  # the new file starts by saying what was lost
    assert re.search(r" \* log writing resumed: \d+ lines \(\d+ bytes\) lost since .* \(Not a directory\)$", first), (
        first
    )
    assert seqs_in([str(log)])  # and lines after it

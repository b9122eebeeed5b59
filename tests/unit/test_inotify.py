"""The ctypes inotify wrapper and the debounced FileWatcher, on real files and the real event loop."""

from __future__ import annotations

import os
import time
from typing import Iterator, List, Set

import pytest

from alter.daemon.loop import EventLoop
from alter.linux.inotify import IN_CLOSE_WRITE, IN_MOVED_TO, FileWatcher, Inotify, parse_events

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/sys/fs/inotify"), reason="needs inotify")


class Rig:
    def __init__(self, debounce: float = 0.1) -> None:
        self.loop = EventLoop()
        self.calls: List[Set[str]] = []
        self.times: List[float] = []
        self.watcher = FileWatcher(self.loop, self._on_change, debounce=debounce, max_delay=1.0)

    def _on_change(self, paths: Set[str]) -> None:
        self.calls.append(set(paths))
        self.times.append(time.monotonic())

    def run(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.loop.run_once(0.01)

    def run_until_call(self, timeout: float = 3.0) -> Set[str]:
        end = time.monotonic() + timeout
        while not self.calls and time.monotonic() < end:
            self.loop.run_once(0.01)
        assert self.calls, "no change reported"
        return self.calls[-1]

    def close(self) -> None:
        self.watcher.close()
        self.loop.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    r.close()


def test_raw_inotify_reports_close_write_and_rename(tmp_path) -> None:
    ino = Inotify()
    try:
        ino.add_watch(str(tmp_path), IN_CLOSE_WRITE | IN_MOVED_TO)
        (tmp_path / "a.conf").write_text("x")
        os.rename(tmp_path / "a.conf", tmp_path / "b.conf")
        events = ino.read()
        assert [(e.name, bool(e.mask & IN_CLOSE_WRITE), bool(e.mask & IN_MOVED_TO)) for e in events] == [
            ("a.conf", True, False),
            ("b.conf", False, True),
        ]
        assert ino.read() == []  # non-blocking: nothing more
        with pytest.raises(OSError):
            ino.add_watch(str(tmp_path / "missing"), IN_CLOSE_WRITE)
    finally:
        ino.close()


def test_parse_events_handles_padding() -> None:
    import struct

    data = struct.pack("iIII", 1, 8, 0, 16) + b"name.conf".ljust(16, b"\0") + struct.pack("iIII", 2, 2, 0, 0)
    events = parse_events(data)
    assert [(e.wd, e.mask, e.name) for e in events] == [(1, 8, "name.conf"), (2, 2, "")]


def test_in_place_edit_is_reported_after_the_debounce(rig: Rig, tmp_path) -> None:
    conf = tmp_path / "apm.conf"
    conf.write_text("a")
    rig.watcher.set_paths([str(conf)])
    started = time.monotonic()
    conf.write_text("b")
    assert rig.run_until_call() == {str(conf)}
    assert rig.times[0] - started >= 0.09  # waited for quiet


def test_rename_over_the_file_is_reported_and_keeps_watching(rig: Rig, tmp_path) -> None:
    conf = tmp_path / "apm.conf"
    conf.write_text("a")
    rig.watcher.set_paths([str(conf)])
    for round_ in range(2):  # an editor saving twice: the second save must be seen too
        tmp = tmp_path / f".apm.conf.swp{round_}"
        tmp.write_text(f"v{round_}")
        os.rename(tmp, conf)
        assert rig.run_until_call() == {str(conf)}
        rig.calls.clear()


def test_burst_of_writes_gives_one_call(rig: Rig, tmp_path) -> None:
    conf = tmp_path / "apm.conf"
    conf.write_text("a")
    rig.watcher.set_paths([str(conf)])
    for i in range(5):
        conf.write_text(str(i))
        rig.run(0.02)
    rig.run_until_call()
    rig.run(0.3)
    assert len(rig.calls) == 1


def test_other_files_in_the_folder_are_ignored(rig: Rig, tmp_path) -> None:
    conf = tmp_path / "apm.conf"
    conf.write_text("a")
    rig.watcher.set_paths([str(conf)])
    (tmp_path / "apm.log").write_text("noise")
    (tmp_path / "other.conf").write_text("noise")
    rig.run(0.3)
    assert rig.calls == []


def test_directory_watch_sees_new_and_removed_drop_ins(rig: Rig, tmp_path) -> None:
    drop = tmp_path / "apm.conf.d"
    drop.mkdir()
    rig.watcher.set_paths([], [str(drop)])
    (drop / "new.conf").write_text("worker a { exec sleep; }")
    assert rig.run_until_call() == {str(drop)}
    rig.calls.clear()
    os.unlink(drop / "new.conf")
    assert rig.run_until_call() == {str(drop)}


def test_set_paths_replaces_and_empty_closes(rig: Rig, tmp_path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "a.conf").write_text("")
    (two / "b.conf").write_text("")
    rig.watcher.set_paths([str(one / "a.conf")])
    assert rig.watcher.watched_dirs() == [str(one)]
    rig.watcher.set_paths([str(two / "b.conf")])
    assert rig.watcher.watched_dirs() == [str(two)]
    (one / "a.conf").write_text("x")
    rig.run(0.3)
    assert rig.calls == []
    rig.watcher.set_paths([])
    assert rig.watcher.watched_dirs() == [] and rig.watcher._ino is None


def test_missing_folder_is_watched_once_it_exists(rig: Rig, tmp_path) -> None:
    drop = tmp_path / "later.d"
    rig.watcher.set_paths([], [str(drop)])
    assert rig.watcher.watched_dirs() == []
    drop.mkdir()
    rig.watcher.rewatch()
    (drop / "x.conf").write_text("")
    assert rig.run_until_call() == {str(drop)}

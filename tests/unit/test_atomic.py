"""alter.atomic.replace_file: the one atomic writer behind state, settings and config files."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from alter.atomic import replace_file


def test_new_file_gets_the_mode_and_the_data(tmp_path) -> None:
    path = tmp_path / "secrets.json"
    replace_file(str(path), b'{"k": 1}')
    assert path.read_bytes() == b'{"k": 1}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    replace_file(str(path), "naïve\n", 0o644)
    assert path.read_text(encoding="utf-8") == "naïve\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["secrets.json"]  # no temp file left behind


def test_a_symlink_is_written_through(tmp_path) -> None:
    real = tmp_path / "real.conf"
    real.write_text("old")
    link = tmp_path / "link.conf"
    link.symlink_to(real)
    replace_file(str(link), "new", 0o640)
    assert link.is_symlink() and real.read_text() == "new"


def test_a_failed_write_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"old")

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space left"):
        replace_file(str(path), b"new")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_concurrent_writers_never_leave_a_mixed_file(tmp_path) -> None:
    """HTTP threads may save settings at once: each rename installs one whole file."""
    path = tmp_path / "settings.json"
    bodies = [bytes([65 + i]) * 200_000 for i in range(6)]
    errors = []

    def writer(body: bytes) -> None:
        try:
            for _ in range(5):
                replace_file(str(path), body)
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert path.read_bytes() in bodies
    assert os.listdir(tmp_path) == ["settings.json"]

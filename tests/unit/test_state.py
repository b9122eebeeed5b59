import json
import os
import stat

from alter.daemon.state import DebouncedSaver, StateStore, write_atomic


def test_write_atomic_mode_and_content(tmp_path):
    p = tmp_path / "s.json"
    write_atomic(str(p), b"{}")
    assert p.read_bytes() == b"{}"
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    write_atomic(str(p), b'{"a":1}')
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["s.json"]  # no temp files left


def test_corrupt_state_is_kept_not_lost(tmp_path):
    p = tmp_path / "state.json"
    p.write_text("{not json")
    assert StateStore(str(p)).load() == {}
    kept = [f for f in tmp_path.iterdir() if ".corrupt-" in f.name]
    assert len(kept) == 1 and kept[0].read_text() == "{not json"


def test_missing_state_is_empty(tmp_path):
    assert StateStore(str(tmp_path / "none.json")).load() == {}


def test_debounced_saver_coalesces(tmp_path):
    store = StateStore(str(tmp_path / "state.json"))
    queue = []
    n = {"v": 0}
    saver = DebouncedSaver(store, lambda: {"v": n["v"]}, queue.append)
    for i in range(5):
        n["v"] = i
        saver.changed()
    assert len(queue) == 1  # one scheduled save for five changes
    queue.pop()()
    assert store.load()["v"] == 4


def test_saver_survives_unwritable_dir(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    store = StateStore(str(d / "missing-dir" / "state.json"))
    saver = DebouncedSaver(store, lambda: {"x": 1}, lambda cb: None)
    saver.changed()
    saver.flush()  # must not raise
    assert saver.dirty and saver.last_error

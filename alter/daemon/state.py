"""Atomic persistence of the daemon's state (workers, settings, ...).

Every save writes a temp file in the same directory, fsyncs it, renames it
over the old file and fsyncs the directory, so a crash (or kill -9) at any
moment leaves either the old or the new state, never a torn file.  Files are
0600: they may hold secrets.

A state file that cannot be parsed is never thrown away: it is renamed to
`<name>.corrupt-<timestamp>` and the daemon starts empty, saying so.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Callable, Dict, Optional

from alter.atomic import replace_file

log = logging.getLogger("apm.state")

FORMAT_VERSION = 1


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` atomically and durably (0600 by default: state may hold secrets)."""
    replace_file(path, data, mode)


class StateStore:
    """One JSON document on disk, loaded at start and saved after each change."""

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> Dict[str, Any]:
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("top level is not an object")
        except (UnicodeDecodeError, ValueError) as exc:
            keep = f"{self.path}.corrupt-{int(time.time())}"
            os.replace(self.path, keep)
            log.error("state file %s is unreadable (%s); kept it as %s and started empty", self.path, exc, keep)
            return {}
        return data

    def save(self, data: Dict[str, Any]) -> None:
        doc = dict(data)
        doc["format"] = FORMAT_VERSION
        write_atomic(self.path, json.dumps(doc, indent=1, sort_keys=True).encode("utf-8"))


class DebouncedSaver:
    """Coalesces many changes in one loop iteration into one save.

    `changed()` marks the state dirty and schedules a save for the next loop
    iteration; `flush()` saves now if dirty (the server calls it before
    replying to a mutating request, so an acknowledged change is on disk).
    """

    def __init__(
        self, store: StateStore, snapshot: Callable[[], Dict[str, Any]], call_soon: Callable[[Callable[[], None]], None]
    ) -> None:
        self.store = store
        self.snapshot = snapshot
        self.call_soon = call_soon
        self.dirty = False
        self._scheduled = False
        self.last_error: Optional[str] = None

    def changed(self) -> None:
        self.dirty = True
        if not self._scheduled:
            self._scheduled = True
            self.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        if not self.dirty:
            return
        try:
            self.store.save(self.snapshot())
        except OSError as exc:
            # Keep running and keep the state dirty: the next change retries.
            if self.last_error != str(exc):
                log.error("cannot save state to %s: %s (will retry on the next change)", self.store.path, exc)
            self.last_error = str(exc)
            return
        self.dirty = False
        if self.last_error:
            log.info("state saved to %s again", self.store.path)
        self.last_error = None

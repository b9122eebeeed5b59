"""One JSON file under the state dir, 0600, written atomically (the GUI's settings and auth)."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Dict

from alter.daemon.state import write_atomic

log = logging.getLogger("apm.web")


class JsonFile:
    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> Dict[str, Any]:
        """The stored object, or {} when absent.  An unreadable file is kept aside, never lost."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
            self._tighten()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.error("cannot read %s: %s", self.path, exc.strerror)
            return {}
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("top level is not an object")
        except (UnicodeDecodeError, ValueError) as exc:
            keep = f"{self.path}.corrupt-{int(time.time())}"
            try:
                os.replace(self.path, keep)
            except OSError:
                pass
            log.error("%s is unreadable (%s); kept it as %s and started with defaults", self.path, exc, keep)
            return {}
        return data

    def save(self, data: Dict[str, Any]) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        write_atomic(self.path, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"), mode=0o600)

    def _tighten(self) -> None:
        try:
            if os.stat(self.path).st_mode & 0o077:
                os.chmod(self.path, 0o600)
        except OSError:
            pass

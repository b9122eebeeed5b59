"""Startup grace: did every instance survive its first `startup_grace` ms?

`StartupWatch` resolves exactly once: `callback(None)` when every tracked
instance has been running for `startup_grace`, or `callback(detail)` as soon as
one dies (or cannot be spawned, or is stopped) inside the window on its FIRST
attempt.  Auto-restarts never reach a watch.

detail = {"instance" (1-based), "exit_code", "signal", "runtime_ms",
          "stderr" (first 8 KB of the attempt, decoded with replacement),
          "hints": [one-line "what to do"...], "error" (spawn failures), "message"}
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Optional, Tuple

Detail = Dict[str, Any]
ReadyCallback = Callable[[Optional[Detail]], None]

HINTS: List[Tuple[re.Pattern, str]] = [
    (
        re.compile(r"MODULE_NOT_FOUND|Cannot find module"),
        "a Node.js module is missing: run `npm install` in the worker's path, or check the script name",
    ),
    (
        re.compile(r"ModuleNotFoundError|No module named"),
        "a Python module is missing: install it (pip install ...) for the interpreter the worker runs, or activate its venv",
    ),
    (
        re.compile(r"command not found|: not found\b|No such file or directory"),
        "a program or file the worker needs was not found: check `exec`, `params`, `path` and the PATH it runs with (`apm env`)",
    ),
    (
        re.compile(r"EADDRINUSE|Address already in use|address already in use"),
        "the port is already taken: stop whatever listens on it (`ss -ltnp`) or give this worker another port",
    ),
    (
        re.compile(r"EACCES|Permission denied|permission denied"),
        "permission denied: check file modes and the worker's `user`; ports below 1024 need root or CAP_NET_BIND_SERVICE",
    ),
    (
        re.compile(r"ECONNREFUSED|Connection refused|connection refused"),
        "a service it connects to is not up: start it first, or declare it in `depends_on`",
    ),
    (re.compile(r"SyntaxError"), "the program has a syntax error: run it by hand to see where"),
]


def hints_for(stderr: str) -> List[str]:
    return [hint for pattern, hint in HINTS if pattern.search(stderr)]


class StartupWatch:
    """Tracks a set of instances (by identity) through their first attempt."""

    def __init__(
        self,
        loop: Any,
        grace_ms: int,
        callback: Optional[ReadyCallback],
        on_started: Optional[Callable[[Any], None]] = None,
    ) -> None:
        self.loop = loop
        self.grace = max(0, grace_ms) / 1000.0
        self.callback = callback
        self.on_started = on_started
        self.pending: Dict[int, Any] = {}  # id(instance) -> timer or None
        self.done = False
        self._sealed = False

    def track(self, instance: Any) -> None:
        """Watch `instance`'s next attempt (it registers us in its `watchers`)."""
        if self.done:
            return
        self.pending[id(instance)] = None
        instance.watchers.append(self)

    def seal(self) -> None:
        """No more instances will be tracked: succeed now if nothing is pending."""
        self._sealed = True
        self._maybe_done()

    def cancel(self) -> None:
        self.done = True
        for timer in self.pending.values():
            if timer is not None:
                timer.cancel()
        self.pending.clear()

    # ------------------------------------------------------------ called by instances

    def started(self, instance: Any) -> None:
        if self.done or id(instance) not in self.pending:
            return
        if self.on_started is not None:
            self.on_started(instance)
        if self.done:
            return
        if self.grace <= 0:
            self._survived(instance)
        else:
            self.pending[id(instance)] = self.loop.call_later(self.grace, self._survived, instance)

    def ready_now(self, instance: Any) -> None:
        """The instance was already running: nothing to wait for."""
        if id(instance) in self.pending:
            self._survived(instance)

    def failed(self, instance: Any, detail: Detail) -> None:
        if self.done or id(instance) not in self.pending:
            return
        self._finish(detail)

    def _survived(self, instance: Any) -> None:
        if self.done:
            return
        self.pending.pop(id(instance), None)
        if self in instance.watchers:
            instance.watchers.remove(self)
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self._sealed and not self.pending and not self.done:
            self._finish(None)

    def _finish(self, detail: Optional[Detail]) -> None:
        self.cancel()
        if self.callback is not None:
            callback, self.callback = self.callback, None
            callback(detail)

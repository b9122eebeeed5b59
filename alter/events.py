"""The daemon's event bus: facts published by the engine, read by everyone else.

Dependency-free on purpose: the supervision engine publishes, and the web API,
notifications, webhooks, StatsD and the CLI's `wait` subscribe.  Kinds are
dotted names (`instance.state`, `worker.added`); a subscription matches one
exact kind, a prefix ending in "." (`"instance."`), or everything (`"*"`).

Callbacks run synchronously, on the loop thread, in subscription order.  A
callback that raises is logged and skipped: a broken subscriber never breaks
the publisher or the other subscribers.

Kinds the engine publishes (data is a JSON-ready dict):

    worker.added    {"worker", "origin"}
    worker.removed  {"worker"}
    worker.renamed  {"worker", "old"}
    worker.updated  {"worker", "changed": [option names]}
    worker.state    {"worker", "status", "old"}
    instance.state  {"worker", "instance" (1-based), "state", "old", "pid"}
    instance.start  {"worker", "instance", "pid", "attempt"}
    instance.exit   {"worker", "instance", "pid", "code", "signal", "runtime_ms", "oom", "expected"}
    instance.crash  {"worker", "instance", "pid", "code", "signal", "runtime_ms", "oom"}  (error exits not asked for)
    instance.failed {"worker", "instance", "error"}                                       (could not spawn)
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Tuple

log = logging.getLogger("apm.events")

EventCallback = Callable[[str, Dict[str, Any]], None]


class EventBus:
    """Synchronous publish/subscribe on dotted kinds."""

    def __init__(self) -> None:
        self._subs: List[Tuple[str, EventCallback]] = []
        # Events published so far.  A status stamped with it (`revision`) can be ordered against
        # another: the one with the higher count saw every event the other saw, and more.
        self.count = 0

    def subscribe(self, kind_or_prefix: str, callback: EventCallback) -> Callable[[], None]:
        """Call `callback(kind, data)` for matching events; returns an unsubscribe function."""
        entry = (kind_or_prefix, callback)
        self._subs.append(entry)

        def unsubscribe() -> None:
            try:
                self._subs.remove(entry)
            except ValueError:
                pass

        return unsubscribe

    def publish(self, kind: str, data: Dict[str, Any]) -> None:
        self.count += 1
        for pattern, callback in list(self._subs):
            if not _matches(pattern, kind):
                continue
            try:
                callback(kind, data)
            except Exception:
                log.exception("event subscriber %r failed on %s", callback, kind)

    def __len__(self) -> int:
        return len(self._subs)


def _matches(pattern: str, kind: str) -> bool:
    if pattern in ("*", "", kind):
        return True
    return pattern.endswith(".") and kind.startswith(pattern)

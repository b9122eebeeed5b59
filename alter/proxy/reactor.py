"""The proxy process's event loop: level-triggered epoll, fd -> handler, coarse timers.

Deliberately smaller than the daemon's `EventLoop`: the data plane dispatches
hundreds of thousands of events a second, so a handler is one plain callable
`handler(events)` looked up in a dict, `now` is read once per wake-up, and
per-connection timeouts are not timers at all -- each connection stores a
`deadline` and `sweep` callbacks (every SWEEP seconds) close the late ones.

Handlers must tolerate spurious events (an fd closed and reused within one
batch of events delivers the old event to the new handler): every socket is
non-blocking and every read/write handles EAGAIN.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import select
import time
from typing import Any, Callable, Dict, List, Tuple

log = logging.getLogger("apm.proxy")

IN = select.EPOLLIN
OUT = select.EPOLLOUT
ERR = select.EPOLLERR | select.EPOLLHUP | getattr(select, "EPOLLRDHUP", 0)

Handler = Callable[[int], None]
# Events per epoll_wait: select.epoll allocates the event array on every poll(), and up to 32
# events (12 or 16 bytes each) come from Python's small-object allocator instead of malloc.
# More ready fds than that are simply returned by the next poll.
MAX_EVENTS = 32
# First read size for a new message: a bytes object of up to 512 bytes (33 of them header) comes from
# Python's small-object allocator, a 64 KiB read costs a malloc + realloc + free in libc (about 700
# instructions).  Connections switch to whole 64 KiB reads once a message fills SMALL_READ.
SMALL_READ = 512 - 33


class Reactor:
    def __init__(self) -> None:
        self.ep = select.epoll()
        self.handlers: Dict[int, Handler] = {}
        self.masks: Dict[int, int] = {}
        self.now = time.monotonic()
        self.running = False
        self._timers: List[Tuple[float, int, Callable[..., Any], Tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._soon: List[Tuple[Callable[..., Any], Tuple[Any, ...]]] = []

    # ------------------------------------------------------------------ fds

    def add(self, fd: int, mask: int, handler: Handler) -> None:
        """Watch fd.  A mask of 0 keeps the handler but leaves the fd out of epoll entirely, so
        not even EPOLLHUP (which epoll reports whatever the mask) wakes a paused connection."""
        self.handlers[fd] = handler
        self.masks[fd] = mask
        if mask:
            self.ep.register(fd, mask)

    def modify(self, fd: int, mask: int) -> None:
        old = self.masks.get(fd)
        if old is None or old == mask:
            return
        self.masks[fd] = mask
        try:
            if not mask:
                self.ep.unregister(fd)
            elif not old:
                self.ep.register(fd, mask)
            else:
                self.ep.modify(fd, mask)
        except (OSError, ValueError):
            pass

    def set_handler(self, fd: int, handler: Handler) -> None:
        self.handlers[fd] = handler

    def remove(self, fd: int) -> None:
        self.handlers.pop(fd, None)
        if self.masks.pop(fd, 0):
            try:
                self.ep.unregister(fd)
            except (OSError, ValueError):
                pass

    # ------------------------------------------------------------------ time

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), callback, args))

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run on this loop iteration's tail (used to resume reads of TLS data already decrypted)."""
        self._soon.append((callback, args))

    def every(self, interval: float, callback: Callable[[], Any]) -> None:
        def tick() -> None:
            try:
                callback()
            finally:
                self.call_later(interval, tick)

        self.call_later(interval, tick)

    # ------------------------------------------------------------------ running

    def run(self) -> None:
        self.running = True
        poll = self.ep.poll
        handlers = self.handlers
        timers = self._timers
        clock = time.monotonic
        while self.running:
            if self._soon:
                timeout = 0.0
            elif timers:
                timeout = max(0.0, timers[0][0] - clock())
            else:
                timeout = 1.0
            try:
                events = poll(timeout, MAX_EVENTS)
            except InterruptedError:
                events = []
            self.now = clock()
            for fd, ev in events:
                try:
                    handlers[fd](ev)
                except KeyError:
                    if fd in handlers:  # raised inside the handler (an fd removed earlier in this batch is not)
                        log.exception("proxy handler for fd %d failed", fd)
                except Exception:
                    log.exception("proxy handler for fd %d failed", fd)
            if self._soon:
                soon, self._soon = self._soon, []
                for cb, args in soon:
                    try:
                        cb(*args)
                    except Exception:
                        log.exception("proxy callback %r failed", cb)
            if timers and timers[0][0] <= self.now:
                while timers and timers[0][0] <= self.now:
                    _, _, cb, args = heapq.heappop(timers)
                    try:
                        cb(*args)
                    except Exception:
                        log.exception("proxy timer %r failed", cb)

    def stop(self) -> None:
        self.running = False

    def close(self) -> None:
        self.ep.close()

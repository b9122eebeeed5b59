"""The daemon's single event loop: selectors + a timer heap + thread-safe call_soon.

One thread runs `run()` and owns all daemon state.  Other threads (the GUI's
HTTP handlers) hand work over with `call_soon_threadsafe()` or `submit()`.
Signal handlers only write to a wakeup pipe; the loop dispatches the handler
on its own thread.  Time is `time.monotonic()` throughout.

The loop sleeps in `select()` until an fd is ready or the next timer is due,
so an idle daemon costs ~0% CPU.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import itertools
import logging
import os
import selectors
import signal
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

log = logging.getLogger("apm.loop")

Callback = Callable[..., Any]


class Timer:
    """Handle of a scheduled call; `cancel()` makes it a no-op."""

    __slots__ = ("when", "seq", "callback", "args", "cancelled")

    def __init__(self, when: float, seq: int, callback: Callback, args: Tuple[Any, ...]) -> None:
        self.when = when
        self.seq = seq
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: Timer) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)


class EventLoop:
    """Minimal reactor.  Callbacks must not block; exceptions are logged, never fatal."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._selector = selectors.DefaultSelector()
        self._timers: List[Timer] = []
        self._seq = itertools.count()
        self._ready: Deque[Tuple[Callback, Tuple[Any, ...]]] = deque()
        self._lock = threading.Lock()
        self._stopping = False
        self._thread_id: Optional[int] = None
        self._readers: Dict[int, Tuple[Callback, Tuple[Any, ...]]] = {}
        self._writers: Dict[int, Tuple[Callback, Tuple[Any, ...]]] = {}
        self._signal_handlers: Dict[int, Callback] = {}
        # Self-pipe: wakes select() for call_soon_threadsafe and signals.
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)

    # ------------------------------------------------------------------ scheduling

    def call_soon(self, callback: Callback, *args: Any) -> None:
        """Run callback on the next iteration (loop thread only)."""
        self._ready.append((callback, args))

    def call_soon_threadsafe(self, callback: Callback, *args: Any) -> None:
        """Run callback on the loop thread; safe from any thread."""
        with self._lock:
            self._ready.append((callback, args))
        self._wake()

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        """Run fn on the loop thread and return a Future with its result (for other threads)."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the waiting thread
                future.set_exception(exc)

        self.call_soon_threadsafe(run)
        return future

    def call_later(self, delay: float, callback: Callback, *args: Any) -> Timer:
        """Run callback after `delay` seconds (loop thread only)."""
        return self.call_at(self.clock() + max(0.0, delay), callback, *args)

    def call_at(self, when: float, callback: Callback, *args: Any) -> Timer:
        timer = Timer(when, next(self._seq), callback, args)
        heapq.heappush(self._timers, timer)
        return timer

    def time(self) -> float:
        return self.clock()

    # ------------------------------------------------------------------ fds

    def add_reader(self, fd: int, callback: Callback, *args: Any) -> None:
        self._readers[fd] = (callback, args)
        self._update(fd)

    def remove_reader(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None:
            self._update(fd)

    def add_writer(self, fd: int, callback: Callback, *args: Any) -> None:
        self._writers[fd] = (callback, args)
        self._update(fd)

    def remove_writer(self, fd: int) -> None:
        if self._writers.pop(fd, None) is not None:
            self._update(fd)

    def _update(self, fd: int) -> None:
        mask = (selectors.EVENT_READ if fd in self._readers else 0) | (
            selectors.EVENT_WRITE if fd in self._writers else 0
        )
        try:
            key = self._selector.get_key(fd)
        except KeyError:
            key = None
        if key is None:
            if mask:
                self._selector.register(fd, mask)
        elif mask:
            self._selector.modify(fd, mask)
        else:
            self._selector.unregister(fd)

    # ------------------------------------------------------------------ signals

    def add_signal_handler(self, signum: int, callback: Callback) -> None:
        """Dispatch `callback(signum)` on the loop thread when the signal arrives."""
        self._signal_handlers[signum] = callback
        signal.signal(signum, self._on_signal)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

    def _on_signal(self, signum: int, frame: Any) -> None:
        # The handler itself does nothing but queue: the wakeup fd already woke select().
        self._ready.append((self._dispatch_signal, (signum,)))

    def _dispatch_signal(self, signum: int) -> None:
        handler = self._signal_handlers.get(signum)
        if handler is not None:
            handler(signum)

    # ------------------------------------------------------------------ running

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # pipe full: the loop is already going to wake

    def stop(self) -> None:
        self._stopping = True
        self._wake()

    @property
    def running_in_loop_thread(self) -> bool:
        return self._thread_id == threading.get_ident()

    def run(self) -> None:
        """Run until stop() is called."""
        self._thread_id = threading.get_ident()
        self._stopping = False
        while not self._stopping:
            self.run_once()

    def run_once(self, max_timeout: Optional[float] = None) -> None:
        timeout = self._next_timeout()
        if max_timeout is not None:
            timeout = max_timeout if timeout is None else min(timeout, max_timeout)
        try:
            events = self._selector.select(timeout)
        except InterruptedError:
            events = []
        for key, mask in events:
            fd = key.fd
            if fd == self._wake_r:
                self._drain_wakeup()
                continue
            if mask & selectors.EVENT_READ and fd in self._readers:
                cb, args = self._readers[fd]
                self._run(cb, args)
            if mask & selectors.EVENT_WRITE and fd in self._writers:
                cb, args = self._writers[fd]
                self._run(cb, args)
        now = self.clock()
        while self._timers and (self._timers[0].when <= now or self._timers[0].cancelled):
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                self._ready.append((timer.callback, timer.args))
        # Only run what is ready now; callbacks queued by these run next time.  The queue is swapped,
        # not copied then cleared: a signal handler (_on_signal) runs between any two bytecodes of this
        # thread, and what it queued between a copy and a clear was lost -- a lost SIGCHLD left the
        # instance waiting forever for an exit the daemon never saw (`apm stop` hung).
        with self._lock:
            batch, self._ready = self._ready, deque()
        for cb, args in batch:
            self._run(cb, args)

    def _next_timeout(self) -> Optional[float]:
        if self._ready or self._stopping:
            return 0.0
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        if not self._timers:
            return None
        return max(0.0, self._timers[0].when - self.clock())

    def _drain_wakeup(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _run(self, cb: Callback, args: Tuple[Any, ...]) -> None:
        try:
            cb(*args)
        except Exception:
            log.exception("unhandled error in loop callback %r", cb)

    def close(self) -> None:
        for signum in list(self._signal_handlers):
            signal.signal(signum, signal.SIG_DFL)
        if self._signal_handlers:
            signal.set_wakeup_fd(-1)
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

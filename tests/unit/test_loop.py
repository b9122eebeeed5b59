import os
import signal
import threading
import time
from collections import deque
from typing import Any, List

from alter.daemon.loop import EventLoop


def run_until(loop, predicate, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        loop.run_once(max_timeout=0.05)
    assert predicate(), "condition not reached"


def test_timers_fire_in_order_and_cancel():
    loop = EventLoop()
    fired = []
    loop.call_later(0.02, fired.append, "b")
    loop.call_later(0.01, fired.append, "a")
    t = loop.call_later(0.015, fired.append, "cancelled")
    t.cancel()
    run_until(loop, lambda: len(fired) == 2)
    assert fired == ["a", "b"]
    loop.close()


def test_zero_delay_timer_runs_next_iteration():
    loop = EventLoop()
    fired = []
    loop.call_later(0, fired.append, 1)
    loop.run_once(max_timeout=0)
    loop.run_once(max_timeout=0)
    assert fired == [1]
    loop.close()


def test_idle_loop_sleeps_until_timer():
    loop = EventLoop()
    fired = []
    start = time.monotonic()
    loop.call_later(0.2, fired.append, 1)
    cpu0 = time.process_time()
    run_until(loop, lambda: fired)
    assert time.monotonic() - start >= 0.19
    # Sleeping in select(), not spinning: almost no CPU used while waiting.
    assert time.process_time() - cpu0 < 0.05
    loop.close()


def test_reader_callback_and_removal():
    loop = EventLoop()
    r, w = os.pipe()
    got = []

    def on_read():
        got.append(os.read(r, 100))

    loop.add_reader(r, on_read)
    os.write(w, b"hi")
    run_until(loop, lambda: got)
    assert got == [b"hi"]
    loop.remove_reader(r)
    os.write(w, b"more")
    loop.run_once(max_timeout=0.05)
    assert got == [b"hi"]
    os.close(r)
    os.close(w)
    loop.close()


def test_call_soon_threadsafe_wakes_a_sleeping_loop():
    loop = EventLoop()
    got = []
    t = threading.Timer(0.05, loop.call_soon_threadsafe, args=(got.append, "x"))
    t.start()
    start = time.monotonic()
    loop.run_once(max_timeout=5)  # would sleep the full 5 s without the wakeup
    while not got:
        loop.run_once(max_timeout=0.5)
    assert got == ["x"]
    assert time.monotonic() - start < 1.0
    loop.close()


def test_submit_returns_result_and_exception():
    loop = EventLoop()
    th = threading.Thread(target=loop.run)
    th.start()
    try:
        assert loop.submit(lambda a, b: a + b, 2, 3).result(timeout=2) == 5
        fut = loop.submit(lambda: 1 / 0)
        try:
            fut.result(timeout=2)
            raise AssertionError("expected ZeroDivisionError")
        except ZeroDivisionError:
            pass
    finally:
        loop.call_soon_threadsafe(loop.stop)
        th.join(timeout=2)
    assert not th.is_alive()
    loop.close()


def test_callback_exception_does_not_kill_loop(caplog):
    loop = EventLoop()
    got = []
    loop.call_soon(lambda: 1 / 0)
    loop.call_soon(got.append, "after")
    loop.run_once(max_timeout=0)
    assert got == ["after"]
    assert "unhandled error" in caplog.text
    loop.close()


def test_signal_dispatched_on_loop():
    loop = EventLoop()
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append)
    os.kill(os.getpid(), signal.SIGUSR1)
    run_until(loop, lambda: got)
    assert got == [signal.SIGUSR1]
    loop.close()


class Tripwire(deque):  # type: ignore[type-arg]
    """A ready queue that raises SIGUSR1 at its Nth append or clear: the handler then runs right there,
    as a real signal may between any two bytecodes of the loop thread."""

    def __init__(self, fire_at: int) -> None:
        super().__init__()
        self.ops, self.fire_at, self.fired = 0, fire_at, False

    def _op(self) -> None:
        self.ops += 1
        if self.ops == self.fire_at:
            self.fired = True
            signal.raise_signal(signal.SIGUSR1)

    def append(self, item: Any) -> None:
        self._op()
        super().append(item)

    def clear(self) -> None:
        self._op()
        super().clear()


def test_no_signal_is_lost_whenever_it_lands_on_the_ready_queue() -> None:
    """A signal whose dispatch is queued while run_once() takes its ready batch must still be dispatched
    (a lost SIGCHLD left `apm stop` waiting forever for an exit the daemon never saw)."""
    for fire_at in range(1, 6):
        loop = EventLoop()
        seen: List[int] = []
        loop.add_signal_handler(signal.SIGUSR1, seen.append)
        ready = Tripwire(fire_at)
        loop._ready = ready
        try:
            loop.call_soon(lambda: None)
            loop.call_soon(lambda: None)
            for _ in range(4):
                loop.run_once(max_timeout=0.0)
        finally:
            loop.close()
        expected = [signal.SIGUSR1] if ready.fired else []
        assert seen == expected, f"the signal raised at queue operation {fire_at} was dispatched {seen}"

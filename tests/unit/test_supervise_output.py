"""OutputPump on a real EventLoop and a real pipe: every byte delivered in order, busy streams coalesced."""

from __future__ import annotations

import os
import threading
import time
from typing import List

from alter.daemon.loop import EventLoop
from alter.supervise import output
from alter.supervise.output import OutputPump


class Recorder:
    def __init__(self) -> None:
        self.chunks: List[bytes] = []
        self.closed = False

    def feed(self, data: bytes) -> None:
        self.chunks.append(data)

    def close(self) -> None:
        self.closed = True


def run_until(loop: EventLoop, predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        loop.run_once(0.01)


def test_a_stream_of_small_writes_is_read_in_few_big_chunks() -> None:
    loop = EventLoop()
    r, w = os.pipe()
    rec = Recorder()
    pump = OutputPump(loop, r, rec)
    lines = [b"line %06d %s\n" % (i, b"x" * 80) for i in range(20_000)]

    def child() -> None:  # one write() per line, as fast as it can, like an unbuffered logger
        for line in lines:
            os.write(w, line)
        os.close(w)

    writer = threading.Thread(target=child)
    writer.start()
    try:
        run_until(loop, lambda: not pump.open)
    finally:
        writer.join()
        loop.close()
    assert b"".join(rec.chunks) == b"".join(lines) and rec.closed
    # Without coalescing nearly every write is its own read; with it, reads carry many lines each.
    assert len(rec.chunks) < len(lines) / 20, len(rec.chunks)


def test_a_quiet_child_is_read_at_once() -> None:
    loop = EventLoop()
    r, w = os.pipe()
    rec = Recorder()
    pump = OutputPump(loop, r, rec)
    try:
        for i in range(5):
            os.write(w, b"tick %d\n" % i)
            run_until(loop, lambda n=i + 1: len(rec.chunks) == n)
            assert pump._paused is None, i  # a lone line never makes the pump wait for more
            time.sleep(output.BUSY_GAP * 1.5)
    finally:
        os.close(w)
        run_until(loop, lambda: not pump.open)
        loop.close()
    assert rec.chunks == [b"tick %d\n" % i for i in range(5)]


def test_eof_while_paused_still_flushes_and_closes() -> None:
    loop = EventLoop()
    r, w = os.pipe()
    rec = Recorder()
    pump = OutputPump(loop, r, rec)
    os.write(w, b"a\n")
    loop.run_once(0.1)
    os.write(w, b"b\n")
    loop.run_once(0.1)  # second small read right after the first: the pump pauses
    os.write(w, b"partial")
    os.close(w)
    try:
        run_until(loop, lambda: not pump.open)
    finally:
        loop.close()
    assert b"".join(rec.chunks) == b"a\nb\npartial" and rec.closed

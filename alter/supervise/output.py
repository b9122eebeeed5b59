"""Reading an instance's stdout/stderr pipe on the loop and handing bytes to the log.

One `OutputPump` per pipe per attempt.  The read end is non-blocking; each
wake-up reads 64 KiB chunks until EAGAIN (at most 256 KiB per wake-up so one
chatty child cannot starve the loop; select() calls again).  EOF may come
before or after the main pid is reaped (grandchildren can hold the pipe): the
pump lives until EOF, independent of the instance's state, then closes its
writer so a partial last line is flushed.

Coalescing: a child that writes a stream of small writes (one write() per
line) would wake the loop for every few hundred bytes, and the per-wake-up
cost (poll, read, format, write) would dominate.  When a wake-up finds little
data right after the previous one, the pump stops watching the pipe for
COALESCE_DELAY and lets it fill (the pipe is 1 MiB, see linux/spawn.py), so
a busy child is read in big chunks.  A quiet child is never delayed: its
lines are read the moment they arrive.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Optional, Set

from alter.supervise.logsink import StreamWriter

log = logging.getLogger("apm.supervise")

CHUNK = 64 * 1024
MAX_PER_WAKEUP = 4  # chunks
CAPTURE_LIMIT = 8 * 1024
COALESCE_BELOW = 16 * 1024  # a wake-up that read less than this ...
BUSY_GAP = 0.010  # ... this soon after the previous one: the child is streaming small writes
COALESCE_DELAY = 0.005  # then let the pipe fill this long (the most a line waits)


class OutputPump:
    def __init__(
        self,
        loop: Any,
        fd: int,
        writer: StreamWriter,
        capture: int = 0,
        registry: Optional[Set[OutputPump]] = None,
        stream: str = "out",
        on_eof: Optional[Callable[[OutputPump], None]] = None,
    ) -> None:
        self.loop = loop
        self.stream = stream
        self.fd: Optional[int] = fd
        self.writer: Optional[StreamWriter] = writer
        self.capture_limit = capture
        self.captured = bytearray()
        self.registry = registry
        self.on_eof = on_eof
        self._writer_failed = False
        self._last_wake = -1.0
        self._paused: Any = None  # the resume timer while coalescing
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._on_readable)
        if registry is not None:
            registry.add(self)

    @property
    def open(self) -> bool:
        return self.fd is not None

    def _on_readable(self) -> None:
        now = self.loop.time()
        got = self.drain(MAX_PER_WAKEUP)
        if self.fd is not None and got < COALESCE_BELOW and now - self._last_wake < BUSY_GAP:
            self.loop.remove_reader(self.fd)
            self._paused = self.loop.call_later(COALESCE_DELAY, self._resume)
        self._last_wake = now

    def _resume(self) -> None:
        self._paused = None
        if self.fd is None:
            return
        self.loop.add_reader(self.fd, self._on_readable)
        self._last_wake = self.loop.time()
        self.drain(MAX_PER_WAKEUP)

    def drain(self, max_chunks: int = 1 << 30) -> int:
        """Read what is buffered now (until EAGAIN, EOF, or max_chunks); returns the bytes read."""
        total = 0
        for _ in range(max_chunks):
            if self.fd is None:
                return total
            try:
                data = os.read(self.fd, CHUNK)
            except (BlockingIOError, InterruptedError):
                return total
            except OSError as exc:
                log.warning("reading a child's output failed: %s", exc)
                data = b""
            if not data:
                self.close()
                return total
            total += len(data)
            if len(self.captured) < self.capture_limit:
                self.captured += data[: self.capture_limit - len(self.captured)]
            self._feed(data)
        return total

    def _feed(self, data: bytes) -> None:
        if self.writer is None:
            return
        try:
            self.writer.feed(data)
        except Exception:
            if not self._writer_failed:
                log.exception("the log writer failed; output of this stream is dropped until it recovers")
            self._writer_failed = True
        else:
            self._writer_failed = False

    def set_writer(self, writer: StreamWriter) -> None:
        """Switch logs (rename, instance count change): the old writer is closed first."""
        old, self.writer = self.writer, writer
        if old is not None:
            _close_writer(old)

    def close(self) -> None:
        """EOF (or shutdown): stop reading, close the fd and the writer."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        if self._paused is not None:
            self._paused.cancel()
            self._paused = None
        else:
            self.loop.remove_reader(fd)
        try:
            os.close(fd)
        except OSError:
            pass
        writer, self.writer = self.writer, None
        if writer is not None:
            _close_writer(writer)
        if self.registry is not None:
            self.registry.discard(self)
        if self.on_eof is not None:
            self.on_eof(self)


def _close_writer(writer: StreamWriter) -> None:
    try:
        writer.close()
    except Exception:
        log.exception("closing a log writer failed")

"""Byte passthrough between two sockets: raw TCP listeners and WebSockets after the 101.

Each direction is a `Half`.  A half reads its source only while nothing is
waiting to be written to its destination, so a tunnel holds at most one
read's worth (64 KiB, or one pipe's worth with splice) per direction however
fast one side is and however slow the other: backpressure is the kernel's
socket buffers plus that one chunk.

Copy strategy (plain sockets, `use_splice=None`): a message is received into
the process's scratch buffer and sent on at once (recv_into + send: for the
small messages of request/response traffic this is the cheapest path, kernel
side included).  The first read that fills the whole buffer marks a bulk
stream: from then on that half moves its bytes socket -> pipe -> socket with
`os.splice` (Python 3.10+) and they never become Python objects.  TLS on
either side: recv/send.  Half-close is forwarded (EOF from one side becomes
shutdown(SHUT_WR) on the other) except onto a TLS socket, which is closed
instead: a TLS socket cannot keep sending after a TCP-level shutdown.
"""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any, Callable, Optional

from alter.proxy.reactor import IN, OUT, Reactor

CHUNK = 65536
HAVE_SPLICE = hasattr(os, "splice")
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
_splice: Any = getattr(os, "splice", None)
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_NOT_OUT = ~OUT
_HANGUP = ~(OUT | IN)


class Half:
    __slots__ = (
        "src",
        "dst",
        "src_fd",
        "dst_fd",
        "pending",
        "pipe_r",
        "pipe_w",
        "inpipe",
        "eof",
        "shut",
        "tls_src",
        "tls_dst",
        "can_splice",
    )

    def __init__(
        self, src: socket.socket, dst: socket.socket, initial: bytes, splice: bool, can_splice: bool = False
    ) -> None:
        self.src = src
        self.dst = dst
        self.src_fd = src.fileno()
        self.dst_fd = dst.fileno()
        self.pending = initial
        self.tls_src = isinstance(src, ssl.SSLSocket)
        self.tls_dst = isinstance(dst, ssl.SSLSocket)
        self.pipe_r = self.pipe_w = -1
        self.can_splice = can_splice and not splice  # may switch to splice once it sees a bulk stream
        if splice:
            self.start_splice()
        self.inpipe = 0
        self.eof = False
        self.shut = False

    def start_splice(self) -> None:
        self.pipe_r, self.pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.can_splice = False

    @property
    def blocked(self) -> bool:
        return bool(self.pending) or self.inpipe > 0

    @property
    def reading(self) -> bool:
        return not self.eof and not self.pending and not self.inpipe

    def flush(self) -> bool:
        """Write what waits for dst; False on a fatal error."""
        if self.pending:
            try:
                n = self.dst.send(self.pending)
            except _WOULD_BLOCK:
                return True
            except OSError:
                return False
            self.pending = self.pending[n:]
        if self.inpipe:
            try:
                n = os.splice(self.pipe_r, self.dst_fd, self.inpipe, flags=_SPLICE_FLAGS)  # type: ignore[attr-defined]
            except BlockingIOError:
                return True
            except OSError:
                return False
            self.inpipe -= n
        if self.eof and not self.blocked and not self.shut:
            self.shut = True
            if self.tls_dst:
                return False  # cannot half-close TLS: end the tunnel once this side is done
            try:
                self.dst.shutdown(socket.SHUT_WR)
            except OSError:
                return False
        return True

    def pump(self) -> bool:
        """Move bytes src -> dst until src is empty or dst is full; False on a fatal error."""
        for _ in range(16):
            if self.pipe_w >= 0:
                try:
                    n = os.splice(self.src_fd, self.pipe_w, CHUNK, flags=_SPLICE_FLAGS)  # type: ignore[attr-defined]
                except BlockingIOError:
                    return True
                except OSError:
                    return False
                if n == 0:
                    self.eof = True
                    return self.flush()
                self.inpipe += n
                if n < CHUNK:  # the socket is drained: no EAGAIN round trip (epoll is level-triggered)
                    return self.flush()
            else:
                try:
                    data = self.src.recv(CHUNK)
                except _WOULD_BLOCK:
                    return True
                except OSError:
                    return False
                if not data:
                    self.eof = True
                    return self.flush()
                self.pending = data
                if len(data) < CHUNK and not self.tls_src:  # drained (TLS may hold decrypted bytes: loop)
                    return self.flush()
            if not self.flush():
                return False
            if self.blocked:
                return True
            if self.tls_src and not self.src.pending():  # type: ignore[attr-defined]
                return True
        return True

    def close_pipe(self) -> None:
        for fd in (self.pipe_r, self.pipe_w):
            if fd >= 0:
                os.close(fd)
        self.pipe_r = self.pipe_w = -1


class Tunnel:
    """Relays a <-> b until both directions have ended (or either fails)."""

    __slots__ = (
        "reactor",
        "a",
        "b",
        "fa",
        "fb",
        "ab",
        "ba",
        "on_close",
        "closed",
        "deadline",
        "idle",
        "ma",
        "mb",
        "plain",
    )

    def __init__(
        self,
        reactor: Reactor,
        a: socket.socket,
        b: socket.socket,
        to_a: bytes = b"",
        to_b: bytes = b"",
        on_close: Optional[Callable[[Tunnel], Any]] = None,
        idle_timeout: float = 0.0,
        use_splice: Optional[bool] = None,
    ) -> None:
        self.reactor = reactor
        self.a, self.b = a, b
        self.fa, self.fb = a.fileno(), b.fileno()
        plain = not isinstance(a, ssl.SSLSocket) and not isinstance(b, ssl.SSLSocket)
        splice = bool(use_splice) and HAVE_SPLICE and plain
        adaptive = use_splice is None and HAVE_SPLICE and plain
        self.ab = Half(a, b, to_b, splice, adaptive)
        self.ba = Half(b, a, to_a, splice, adaptive)
        self.plain = plain
        self.on_close = on_close
        self.closed = False
        self.idle = idle_timeout
        self.deadline = reactor.now + idle_timeout if idle_timeout else float("inf")
        self.ma = self.mb = -1
        for fd, handler in ((self.fa, self.on_a), (self.fb, self.on_b)):
            if fd in reactor.handlers:
                reactor.set_handler(fd, handler)
            else:
                reactor.add(fd, 0, handler)
        # Push the initial bytes, then start relaying.
        if not self.ab.flush() or not self.ba.flush():
            self.close()
            return
        self.update()
        if self.ab.tls_src and self.a.pending():  # type: ignore[attr-defined]
            reactor.call_soon(self.on_a, IN)

    def update(self) -> None:
        if self.closed:
            return
        ab, ba = self.ab, self.ba
        ab_blocked = ab.pending or ab.inpipe  # (the properties, inlined: this runs on every event)
        ba_blocked = ba.pending or ba.inpipe
        if ab.eof and ba.eof and not ab_blocked and not ba_blocked:
            self.close()
            return
        ma = (0 if ab.eof or ab_blocked else IN) | (OUT if ba_blocked else 0)
        mb = (0 if ba.eof or ba_blocked else IN) | (OUT if ab_blocked else 0)
        if ma != self.ma:
            self.ma = ma
            self.reactor.modify(self.fa, ma)
        if mb != self.mb:
            self.mb = mb
            self.reactor.modify(self.fb, mb)

    def _event(self, ev: int, reader: Half, writer: Half) -> None:
        if self.closed:
            return
        if ev == IN and not (reader.inpipe or reader.eof or writer.pending or writer.inpipe):
            if reader.pipe_w >= 0:
                self._splice_message(reader)
                return
            if self.plain and not reader.pending:
                self._copy_message(reader)
                return
        ok = True
        if ev & OUT and (writer.pending or writer.inpipe):
            ok = writer.flush()
            if ok and writer.tls_src and not writer.blocked:
                self.reactor.call_soon(self._resume, writer)
        reading = not reader.eof and not reader.pending and not reader.inpipe
        if ok and ev & _NOT_OUT and reading:
            ok = reader.pump()
        elif ok and ev & _HANGUP and not reading:
            ok = False  # error/hangup on a side we are not reading: the peer is gone
        if not ok:
            self.close()
            return
        if self.idle:
            self.deadline = self.reactor.now + self.idle
        self.update()

    def _splice_message(self, reader: Half) -> None:
        # The common message (request or response) on a spliced tunnel: one splice in, one splice
        # out, nothing left blocked, so the epoll masks stay as they are and update() is skipped.
        try:
            n = _splice(reader.src_fd, reader.pipe_w, CHUNK, flags=_SPLICE_FLAGS)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        if 0 < n < CHUNK:
            try:
                sent = _splice(reader.pipe_r, reader.dst_fd, n, flags=_SPLICE_FLAGS)
            except BlockingIOError:
                sent = 0
            except OSError:
                self.close()
                return
            if sent == n:
                if self.idle:
                    self.deadline = self.reactor.now + self.idle
                return
            reader.inpipe = n - sent
        elif n == 0:
            reader.eof = True
        else:
            reader.inpipe = n
        self._after_fast(reader, n)

    def _copy_message(self, reader: Half) -> None:
        # The same on the recv_into + send path (see the module docstring).
        buf = self.reactor.scratch
        try:
            n = reader.src.recv_into(buf)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        if 0 < n < CHUNK:
            try:
                sent = reader.dst.send(memoryview(buf)[:n])
            except BlockingIOError:
                sent = 0
            except OSError:
                self.close()
                return
            if sent == n:
                if self.idle:
                    self.deadline = self.reactor.now + self.idle
                return
            reader.pending = bytes(buf[sent:n])
        elif n == 0:
            reader.eof = True
        else:
            reader.pending = bytes(buf)
            if reader.can_splice:
                reader.start_splice()  # a full buffer: a bulk stream, let the kernel move it
        self._after_fast(reader, n)

    def _after_fast(self, reader: Half, n: int) -> None:
        """Finish a fast-path read that left bytes waiting, hit EOF or filled a whole chunk."""
        ok = reader.flush()
        if ok and n == CHUNK and not reader.blocked:
            ok = reader.pump()  # a full chunk: more may be waiting
        if not ok:
            self.close()
            return
        if self.idle:
            self.deadline = self.reactor.now + self.idle
        self.update()

    def _resume(self, half: Half) -> None:
        if not self.closed and half.reading and half.src.pending():  # type: ignore[attr-defined]
            if not half.pump():
                self.close()
                return
            self.update()

    def on_a(self, ev: int) -> None:
        self._event(ev, self.ab, self.ba)

    def on_b(self, ev: int) -> None:
        self._event(ev, self.ba, self.ab)

    def on_timeout(self) -> None:
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for fd, sock in ((self.fa, self.a), (self.fb, self.b)):
            self.reactor.remove(fd)
            try:
                sock.close()
            except OSError:
                pass
        self.ab.close_pipe()
        self.ba.close_pipe()
        if self.on_close is not None:
            self.on_close(self)

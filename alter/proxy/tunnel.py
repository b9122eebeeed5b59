"""Byte passthrough between two sockets: raw TCP listeners and WebSockets after the 101.

Each direction is a `Half`.  A half reads its source only while nothing is
waiting to be written to its destination, so a tunnel holds at most one
read's worth (64 KiB, or one pipe's worth with splice) per direction however
fast one side is and however slow the other: backpressure is the kernel's
socket buffers plus that one chunk.

Copy strategy (plain sockets, `use_splice=None`): a message is read and
written on at once (os.read + os.write: for the small messages of
request/response traffic this is the cheapest path, kernel side included),
with the socket edge-triggered in epoll.  Reads are SMALL (a cheap allocation) until a message
fills one; from then on that half reads whole chunks.  The first read that fills a whole chunk
marks a bulk stream: from then on that half moves its bytes socket -> pipe -> socket with
`os.splice` (Python 3.10+) and they never become Python objects.  TLS on
either side: recv/send.  Half-close is forwarded (EOF from one side becomes
shutdown(SHUT_WR) on the other) except onto a TLS socket, which is closed
instead: a TLS socket cannot keep sending after a TCP-level shutdown.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
from typing import Any, Callable, Optional

from alter.proxy.reactor import IN, OUT, SMALL_READ, Reactor

CHUNK = 65536
SMALL = SMALL_READ  # the fast path's read size until a message fills it (then CHUNK, for good)
HAVE_SPLICE = hasattr(os, "splice")
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
_splice: Any = getattr(os, "splice", None)
# The fast path's calls: os.read/os.write take their arguments without building a tuple (unlike
# socket.recv/send), which is most of what Python adds to the two system calls.
_read = os.read
_write = os.write
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_NOT_OUT = ~OUT
_HANGUP = ~(OUT | IN)
IDLE_STEP = 1.0  # while bytes flow, an idle timeout is checked this often (its precision)
# Edge-triggered while a half copies (recv_into/send): a short read means the socket was drained,
# and epoll does not poll the socket a second time per message.  Not for splice (a pipe can take
# less than the socket holds) nor TLS (the SSL object may hold decrypted bytes).
# With EPOLLRDHUP: a FIN queued behind the bytes is then seen (recv returns the bytes first).
ET = select.EPOLLET | select.EPOLLRDHUP


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
        "tunnel",
        "back",
        "quick",
        "rdhup",
        "busy",
        "size",
    )

    def __init__(
        self, src: socket.socket, dst: socket.socket, initial: bytes, splice: bool, can_splice: bool = False
    ) -> None:
        self.tunnel: Any = None  # set by Tunnel, with back (the opposite direction)
        self.back: Any = None
        self.quick = False  # may take on_event's fast path: a plain tunnel, copying (not splicing), before EOF
        self.busy = False  # the fast path moved bytes since the tunnel last looked (idle timeout)
        self.rdhup = False  # the peer's EOF is queued: read on past a short read until recv says so
        self.size = SMALL  # the fast path's read size: SMALL until a message fills it, then CHUNK
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
        self.quick = False

    def on_event(self, ev: int) -> None:
        """The reactor's handler for this half's source socket.

        The common message on a plain tunnel is handled here in one frame: one os.read, one
        os.write of all of it, nothing left waiting, so the epoll masks stay as they are.
        Everything else (a partial write, EOF, a full chunk, OUT or error events, splice mode,
        TLS, initial bytes still queued) goes through Tunnel.event.
        """
        if ev == IN and self.quick and not self.pending:
            size = self.size
            try:
                data = _read(self.src_fd, size)
            except BlockingIOError:
                return
            except OSError:
                self.tunnel.close()
                return
            n = len(data)
            if 0 < n < size:
                try:
                    sent = _write(self.dst_fd, data)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    self.tunnel.close()
                    return
                if sent == n:
                    self.busy = True
                    return
                self.pending = data[sent:]
            elif n == 0:
                self.eof = True
                self.quick = False
            else:
                self.pending = data
                if size < CHUNK:
                    self.size = CHUNK  # messages bigger than SMALL: whole chunks from now on
                elif self.can_splice:
                    self.start_splice()  # a full chunk: a bulk stream, let the kernel move it
            self.tunnel.after_read(self, n == size)
            return
        self.tunnel.event(ev, self)

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
                    self.quick = False
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
                    self.quick = False
                    return self.flush()
                self.pending = data
                if len(data) < CHUNK and not self.tls_src and not self.rdhup:
                    return self.flush()  # drained (TLS may hold decrypted bytes, an EOF may be queued: loop)
            if not self.flush():
                return False
            if self.blocked:
                return True
            if self.tls_src and not self.src.pending():  # type: ignore[attr-defined]
                return True
        if self.quick:  # edge-triggered and maybe not drained: no new edge will come, so come back
            self.tunnel.reactor.call_soon(self.tunnel.resume, self)
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
        "last",
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
        self.ab = ab = Half(a, b, to_b, splice, adaptive)
        self.ba = ba = Half(b, a, to_a, splice, adaptive)
        for half, back in ((ab, ba), (ba, ab)):
            half.tunnel, half.back = self, back
            half.quick = plain and half.pipe_w < 0
        self.on_close = on_close
        self.closed = False
        self.idle = idle_timeout
        self.last = reactor.now
        self.deadline = reactor.now + min(idle_timeout, IDLE_STEP) if idle_timeout else float("inf")
        self.ma = self.mb = -1
        for fd, handler in ((self.fa, ab.on_event), (self.fb, ba.on_event)):
            if fd in reactor.handlers:
                reactor.set_handler(fd, handler)
            else:
                reactor.add(fd, 0, handler)
        # Push the initial bytes, then start relaying.
        if not ab.flush() or not ba.flush():
            self.close()
            return
        self.update()
        if ab.tls_src and self.a.pending():  # type: ignore[attr-defined]
            reactor.call_soon(ab.on_event, IN)

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
        if ma and ab.quick:
            ma |= ET
        if mb and ba.quick:
            mb |= ET
        if ma != self.ma:
            self.ma = ma
            self.reactor.modify(self.fa, ma)
        if mb != self.mb:
            self.mb = mb
            self.reactor.modify(self.fb, mb)

    def event(self, ev: int, reader: Half) -> None:
        """An event on reader's source that Half.on_event did not handle itself."""
        if self.closed:
            return
        if ev == IN and reader.pipe_w >= 0 and not (reader.inpipe or reader.eof):
            self._splice_message(reader)
            return
        writer = reader.back
        ok = True
        if ev & OUT and (writer.pending or writer.inpipe):
            ok = writer.flush()
            if ok and writer.tls_src and not writer.blocked:
                self.reactor.call_soon(self._resume, writer)
        reading = not reader.eof and not reader.pending and not reader.inpipe
        if ev & _HANGUP:
            reader.rdhup = True
        if ok and ev & _NOT_OUT and reading:
            ok = reader.pump()
        elif ok and ev & _HANGUP and not reading:
            ok = False  # error/hangup on a side we are not reading: the peer is gone
        if not ok:
            self.close()
            return
        reader.busy = True
        self.update()

    def _splice_message(self, reader: Half) -> None:
        # The common message on a spliced tunnel: one splice in, one splice out, nothing left
        # blocked, so the epoll masks stay as they are and update() is skipped.
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
                reader.busy = True
                return
            reader.inpipe = n - sent
        elif n == 0:
            reader.eof = True
        else:
            reader.inpipe = n
        self.after_read(reader, n == CHUNK)

    def after_read(self, reader: Half, full: bool) -> None:
        """Finish a fast-path read that left bytes waiting, hit EOF or filled its buffer."""
        ok = reader.flush()
        if ok and full and not reader.blocked:
            ok = reader.pump()  # the read filled its buffer: more may be waiting
        if not ok:
            self.close()
            return
        reader.busy = True
        self.update()

    def _resume(self, half: Half) -> None:
        if not self.closed and half.reading and half.src.pending():  # type: ignore[attr-defined]
            self.resume(half)

    def resume(self, half: Half) -> None:
        """Read on without an event: TLS bytes already decrypted, or an edge-triggered socket left
        undrained after pump()'s batch."""
        if not self.closed and half.reading:
            if not half.pump():
                self.close()
                return
            self.update()

    def on_timeout(self) -> None:
        """The sweep found the deadline passed: close the tunnel if it has been idle that long.

        Traffic only raises the halves' `busy` flags (the fast path must not do clock
        arithmetic per message), so while bytes flow the tunnel looks every IDLE_STEP.
        """
        now = self.reactor.now
        if self.ab.busy or self.ba.busy:
            self.ab.busy = self.ba.busy = False
            self.last = now
        elif now - self.last >= self.idle:
            self.close()
            return
        self.deadline = now + min(self.idle, IDLE_STEP)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.ab.quick = self.ba.quick = False
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

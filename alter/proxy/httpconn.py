"""One client connection on an http/https/ws/wss listener: parse, police, forward (request half).

Requests on a connection are handled one at a time (pipelined ones wait in the
buffer and are answered in order).  Per request: parse and validate the head
(`http1`), run Vanguard, pick an instance (round-robin), take a pooled upstream
connection or open one, send the rewritten head plus whatever body is already
here, then stream: request body client -> upstream here, the response
upstream -> client in `relay.Relay`.  Each direction reads its source only
while its destination has nothing pending: bounded memory, real backpressure.

This is the proxy's hot path: the common case (a small request in one read, a
pooled connection, a small response in one read) is kept to a few calls.
"""

from __future__ import annotations

import socket
import ssl
from typing import TYPE_CHECKING, Any, Optional

from alter.proxy import forward, guard, http1
from alter.proxy.fast import FastPath
from alter.proxy.http1 import ChunkedScanner, ChunkError, HttpError
from alter.proxy.reactor import IN, OUT, SMALL_READ
from alter.proxy.relay import MAX_TRIES, R_DONE, R_HEAD, Relay
from alter.proxy.upstream import FAIL_HOLD, PEEK_AFTER, UpstreamConn
from alter.proxy.vanguard import client_ip

if TYPE_CHECKING:
    from alter.proxy.site import Listener
    from alter.proxy.upstream import Target
    from alter.proxy.worker import Proc

RECV = 65536
RETRY_MAX = 64 * 1024
MAX_PIPELINE = 64 * 1024
LINGER = 2.0

HS, HEAD, PARK, BODY, WAIT, LINGERING, CLOSED = range(7)
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_NOT_OUT = ~OUT


class HttpConn(FastPath, Relay):
    """A client connection.  FastPath (fast.py) comes first: its on_event and up_readable take the common
    keep-alive exchange and hand everything else to `event` / `up_data` here and in Relay."""

    __slots__ = ()  # every attribute is a slot declared on Relay (one layout for both halves)

    def __init__(self, proc: Proc, lst: Listener, sock: socket.socket, peer: Any, peer_text: str) -> None:
        self.proc = proc
        self.reactor = reactor = proc.reactor
        self.lst = lst
        self.site = lst.site
        self.sock = sock
        self.fd = sock.fileno()
        self.tls = isinstance(sock, ssl.SSLSocket)
        self.peer = self.client = peer
        self.peer_b = peer_text.encode()
        self.cbuf = self.cout = self.rbuf = self.fwd_plain = self.fwd_tail = b""
        self.req = None
        self.up = None
        self.resp = None
        self.rscan = self.scanner = None
        self.replay = None
        self.rstate = R_DONE
        self.rleft = self.left = self.tries = self.blocked = self.lingered = 0
        self.rclose = self.sent_client = self.defer_allow = self.after_flush = self.replaying = False
        self.ka = self.req_done = self.reading = True
        self.rsize = SMALL_READ  # the fast path's read size: SMALL_READ until a request fills it, then RECV
        self.state = HS if self.tls else HEAD
        self.deadline = reactor.now + self.site.header_timeout
        self.mask = IN
        reactor.add(self.fd, IN, self.event if self.tls else self.on_event)  # TLS never takes the fast path
        proc.conns.add(self)
        if self.tls:
            self.handshake()

    # ------------------------------------------------------------------ plumbing

    def set_mask(self) -> None:
        mask = (IN if self.reading else 0) | (OUT if self.cout else 0)
        if mask != self.mask:
            self.mask = mask
            self.reactor.modify(self.fd, mask)

    def pause(self) -> None:
        if self.reading:
            self.reading = False
            self.set_mask()

    def resume(self) -> None:
        if not self.reading and self.state != CLOSED:
            self.reading = True
            self.set_mask()
            if self.tls and self.sock.pending():
                self.reactor.call_soon(self.on_readable)

    def event(self, ev: int) -> None:
        """The client socket's events (the general path; FastPath.on_event takes the common one first)."""
        if self.state == HS:
            self.handshake()
            return
        if ev & OUT and self.cout:
            self.flush()
        if ev & _NOT_OUT and self.state != CLOSED:
            if self.reading:
                self.on_readable()
            elif not ev & IN:
                self.abort()  # hangup/error while paused: the peer is gone

    def handshake(self) -> None:
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self.mask = IN
            self.reactor.modify(self.fd, IN)
            return
        except ssl.SSLWantWriteError:
            self.mask = OUT
            self.reactor.modify(self.fd, OUT)
            return
        except (ssl.SSLError, OSError, ValueError):
            self.site.tls_errors += 1
            self.close()
            return
        self.state = HEAD
        self.reading = True
        self.set_mask()
        if self.sock.pending():
            self.on_readable()

    def on_readable(self) -> None:
        sock = self.sock
        while True:
            try:
                data = sock.recv(RECV)
            except _WOULD_BLOCK:
                return
            except (OSError, ValueError):
                self.abort()
                return
            if not data:
                self.on_eof()
                return
            st = self.state
            if st == HEAD:
                if self.cbuf:
                    self.cbuf += data
                else:
                    self.deadline = self.reactor.now + self.site.header_timeout
                    self.cbuf = data
                self.process()
            elif st == BODY:
                self.body_in(data)
            elif st == LINGERING:
                self.lingered += len(data)
                if self.lingered > 1 << 20:
                    self.close()
                    return
            else:  # WAIT / PARK: a pipelined request arrives early
                self.cbuf += data
                if len(self.cbuf) > MAX_PIPELINE:
                    self.pause()
            if not self.tls or not self.reading or self.state == CLOSED or not sock.pending():
                return

    def on_eof(self) -> None:
        if self.state in (WAIT, PARK) and self.req_done:
            self.ka = False  # half-close: still answer this request, then close
            self.pause()
            return
        self.abort()

    def to_client(self, data: bytes) -> bool:
        self.sent_client = True
        if self.cout:
            self.cout += data
            return False
        try:
            n = self.sock.send(data)
        except _WOULD_BLOCK:
            n = 0
        except (OSError, ValueError):
            self.abort()
            return False
        if n < len(data):
            self.short_send(data, n)
            return False
        return True

    def short_send(self, data: bytes, n: int) -> None:
        """Only `n` bytes of `data` went to the client: keep the rest, wait for EPOLLOUT."""
        self.cout = data[n:]
        self.set_mask()
        up = self.up
        if up is not None and up.mask & IN:
            up.set_mask(up.mask & ~IN)  # stop reading the upstream until the client drains

    def flush(self) -> None:
        try:
            n = self.sock.send(self.cout)
        except _WOULD_BLOCK:
            return
        except (OSError, ValueError):
            self.abort()
            return
        self.cout = self.cout[n:]
        if self.cout:
            if n:
                self.deadline = self.reactor.now + self.site.body_timeout
            return
        self.set_mask()
        up = self.up
        if self.after_flush:
            self.linger()
        elif up is not None and self.rstate != R_DONE:
            up.set_mask(up.mask | IN)
        elif self.state == HEAD:
            self.resume()
            if self.cbuf:
                self.process()

    # ------------------------------------------------------------------ requests

    def process(self) -> None:
        while self.state == HEAD and self.cbuf and not self.cout:
            buf = self.cbuf
            end = buf.find(b"\r\n\r\n")
            if end <= 0:
                if buf.startswith(b"\r\n"):
                    self.cbuf = buf.lstrip(b"\r\n")  # tolerated empty lines before a request line
                    continue
                if len(buf) > http1.MAX_HEAD:
                    self.reject(431, f"request head is larger than {http1.MAX_HEAD} bytes")
                elif http1.BARE_LF.search(buf):
                    self.reject(400, "bare LF in request head")
                return
            try:
                req = http1.parse_request(buf, end)
            except HttpError as exc:
                self.reject(exc.status, exc.message)
                return
            self.start(req)

    def start(self, req: http1.Request) -> None:
        site = self.site
        self.req = req
        site.requests += 1
        if req.method == b"CONNECT":
            self.reject(405, "CONNECT is not supported by this reverse proxy")
            return
        if site.trust_proxy and (req.xff or req.xrealip):
            self.client = client_ip(self.peer, req.xff, req.xrealip)
        else:
            self.client = self.peer
        if site.vanguard is not None and not guard.police(self, req):
            return
        self.dispatch()

    def verdict(self, code: int, why: str) -> None:
        """The owning process's rate-limit answer for a parked request."""
        if self.state != PARK:
            return
        self.state = HEAD
        self.resume()
        if code:
            guard.block(self, code, why)
        else:
            self.dispatch()

    def reject(self, status: int, message: str) -> None:
        self.answer(status, f"{status} {http1.REASONS.get(status, 'Error')}: {message}")

    def answer(self, status: int, body: str, extra: str = "") -> None:
        """Answer the current request ourselves, then close the connection (lingering)."""
        self.site.count_status(status)
        head_only = self.req is not None and self.req.method == b"HEAD"
        self.state = WAIT
        self.to_client(http1.simple_response(status, body, True, extra, head_only))
        if self.state != CLOSED:
            self.close_after_flush()

    def dispatch(self) -> None:
        req = self.req
        assert req is not None
        site = self.site
        now = self.reactor.now
        target = site.balancer.pick(now)
        if target is None:
            self.reject(503, f"worker {site.name!r} has no instance accepting connections")
            return
        buf = self.cbuf
        end = req.end
        if site.plain and not req.rewrite and req.version and req.target[0] == 47:
            head = buf[:end] + (self.fwd_tail or forward.plain_tail(self))
        else:
            head = forward.build_head(self, req)
        start = end + 4
        if req.chunked or req.clen:
            data = self.take_body(req, head, buf, start)
            if not data:
                return
        else:
            self.cbuf = buf[start:] if len(buf) > start else b""
            self.req_done = True
            data = head
        self.replay = data if self.req_done and len(data) <= RETRY_MAX else None
        self.tries = 0
        self.replaying = False
        self.rstate = R_HEAD
        self.rbuf = b""
        self.sent_client = False
        self.state = WAIT if self.req_done else BODY
        self.deadline = now + site.upstream_timeout
        self.attach(target, data)

    def take_body(self, req: http1.Request, head: bytes, buf: bytes, start: int) -> bytes:
        """The body bytes already buffered; sets req_done / left / scanner.  b"" when rejected."""
        if req.chunked:
            scanner = ChunkedScanner()
            self.scanner = scanner
            try:
                stop = scanner.feed(buf, start)
            except ChunkError as exc:
                self.reject(400, str(exc))
                return b""
            self.req_done = stop >= 0
            body = buf[start:stop] if stop >= 0 else buf[start:]
            self.cbuf = buf[stop:] if stop >= 0 else b""
        else:
            self.scanner = None
            clen = req.clen
            avail = len(buf) - start
            if avail >= clen:
                body = buf[start : start + clen]
                self.cbuf = buf[start + clen :]
                self.req_done = True
            else:
                body = buf[start:]
                self.cbuf = b""
                self.left = clen - avail
                self.req_done = False
        return head + body

    def attach(self, target: Target, data: bytes) -> None:
        """Send `data` (head + body so far) to `target` on a pooled or a new connection."""
        reactor = self.reactor
        while True:
            idle = target.idle
            up: Optional[UpstreamConn] = None
            while idle:
                up = idle.pop()
                if reactor.now - up.idle_since > PEEK_AFTER and not up.alive():
                    up.close()
                    up = None
                    continue
                up.reused = True
                break
            if up is None:
                try:
                    up = UpstreamConn(reactor, target)
                except OSError:
                    if not target.probing:
                        target.failures += 1
                        target.failed_until = reactor.now + FAIL_HOLD
                    nxt = self.site.balancer.pick(reactor.now, exclude=target)
                    self.tries += 1
                    if nxt is None or self.tries >= MAX_TRIES:
                        if target.probing:  # a standby that is not listening yet: nothing accepts
                            self.reject(503, f"worker {self.site.name!r} has no instance accepting connections")
                        else:
                            self.fail(502, f"could not connect to any instance of worker {self.site.name!r}")
                        return
                    target = nxt
                    continue
            up.owner = self
            self.up = up
            target.inflight += 1
            target.requests += 1
            if up.connecting or up.out:
                up.out += data
            else:
                try:
                    n = up.sock.send(data)
                except BlockingIOError:
                    n = 0
                except OSError:  # a pooled connection already dead: nothing was accepted, always safe to resend
                    self.release(False)
                    self.tries += 1
                    if self.tries >= MAX_TRIES:
                        self.fail(502, f"instance {target.key} of worker {self.site.name!r} reset the connection")
                        return
                    continue
                if n < len(data):
                    up.out = data[n:]
                    up.set_mask(up.mask | OUT)
            if up.out and self.state == BODY:
                self.pause()
            return

    def body_in(self, data: bytes) -> None:
        """Request body bytes from the client (state BODY)."""
        scanner = self.scanner
        if scanner is not None:
            try:
                end = scanner.feed(data)
            except ChunkError as exc:
                if self.rstate == R_HEAD and not self.sent_client:
                    self.release(False)
                    self.reject(400, str(exc))
                else:
                    self.abort()
                return
            if end >= 0:
                self.cbuf = data[end:]
                data = data[:end]
                self.req_done = True
        elif len(data) >= self.left:
            self.cbuf = data[self.left :]
            data = data[: self.left]
            self.left = 0
            self.req_done = True
        else:
            self.left -= len(data)
        if self.req_done:
            self.state = WAIT
        self.deadline = self.reactor.now + self.site.body_timeout
        up = self.up
        if up is None:
            return  # the response already finished (early answer): discard
        n = up.send(data)
        if n < 0:
            self.up_failed(up, sent=True)
            return
        if up.out:
            self.pause()

    # ------------------------------------------------------------------ timeouts and closing

    def on_timeout(self) -> None:
        st = self.state
        site = self.site
        if st == HEAD and self.cbuf:
            self.reject(408, f"the request head did not arrive within {site.header_timeout:g}s")
        elif st == BODY and self.rstate == R_HEAD and not self.sent_client:
            self.release(False)
            self.reject(408, f"the request body stalled for {site.body_timeout:g}s")
        elif st in (WAIT, BODY) and self.rstate == R_HEAD and self.up is not None and not self.sent_client:
            target = self.up.target
            self.release(False)
            self.fail(
                504, f"instance {target.key} of worker {site.name!r} did not answer within {site.upstream_timeout:g}s"
            )
        elif st == PARK:
            self.deadline = self.reactor.now + 1.0
        else:
            self.abort()

    def close_after_flush(self) -> None:
        if self.cout:
            self.after_flush = True
            self.pause()
        else:
            self.linger()

    def linger(self) -> None:
        """Close politely: stop sending, read and discard for up to LINGER s so no RST eats the response."""
        if self.up is not None:
            self.release(False)
        self.after_flush = False
        self.state = LINGERING
        self.deadline = self.reactor.now + LINGER
        if not self.tls:  # a TLS socket cannot half-close: we sent Connection: close, the client ends it
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self.close()
                return
        self.reading = True
        self.set_mask()

    def abort(self) -> None:
        if self.up is not None:
            self.release(False)
        self.close()

    def close(self) -> None:
        if self.state == CLOSED:
            return
        self.state = CLOSED
        if self.up is not None:
            self.release(False)
        self.reactor.remove(self.fd)
        self.proc.conns.discard(self)
        try:
            self.sock.close()
        except OSError:
            pass
        self.lst.conn_closed()

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<HttpConn fd={self.fd} state={self.state} peer={self.peer_b.decode()}>"

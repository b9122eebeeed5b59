"""The fast path of an HTTP client connection: the common keep-alive exchange in two methods.

Most proxied traffic is one small request per client read and one small
response per upstream read on a pooled connection.  For that case the general
path (httpconn.py: on_event -> on_readable -> process -> parse_request ->
start -> dispatch -> attach; relay.py: up_readable -> resp_head -> to_client
-> finish -> release) walks about fifteen Python functions per request.  Here
the same work is inlined:

* `on_event`: one client read holding exactly one complete request head, no
  body, that `http1.FAST_HEAD` matches (HTTP/1.1, origin-form target, exactly
  one Host, none of the headers the proxy acts on: no Content-Length,
  Transfer-Encoding, Connection, Upgrade, Expect, forwarding or hop-by-hop
  headers), at most MAX_LINE bytes -> parse, Vanguard (guard.police, the same
  function), round-robin pick, the forwarded head (one concatenation, or
  forward.build_head for trace_header / lowercase_hdrs), pooled connection,
  send.
* `up_readable`: one upstream read holding a whole response whose head is in
  the per-worker head cache (so it was parsed and stripped before) and whose
  body is complete (Content-Length, chunked, or none) -> relay to the client,
  return the connection to the pool, wait for the next request.

Every check that fails hands the bytes to the general path at a point where
nothing has changed yet (`event` / `up_data` / `dispatch` / `attach`), so the
general path's behaviour, counters, logs and smuggling defences apply
unchanged; the fast path only ever takes inputs the general one would treat
the same way (tests/unit/test_proxy_fastpath.py compares both byte for byte).
TLS connections never come here (their handler is `event`).
"""

from __future__ import annotations

import os
import ssl
from typing import TYPE_CHECKING, Any, Callable, Optional

from alter.proxy import forward, guard
from alter.proxy.chunked import scan_chunked
from alter.proxy.http1 import FAST_HEAD, MAX_HEADERS, MAX_LINE, Request
from alter.proxy.reactor import IN, OUT
from alter.proxy.upstream import PEEK_AFTER, POOL_MAX

if TYPE_CHECKING:
    from alter.proxy.reactor import Reactor
    from alter.proxy.site import Listener, Site
    from alter.proxy.upstream import Target, UpstreamConn
    from alter.proxy.worker import Proc

HEAD, WAIT = 1, 4  # HttpConn states (httpconn.py)
R_HEAD, R_DONE = 0, 2  # response states (relay.py)
RECV = 65536
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
# The plain sockets' reads and writes go through their fds: os.read/os.write take their arguments
# without the argument tuple socket.recv/send build (about 700 instructions a call, as in tunnel.py).
# Tests route them to fake sockets (alter.proxy.testing.FakeFds).
_read = os.read
_write = os.write
_MATCH = FAST_HEAD.fullmatch
_HEX = b"0123456789abcdefABCDEF"
_MANY = 4 * MAX_HEADERS  # a head shorter than this cannot hold too many header lines (parse_request)
_MAX_CRLF = MAX_HEADERS + 2  # CRLFs in a head with MAX_HEADERS header lines: + request line + blank line


class FastPath:
    """Mixed into HttpConn ahead of Relay (all slots live on Relay)."""

    if not TYPE_CHECKING:  # (hidden from mypy, which would want the attributes below as slots here)
        __slots__ = ()

    # Provided by HttpConn / Relay (declared for the type checker).
    proc: Proc
    reactor: Reactor
    site: Site
    lst: Listener
    sock: Any
    state: int
    reading: bool
    cbuf: bytes
    cout: bytes
    deadline: float
    req: Optional[Request]
    client: Any
    peer: Any
    up: Optional[UpstreamConn]
    rstate: int
    rbuf: bytes
    resp: Any
    ka: bool
    req_done: bool
    replay: Optional[bytes]
    tries: int
    rsize: int
    fd: int
    tls: bool
    replaying: bool
    sent_client: bool
    fwd_tail: bytes

    event: Callable[[int], None]
    on_eof: Callable[[], None]
    abort: Callable[[], None]
    process: Callable[[], None]
    dispatch: Callable[[], None]
    attach: Callable[[Target, bytes], None]
    release: Callable[[bool], None]
    resume: Callable[[], None]
    short_send: Callable[[bytes, int], None]
    up_failed: Callable[..., None]
    up_data: Callable[[bytes], None]

    def on_event(self, ev: int) -> None:
        """The client socket's reactor callback (plain TCP): a whole plain request forwarded in one go."""
        if ev != IN or self.state != HEAD or self.cbuf or self.cout or not self.reading:
            self.event(ev)
            return
        size = self.rsize
        try:
            data = _read(self.fd, size)
        except BlockingIOError:
            return
        except (OSError, ValueError):
            self.abort()
            return
        stop = len(data)
        full = stop == size < RECV
        if full:
            self.rsize = RECV  # requests bigger than SMALL_READ: whole reads from now on (the rest: general path)
        m = _MATCH(data) if stop <= MAX_LINE and not full else None  # the whole read is one head, nothing after it
        if m is None or (stop > _MANY and data.count(b"\r\n") > _MAX_CRLF):
            # on_readable's HEAD state with nothing buffered, for anything else (or EOF)
            if not data:
                self.on_eof()
                return
            self.deadline = self.reactor.now + self.site.header_timeout
            self.cbuf = data
            self.process()
            return
        method, target, host = m.groups()
        reactor = self.reactor
        site = self.site
        if method == b"CONNECT":  # 405, from the general path
            self.deadline = reactor.now + site.header_timeout
            self.cbuf = data
            self.process()
            return
        # parse_request's common case
        req = Request()
        req.method = method
        req.target = target
        req.line_end = m.end(2) + 11  # + " HTTP/1.1\r\n"
        req.end = end = stop - 4
        req.host = host.strip(b" \t")
        # start(): nothing to resolve (no X-Forwarded-For / X-Real-IP), Vanguard as usual
        self.req = req
        site.requests += 1
        self.client = self.peer
        if site.vanguard is not None:
            self.deadline = reactor.now + site.header_timeout
            self.cbuf = data
            if not guard.police(self, req):  # type: ignore[arg-type]
                return
        # dispatch() + attach() for the common case: the next live target, a pooled connection that was
        # in use moments ago.  Anything else: dispatch() from here (the round-robin is not advanced yet).
        now = reactor.now
        bal = site.balancer
        live = bal.live
        n = len(live)
        if n:
            rr = bal.rr + 1
            if rr >= n:
                rr = 0
            t = live[rr]
            idle = t.idle
            if t.failed_until > now or not idle or now - idle[-1].idle_since > PEEK_AFTER:
                n = 0
        if not n:
            self.deadline = now + site.header_timeout
            self.cbuf = data
            self.dispatch()
            return
        bal.rr = rr
        if site.plain:
            head = data[:end] + (self.fwd_tail or forward.plain_tail(self))  # type: ignore[arg-type]
        else:
            self.cbuf = data
            head = forward.build_head(self, req)  # type: ignore[arg-type]
        self.cbuf = b""
        self.req_done = True
        self.replay = head  # at most MAX_LINE + the forwarding headers: always within RETRY_MAX
        self.tries = 0
        self.replaying = False
        self.rstate = R_HEAD
        self.rbuf = b""
        self.sent_client = False
        self.state = WAIT
        self.deadline = now + site.upstream_timeout
        up = idle.pop()
        up.reused = True
        up.owner = self
        self.up = up
        t.inflight += 1
        t.requests += 1
        try:
            k = _write(up.fd, head)
        except BlockingIOError:
            k = 0
        except OSError:  # a pooled connection already dead: attach() retries as it does
            self.release(False)
            self.tries = 1
            self.attach(t, head)
            return
        if k < len(head):
            up.out = head[k:]
            up.set_mask(up.mask | OUT)

    def up_readable(self) -> None:
        """The upstream's reactor callback (via UpstreamConn.on_event): a whole known response relayed."""
        up = self.up
        if up is None:
            return
        want = up.rsize
        try:
            data = _read(up.fd, want)
        except BlockingIOError:
            return
        except OSError:
            self.up_failed(up, True)
            return
        if len(data) == want < RECV:
            up.rsize = RECV  # responses bigger than SMALL_READ: whole reads from now on
            self.up_data(data)  # the general path reads the rest
            return
        end = data.find(b"\r\n\r\n")
        site = self.site
        hit = site.resp_heads.get(data[:end]) if end > 0 and self.rstate == R_HEAD else None
        req = self.req
        if (
            hit is None or self.rbuf or self.cout or req is None or not req.version or req.method == b"HEAD"
            or not req.keep_alive or not self.ka or not self.req_done or site.keep_alive <= 0
        ):  # fmt: skip
            self.up_data(data)
            return
        resp, _, out = hit  # cached: a final status (not 101), its hop-by-hop headers gone
        start = end + 4
        n = len(data)
        if resp.chunked:  # relayed as it came: the client is HTTP/1.1
            # The usual small body: one chunk then the last chunk, ending the read.  Else scan_chunked.
            i = data.find(b"\r\n", start, start + 18)
            size = data[start:i]
            if (
                i > start and not size.strip(_HEX) and data.endswith(b"\r\n0\r\n\r\n")
                and i + int(size, 16) + 9 == n and size.strip(b"0")
            ):  # fmt: skip
                stop = n
            else:
                stop = scan_chunked(data, start)
                if stop < 0:
                    self.up_data(data)
                    return
        elif resp.clen >= 0:
            stop = start + resp.clen
            if stop > n:
                self.up_data(data)
                return
        elif resp.body:  # ends when the upstream closes: the client connection will close too
            self.up_data(data)
            return
        else:
            stop = start
        # resp_head()
        status = resp.status
        counts = site.status
        counts[status] = counts.get(status, 0) + 1
        self.resp = resp
        if stop > start:
            out += data[start:stop]
        # to_client()
        self.sent_client = True
        try:
            k = self.sock.send(out) if self.tls else _write(self.fd, out)
        except _WOULD_BLOCK:
            k = 0
        except (OSError, ValueError):
            self.abort()
            return
        if k < len(out):
            self.short_send(out, k)
        # finish() + release()
        self.up = None
        target = up.target
        target.inflight -= 1
        up.owner = None
        gone = target.draining or target.removed
        now = self.reactor.now
        if stop == n and not resp.close and not up.out and not gone and len(target.idle) < POOL_MAX:
            up.idle_since = now
            up.reused = False
            if up.mask != IN:
                up.set_mask(IN)
            target.idle.append(up)
        else:
            up.close()
        if gone:
            self.proc.drain_changed(site, target)
        self.rstate = R_DONE
        self.state = HEAD
        self.req = None
        self.deadline = now + site.keep_alive
        if not self.cout:
            if not self.reading:
                self.resume()
            if self.cbuf:
                self.process()

"""The response half of an HTTP client connection: upstream events, relaying the answer, retries.

`Relay` is mixed into `HttpConn` (httpconn.py holds the request half and the
connection plumbing).  Failure rules, in order of what has happened:

* connect refused -> the next live instance (nothing was sent);
* a pooled connection found closed before any response byte -> the request is
  replayed on a fresh connection when that is safe: the socket accepted
  nothing, or the method is idempotent and the whole request is still held
  (up to RETRY_MAX bytes);
* anything else before the response head -> 502 for this request only;
  no response head within upstream_timeout -> 504;
* after the head went out, a failure can only close the client connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from alter.proxy import http1
from alter.proxy.http1 import IDEMPOTENT, ChunkedScanner, ChunkError
from alter.proxy.reactor import IN
from alter.proxy.tunnel import Tunnel
from alter.proxy.upstream import FAIL_HOLD, POOL_MAX

if TYPE_CHECKING:
    from alter.proxy.reactor import Reactor
    from alter.proxy.site import Listener, Site
    from alter.proxy.upstream import Target, UpstreamConn
    from alter.proxy.worker import Proc

RECV = 65536
MAX_TRIES = 3
HEAD_CACHE = 64  # response heads remembered per worker per proxy process
R_HEAD, R_BODY, R_DONE = range(3)
_HOP = http1.RESP_HOP


class Relay:
    # The slots of the whole connection object (HttpConn adds none): declared here so that both
    # halves assign only to slots.
    __slots__ = (
        "proc", "reactor", "site", "lst", "sock", "fd", "tls", "peer", "peer_b", "state", "mask", "reading", "cbuf",
        "cout", "deadline", "req", "client", "up", "rstate", "rbuf", "resp", "rleft", "rscan", "rclose", "ka",
        "left", "scanner", "req_done", "replay", "tries", "sent_client", "blocked", "defer_allow", "after_flush",
        "fwd_plain", "fwd_tail", "lingered", "replaying", "rsize",
    )  # fmt: skip

    # Provided by HttpConn (declared for the type checker).
    proc: Proc
    reactor: Reactor
    site: Site
    lst: Listener
    sock: Any
    state: int
    req: Optional[http1.Request]
    up: Optional[UpstreamConn]
    rstate: int
    rbuf: bytes
    resp: Optional[http1.Response]
    rleft: int
    rscan: Optional[ChunkedScanner]
    scanner: Optional[ChunkedScanner]
    rclose: bool
    ka: bool
    req_done: bool
    replay: Optional[bytes]
    tries: int
    blocked: int
    client: Any
    peer: Any
    peer_b: bytes
    defer_allow: bool
    fwd_plain: bytes
    fwd_tail: bytes
    replaying: bool
    sent_client: bool
    cbuf: bytes
    cout: bytes
    rsize: int
    reading: bool
    deadline: float

    to_client: Callable[[bytes], bool]
    reject: Callable[[int, str], None]
    abort: Callable[[], None]
    close_after_flush: Callable[[], None]
    resume: Callable[[], None]
    process: Callable[[], None]
    attach: Callable[[Target, bytes], None]

    # ------------------------------------------------------------------ upstream callbacks

    def up_drained(self) -> None:
        if self.state == 3:  # BODY: the upload may continue
            self.resume()

    def up_connect_failed(self, up: UpstreamConn, err: int) -> None:
        target = up.target
        if not target.probing:
            target.failures += 1
            target.failed_until = self.reactor.now + FAIL_HOLD
        data = up.out
        self.release(False)
        self.tries += 1
        nxt = self.site.balancer.pick(self.reactor.now, exclude=target)
        if (nxt is None or self.tries >= MAX_TRIES) and target.probing and not self.replaying:
            self.reject(503, f"worker {self.site.name!r} has no instance accepting connections")
            return
        if nxt is None or self.tries >= MAX_TRIES or self.replaying:
            # A replay that finds its instance gone stops here: the request may be what killed it,
            # and sending it on would take the next instance down too ("query of death").
            what = "closed the connection before answering, then refused" if self.replaying else "refused"
            self.fail(502, f"instance {target.key} of worker {self.site.name!r} {what} the connection")
            return
        self.attach(nxt, data)

    def up_failed(self, up: UpstreamConn, sent: bool) -> None:
        """The upstream connection broke (reset, EOF) before the response was complete."""
        target = up.target
        if self.rstate == R_HEAD and not self.rbuf and not self.sent_client:
            req = self.req
            safe = up.reused and self.replay is not None and (not sent or req is not None and req.method in IDEMPOTENT)
            self.release(False)
            if safe and self.tries < MAX_TRIES and self.replay is not None:
                # Most likely the instance closed an idle keep-alive connection just as we reused it:
                # replay on a fresh connection to the same instance.
                self.tries += 1
                self.replaying = True
                nxt = target if not (target.removed or target.draining) else self.site.balancer.pick(self.reactor.now)
                if nxt is not None:
                    self.attach(nxt, self.replay)
                    return
            target.failures += 1
            self.fail(502, f"instance {target.key} of worker {self.site.name!r} closed the connection before answering")
            return
        self.release(False)
        if self.rstate == R_HEAD and not self.sent_client:
            self.fail(502, f"instance {target.key} of worker {self.site.name!r} sent an incomplete response head")
            return
        self.abort()  # the response was already under way: all we can do is cut the connection

    def fail(self, status: int, message: str) -> None:
        self.site.upstream_errors += 1
        if self.state != 6:  # CLOSED
            self.reject(status, message)

    def up_readable(self) -> None:
        up = self.up
        if up is None:
            return
        try:
            data = up.sock.recv(RECV)
        except BlockingIOError:
            return
        except OSError:
            self.up_failed(up, sent=True)
            return
        self.up_data(data)

    def up_data(self, data: bytes) -> None:
        """What one upstream read brought (b"": EOF).  fast.py's up_readable comes here for all but the
        common case."""
        if not data:
            if self.rstate == R_BODY and self.rclose:
                self.rclose = False
                self.finish(False)
            else:
                up = self.up
                assert up is not None  # both callers read from it
                self.up_failed(up, sent=True)
            return
        rstate = self.rstate
        if rstate == R_HEAD:
            if self.rbuf:
                data = self.rbuf + data
                self.rbuf = b""
            self.resp_head(data)
        elif rstate == R_BODY:
            self.resp_body(data)
        else:
            self.release(False)  # bytes after a complete response: the connection is not reusable

    # ------------------------------------------------------------------ the response

    def resp_head(self, data: bytes) -> None:
        req = self.req
        assert req is not None
        site = self.site
        heads = site.resp_heads
        while True:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > http1.MAX_HEAD:
                    self.bad_gateway(f"response head is larger than {http1.MAX_HEAD} bytes")
                else:
                    self.rbuf = data
                return
            # An instance sends the same head again and again (only Date changes, once a second): its
            # parse and hop-by-hop stripping are remembered, keyed by the exact bytes.
            raw = data[:end]
            hit = heads.get(raw)
            if hit is not None and req.method != b"HEAD":
                resp, head, _ = hit
                break
            try:
                resp = http1.parse_response(data, end, req.method == b"HEAD")
            except http1.BadResponse as exc:
                self.bad_gateway(str(exc))
                return
            if resp.status >= 200 or resp.status == 101:
                head = _HOP.sub(b"", raw)
                if resp.drop:
                    head = http1.strip_headers(head, resp.drop, _HOP)
                if resp.status != 101 and req.method != b"HEAD":  # parsed differently: never cached
                    if len(heads) >= HEAD_CACHE:
                        heads.clear()
                    heads[raw] = (resp, head, head + b"\r\n\r\n")  # the last: as fast.py relays it
                break
            if req.version == 1:  # interim (100 Continue, 103...): relay to HTTP/1.1 clients
                self.to_client(data[: end + 4])
                if self.state == 6:
                    return
            data = data[end + 4 :]
            if not data:
                return
        status = resp.status
        counts = site.status
        counts[status] = counts.get(status, 0) + 1
        self.resp = resp
        if status == 101:
            if req.upgrade != b"websocket":
                self.bad_gateway("unexpected 101 Switching Protocols")
                return
            self.to_tunnel(head + b"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" + data[end + 4 :])
            return
        ka = self.ka and req.keep_alive and site.keep_alive > 0
        decode = resp.chunked and req.version == 0
        if decode or (resp.body and not resp.chunked and resp.clen < 0):
            ka = False
        self.ka = ka
        if decode:
            head = http1.strip_headers(head, [b"transfer-encoding"], _HOP)
        if ka:
            head += b"\r\n\r\n" if req.version == 1 else b"\r\nConnection: keep-alive\r\n\r\n"
        else:
            head += b"\r\nConnection: close\r\n\r\n"
        self.rstate = R_BODY
        self.rclose = False
        self.rscan = None
        start = end + 4
        n = len(data)
        if not resp.body:
            self.to_client(head)
            if self.state != 6:
                self.finish(n == start)
            return
        if resp.chunked:
            if not decode:
                stop = http1.scan_chunked(data, start)
                if stop >= 0:  # the whole body is here (the common small response)
                    self.to_client(head + data[start:stop])
                    if self.state != 6:
                        self.finish(stop == n)
                    return
            self.rscan = ChunkedScanner(decode=decode)
        elif resp.clen >= 0:
            clen = resp.clen
            if n - start >= clen:
                self.to_client(head + data[start : start + clen] if clen else head)
                if self.state != 6:
                    self.finish(n - start == clen)
                return
            self.rleft = clen
        else:
            self.rclose = True
        self.deadline = self.reactor.now + site.body_timeout
        self.resp_body(data[start:], head)

    def resp_body(self, data: bytes, head: bytes = b"") -> None:
        done = False
        clean = True
        scan = self.rscan
        if scan is not None:
            try:
                end = scan.feed(data)
            except ChunkError as exc:
                self.bad_gateway(str(exc), mid=not head)
                return
            if end >= 0:
                done = True
                clean = end == len(data)
                data = data[:end]
            if scan.decode:
                data = b"".join(scan.out)
                scan.out.clear()
        elif not self.rclose:
            n = len(data)
            if n >= self.rleft:
                done = True
                clean = n == self.rleft
                if not clean:
                    data = data[: self.rleft]
                self.rleft = 0
            else:
                self.rleft -= n
        if head:
            data = head + data
        if data:
            self.to_client(data)
            if self.state == 6:
                return
        if done:
            self.finish(clean)
        elif self.up is not None:
            self.deadline = self.reactor.now + self.site.body_timeout

    def bad_gateway(self, message: str, mid: bool = False) -> None:
        target = self.up.target if self.up is not None else None
        self.release(False)
        if mid or self.sent_client:
            self.abort()
            return
        where = f"instance {target.key} of worker {self.site.name!r}" if target else f"worker {self.site.name!r}"
        self.fail(502, f"{where} sent an invalid response: {message}")

    def finish(self, reusable: bool) -> None:
        """The response is complete (as far as the upstream side goes)."""
        resp = self.resp
        self.release(reusable and self.req_done and resp is not None and not resp.close)
        self.rstate = R_DONE
        if not self.req_done:
            self.ka = False  # answered before the upload finished: the rest of the body cannot be skipped safely
        if not self.ka:
            self.close_after_flush()
            return
        self.state = 1  # HEAD
        self.req = None
        self.deadline = self.reactor.now + self.site.keep_alive
        if not self.cout:
            if not self.reading:
                self.resume()
            if self.cbuf:
                self.process()

    def release(self, reusable: bool) -> None:
        up = self.up
        if up is None:
            return
        self.up = None
        target = up.target
        target.inflight -= 1
        up.owner = None
        if reusable and not up.out and not target.draining and not target.removed and len(target.idle) < POOL_MAX:
            up.idle_since = self.reactor.now
            up.reused = False
            if up.mask != IN:
                up.set_mask(IN)
            target.idle.append(up)
        else:
            up.close()
        if target.draining or target.removed:
            self.proc.drain_changed(self.site, target)

    def to_tunnel(self, to_client: bytes) -> None:
        """The 101 answer is in: hand both sockets to a Tunnel (WebSocket bytes pass through)."""
        up = self.up
        assert up is not None
        proc, site, lst = self.proc, self.site, self.lst
        target = up.target
        self.up = None
        target.inflight -= 1
        target.tunnels += 1
        up.owner = None
        up.closed = True  # the tunnel owns the socket now
        self.state = 6
        proc.conns.discard(self)

        def on_close(tunnel: Tunnel) -> None:
            target.tunnels -= 1
            proc.conns.discard(tunnel)
            lst.conn_closed()
            if target.draining or target.removed:
                proc.drain_changed(site, target)

        tunnel = Tunnel(proc.reactor, self.sock, up.sock, to_a=to_client, to_b=self.cbuf, on_close=on_close,
                        idle_timeout=site.tunnel_idle)  # fmt: skip
        if not tunnel.closed:
            proc.conns.add(tunnel)

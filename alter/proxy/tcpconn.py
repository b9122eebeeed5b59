"""One client connection on a tcp:// listener: (TLS handshake), Vanguard, connect, then a Tunnel.

Balancing is per connection.  The client's bytes are not read until the
upstream connection is up (they wait in the kernel), so nothing is buffered
here.  Connect refused -> the next live instance; none left -> reset.
"""

from __future__ import annotations

import socket
import ssl
from typing import TYPE_CHECKING, Any, Optional

from alter.proxy.reactor import IN, OUT
from alter.proxy.tunnel import Tunnel
from alter.proxy.upstream import FAIL_HOLD, UpstreamConn
from alter.proxy.vanguard import ip_text, owner_of

if TYPE_CHECKING:
    from alter.proxy.site import Listener
    from alter.proxy.upstream import Target
    from alter.proxy.worker import Proc

HS, PARK, CONNECT, DONE = range(4)


class TcpConn:
    __slots__ = ("proc", "lst", "site", "sock", "fd", "peer", "state", "up", "tries", "deadline", "tls")

    def __init__(self, proc: Proc, lst: Listener, sock: socket.socket, peer: Any) -> None:
        self.proc = proc
        self.lst = lst
        self.site = lst.site
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.up: Optional[UpstreamConn] = None
        self.tries = 0
        self.tls = isinstance(sock, ssl.SSLSocket)
        self.state = HS if self.tls else CONNECT
        self.deadline = proc.reactor.now + self.site.header_timeout
        proc.conns.add(self)
        proc.reactor.add(self.fd, IN if self.tls else 0, self.on_event)
        if self.tls:
            self.handshake()
        else:
            self.admit()

    def on_event(self, ev: int) -> None:
        if self.state == HS:
            self.handshake()
        elif ev & ~(IN | OUT):
            self.close()

    def handshake(self) -> None:
        try:
            self.sock.do_handshake()  # type: ignore[attr-defined]
        except ssl.SSLWantReadError:
            self.proc.reactor.modify(self.fd, IN)
            return
        except ssl.SSLWantWriteError:
            self.proc.reactor.modify(self.fd, OUT)
            return
        except (ssl.SSLError, OSError, ValueError):
            self.site.tls_errors += 1
            self.close()
            return
        self.proc.reactor.modify(self.fd, 0)
        self.admit()

    def admit(self) -> None:
        vg = self.site.vanguard
        if vg is not None and vg.rules.rate is not None:
            proc = self.proc
            owner = owner_of(self.peer, proc.count)
            if owner != proc.index and proc.peers is not None:
                self.state = PARK
                proc.peers.ask(owner, self.site.name, self.peer, self)
                return
            code, why = vg.consume(self.peer)
            if code:
                self.verdict(code, why)
                return
        self.connect(None)

    def verdict(self, code: int, why: str) -> None:
        if self.state == DONE:
            return
        if code:
            vg = self.site.vanguard
            if vg is not None:
                vg.count(why)
                if vg.rules.log:
                    self.proc.log(self.site.name, f"vanguard: drop {why} {ip_text(self.peer)} ({self.lst.id})")
            self.close(reset=True)
            return
        self.connect(None)

    def connect(self, exclude: Optional[Target]) -> None:
        reactor = self.proc.reactor
        self.state = CONNECT
        self.deadline = reactor.now + self.site.connect_timeout
        while self.tries < 3:
            target = self.site.balancer.pick(reactor.now, exclude=exclude)
            if target is None:
                break
            self.tries += 1
            try:
                up = UpstreamConn(reactor, target)
            except OSError:
                target.failures += 1
                target.failed_until = reactor.now + FAIL_HOLD
                exclude = target
                continue
            up.owner = self
            self.up = up
            target.inflight += 1
            if not up.connecting:
                self.up_drained()
            return
        self.site.upstream_errors += 1
        self.close(reset=True)

    # UpstreamConn callbacks ---------------------------------------------------

    def up_connect_failed(self, up: UpstreamConn, err: int) -> None:
        target = up.target
        target.failures += 1
        target.failed_until = self.proc.reactor.now + FAIL_HOLD
        self.drop_up()
        self.connect(target)

    def up_drained(self) -> None:
        """Connected: from here on a Tunnel relays the bytes."""
        up = self.up
        if up is None or self.state != CONNECT:
            return
        proc, site, lst = self.proc, self.site, self.lst
        target = up.target
        self.up = None
        target.inflight -= 1
        target.tunnels += 1
        target.requests += 1
        site.requests += 1
        up.owner = None
        up.closed = True
        self.state = DONE
        proc.conns.discard(self)

        def on_close(tunnel: Tunnel) -> None:
            target.tunnels -= 1
            proc.conns.discard(tunnel)
            lst.conn_closed()
            if target.draining or target.removed:
                proc.drain_changed(site, target)

        tunnel = Tunnel(proc.reactor, self.sock, up.sock, on_close=on_close, idle_timeout=site.tunnel_idle)
        if not tunnel.closed:
            proc.conns.add(tunnel)

    def up_failed(self, up: UpstreamConn, sent: bool) -> None:
        self.drop_up()
        self.close(reset=True)

    def up_readable(self) -> None:  # pragma: no cover - the tunnel takes over before any read
        pass

    def drop_up(self) -> None:
        up = self.up
        if up is not None:
            self.up = None
            up.target.inflight -= 1
            up.owner = None
            up.close()
            if up.target.draining or up.target.removed:
                self.proc.drain_changed(self.site, up.target)

    def on_timeout(self) -> None:
        if self.state == PARK:
            self.deadline = self.proc.reactor.now + 1.0
            return
        self.drop_up()
        self.close(reset=self.state == CONNECT)

    def close(self, reset: bool = False) -> None:
        if self.state == DONE:
            return
        self.state = DONE
        self.drop_up()
        self.proc.conns.discard(self)
        self.proc.reactor.remove(self.fd)
        if reset and not self.tls:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.lst.conn_closed()

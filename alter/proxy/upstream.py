"""Upstreams as one proxy process sees them: targets, the round-robin balancer, pooled connections.

A `Target` is one instance's address (today an instance's loopback port; an
IPC-connector target -- sessions over an instance's stdin/stdout frames --
will be a second `Target` kind whose `acquire()` hands out a session object
with the same `send()/owner/close()` surface as `UpstreamConn`, so the
balancer and the HTTP/TCP connection code do not change).

The balancer hands out targets round-robin among *live* ones (accepting, not
draining).  A target whose connect was refused is skipped for FAIL_HOLD
seconds unless every target is in that state.  Each target keeps a LIFO pool
of idle keep-alive connections; idle connections stay registered for reads so
an upstream closing one is noticed (and it leaves the pool) at once, and one
idle longer than PEEK_AFTER is checked with MSG_PEEK before reuse.
"""

from __future__ import annotations

import errno
import socket
from typing import Any, Dict, List, Optional

from alter.proxy.reactor import IN, OUT, SMALL_READ, Reactor

FAIL_HOLD = 1.0
PEEK_AFTER = 0.5
POOL_IDLE = 30.0  # close pooled connections unused this long
POOL_MAX = 256  # idle connections kept per target per process


class Target:
    """One upstream instance (host:port) in one proxy process."""

    __slots__ = (
        "index", "host", "port", "addr", "family", "draining", "removed", "idle", "inflight", "tunnels",
        "requests", "failures", "failed_until", "kind", "probing",
    )  # fmt: skip

    def __init__(self, index: int, host: str, port: int, kind: str = "port") -> None:
        self.index = index
        self.host = host
        self.port = port
        self.kind = kind
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.addr = (host, port)
        self.draining = False
        self.removed = False
        self.probing = False  # started, not admitted yet: tried only when no target is live (see Balancer)
        self.idle: List[UpstreamConn] = []
        self.inflight = 0  # HTTP exchanges in progress
        self.tunnels = 0  # WebSocket / TCP tunnels open
        self.requests = 0
        self.failures = 0
        self.failed_until = 0.0

    @property
    def key(self) -> str:
        return f"{self.host}:{self.port}"

    def acquire(self, now: float) -> Optional[UpstreamConn]:
        """A pooled connection that still looks alive, or None."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if now - conn.idle_since > PEEK_AFTER and not conn.alive():
                conn.close()
                continue
            conn.reused = True
            return conn
        return None

    def close_idle(self, older_than: float = -1.0, now: float = 0.0) -> None:
        keep = []
        for conn in self.idle:
            if older_than < 0 or now - conn.idle_since > older_than:
                conn.close()
            else:
                keep.append(conn)
        self.idle = keep

    def snapshot(self) -> Dict[str, Any]:
        return {
            "index": self.index,
            "host": self.host,
            "port": self.port,
            "state": "draining" if self.draining else "probing" if self.probing else "live",
            "inflight": self.inflight,
            "tunnels": self.tunnels,
            "active": self.inflight + self.tunnels,
            "idle": len(self.idle),
            "requests": self.requests,
            "failures": self.failures,
        }


class Balancer:
    """Round-robin over live targets (per request for HTTP, per connection for TCP/WS).

    Targets still being probed (the daemon started the instance, its admission probe has not connected
    yet) are a standby list: used only while no target is live, so a request arriving between "the
    program listens" and "the probe noticed" is served instead of answered 503.  A standby target that
    refuses the connection is not up yet: when every one refuses, the answer is 503 (nothing accepts).
    """

    def __init__(self) -> None:
        self.targets: Dict[str, Target] = {}
        self.live: List[Target] = []
        self.standby: List[Target] = []
        self.rr = 0

    def update(self, specs: List[Dict[str, Any]]) -> List[Target]:
        """Apply the manager's list [{index, host, port, state: live|draining}]; return removed targets."""
        seen: Dict[str, Target] = {}
        for spec in specs:
            key = f"{spec['host']}:{spec['port']}"
            target = self.targets.get(key)
            if target is None:
                target = Target(int(spec["index"]), str(spec["host"]), int(spec["port"]), spec.get("kind", "port"))
            target.index = int(spec["index"])
            state = spec.get("state")
            target.draining = state == "draining"
            target.probing = state == "probing"
            if target.draining:
                target.close_idle()
            seen[key] = target
        removed = [t for k, t in self.targets.items() if seen.get(k) is not t]
        for t in removed:
            t.removed = True
            t.close_idle()
        self.targets = seen
        ordered = sorted(seen.values(), key=lambda t: (t.index, t.port))
        self.live = [t for t in ordered if not t.draining and not t.probing]
        self.standby = [t for t in ordered if t.probing]
        return removed

    def pick(self, now: float, exclude: Optional[Target] = None) -> Optional[Target]:
        live = self.live
        n = len(live)
        if n == 0:
            live = [t for t in self.standby if t is not exclude]
            if not live:
                return None
            self.rr = (self.rr + 1) % len(live)
            return live[self.rr]
        rr = self.rr + 1
        if rr >= n:
            rr = 0
        t = live[rr]
        if t is not exclude and t.failed_until <= now:  # the common case: the next one is fine
            self.rr = rr
            return t
        fallback = None
        for _ in range(n):
            self.rr = (self.rr + 1) % n
            t = live[self.rr]
            if t is exclude:
                continue
            if t.failed_until <= now:
                return t
            if fallback is None:
                fallback = t
        return fallback


class UpstreamConn:
    """One TCP connection to a target.  `owner` is the client connection it serves (None when pooled)."""

    __slots__ = (
        "reactor",
        "sock",
        "fd",
        "target",
        "owner",
        "out",
        "connecting",
        "idle_since",
        "reused",
        "mask",
        "closed",
        "rsize",
    )

    def __init__(self, reactor: Reactor, target: Target) -> None:
        self.reactor = reactor
        self.target = target
        self.owner: Any = None
        self.out = b""
        self.reused = False
        self.idle_since = 0.0
        self.closed = False
        self.rsize = SMALL_READ  # fast.py's response read size: SMALL_READ until a response fills it
        sock = socket.socket(target.family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex(target.addr)
        except OSError:
            sock.close()
            raise
        if err not in (0, errno.EINPROGRESS, errno.EAGAIN):
            sock.close()
            raise OSError(err, f"connect to {target.host}:{target.port}: {errno.errorcode.get(err, err)}")
        self.sock = sock
        self.fd = sock.fileno()
        self.connecting = err != 0
        self.mask = OUT if self.connecting else IN
        reactor.add(self.fd, self.mask, self.on_event)

    def set_mask(self, mask: int) -> None:
        if mask != self.mask and not self.closed:
            self.mask = mask
            self.reactor.modify(self.fd, mask)

    def alive(self) -> bool:
        try:
            self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True  # nothing to read: still open
        except OSError:
            pass
        return False  # EOF, an error, or unsolicited bytes on an idle connection: unusable either way

    def send(self, data: bytes) -> int:
        """Send or queue; returns bytes accepted now (-1 on error).  Queued bytes go out on EPOLLOUT."""
        if self.connecting or self.out:
            self.out += data
            return 0
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            return -1
        if n < len(data):
            self.out = data[n:]
            self.set_mask(self.mask | OUT)
        return n

    def on_event(self, ev: int) -> None:
        owner = self.owner
        if ev == IN and owner is not None and not self.connecting:  # the common case: the response
            owner.up_readable()
            return
        if owner is None:  # idle in the pool: any event means it is finished
            if self in self.target.idle:
                self.target.idle.remove(self)
            self.close()
            return
        if self.connecting:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                owner.up_connect_failed(self, err)
                return
            if not ev & OUT:
                return
            self.connecting = False
            self.set_mask(IN)
            if self.out:
                data, self.out = self.out, b""
                if self.send(data) < 0:
                    owner.up_failed(self, sent=False)
                    return
            if not self.out:
                owner.up_drained()
            return
        if ev & OUT and self.out:
            data, self.out = self.out, b""
            n = self.send(data)
            if n < 0:
                owner.up_failed(self, sent=True)
                return
            if not self.out:
                self.set_mask(self.mask & ~OUT)
                owner.up_drained()
        if ev & ~OUT and self.owner is owner:
            owner.up_readable()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.owner = None
        self.reactor.remove(self.fd)
        try:
            self.sock.close()
        except OSError:
            pass

"""The request head an instance receives: what the proxy adds, replaces and removes.

* X-Forwarded-For: the client's list plus the socket peer when trust_proxy is
  on, else just the peer; X-Real-IP: the resolved client IP (vanguard.client_ip);
  X-Forwarded-Proto: kept from a trusted front proxy, else http/https;
  Forwarded (RFC 7239): appended to / replaced the same way.
* Hop-by-hop headers go (Connection and the headers it names, Keep-Alive,
  Proxy-Connection, TE, Upgrade, HTTP2-Settings); a WebSocket upgrade gets
  `Connection: Upgrade` + `Upgrade: websocket` back.
* The trace header (trace_header) is replaced by a fresh unique id; with
  lowercase_hdrs every header name is lowercased.
* HTTP/1.0 and absolute-form requests go out as HTTP/1.1 in origin-form, with
  a Host header when the client sent none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alter.proxy import http1
from alter.proxy.vanguard import ip_text

if TYPE_CHECKING:
    from alter.proxy.httpconn import HttpConn


def plain_headers(self: HttpConn) -> bytes:
    """X-Forwarded-For / X-Real-IP / X-Forwarded-Proto / Forwarded when nothing came in (per connection)."""
    peer = self.peer_b
    proto = self.lst.proto
    fwd_for = peer if b":" not in peer else b'"[' + peer + b']"'
    self.fwd_plain = (
        b"\r\nX-Forwarded-For: " + peer + b"\r\nX-Real-IP: " + peer + b"\r\nX-Forwarded-Proto: " + proto
        + b"\r\nForwarded: for=" + fwd_for + b";proto=" + proto
    )  # fmt: skip
    return self.fwd_plain


def plain_tail(self: HttpConn) -> bytes:
    """plain_headers plus the blank line ending the head: what follows a plain head's last header line."""
    self.fwd_tail = (self.fwd_plain or plain_headers(self)) + b"\r\n\r\n"
    return self.fwd_tail


def forwarding_headers(self: HttpConn, req: http1.Request) -> bytes:
    if not self.site.trust_proxy or not (req.xff or req.xrealip or req.xfproto or req.forwarded):
        return self.fwd_plain or plain_headers(self)
    peer = self.peer_b
    proto = self.lst.proto
    fwd_for = peer if b":" not in peer else b'"[' + peer + b']"'
    xff = req.xff + b", " + peer if req.xff else peer
    fwd = b"for=" + fwd_for + b";proto=" + proto
    if req.forwarded:
        fwd = req.forwarded + b", " + fwd
    return (
        b"\r\nX-Forwarded-For: " + xff + b"\r\nX-Real-IP: " + ip_text(self.client).encode()
        + b"\r\nX-Forwarded-Proto: " + (req.xfproto or proto) + b"\r\nForwarded: " + fwd
    )  # fmt: skip


def build_head(self: HttpConn, req: http1.Request) -> bytes:
    """The head sent upstream: hop-by-hop and forwarding headers replaced, HTTP/1.1, origin-form."""
    site = self.site
    head = self.cbuf[: req.end]
    if req.version == 0 or req.target[0] != 47:
        target = req.target
        if target[0] != 47 and target != b"*":
            rest = target.split(b"://", 1)[1]
            slash = rest.find(b"/")
            target = rest[slash:] if slash >= 0 else b"/"
        head = req.method + b" " + target + b" HTTP/1.1" + head[req.line_end - 2 :]
        if req.host is None:
            head += b"\r\nHost: " + self.lst.host_header
    if req.rewrite:
        head = http1.strip_request_hop(head, req.drop)
    if site.trace_re is not None:
        head = site.trace_re.sub(b"", head)
    head += forwarding_headers(self, req)
    if site.trace is not None:
        head += site.trace + self.proc.trace_id()
    if req.upgrade == b"websocket":
        head += b"\r\nConnection: Upgrade\r\nUpgrade: websocket"
    if site.lowercase:
        head = http1.lowercase_names(head)
    return head + b"\r\n\r\n"

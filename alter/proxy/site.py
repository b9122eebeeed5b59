"""A worker as one proxy process serves it: options, Vanguard, balancer, listeners, counters."""

from __future__ import annotations

import errno
import socket
import struct
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from alter.proxy import http1
from alter.proxy.httpconn import HttpConn
from alter.proxy.model import resolve_options
from alter.proxy.reactor import IN
from alter.proxy.tcpconn import TcpConn
from alter.proxy.upstream import Balancer
from alter.proxy.vanguard import DROP, Rules, Vanguard, canonical_ip, ip_text, parse_ip

if TYPE_CHECKING:
    from alter.proxy.tls import TlsHolder
    from alter.proxy.worker import Proc

_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


class Site:
    def __init__(self, proc: Proc, name: str) -> None:
        self.proc = proc
        self.name = name
        self.balancer = Balancer()
        self.listeners: Dict[str, Listener] = {}
        self.vanguard: Optional[Vanguard] = None
        self._vg_config: Any = None
        self.trace: Optional[bytes] = None
        self.trace_re: Any = None
        self.requests = 0
        self.status: Dict[int, int] = {}
        self.resp_heads: Dict[bytes, Any] = {}  # head -> (Response, head to relay, + CRLFCRLF): relay
        self.conns_active = 0
        self.conns_total = 0
        self.tls_errors = 0
        self.upstream_errors = 0
        self.refused = 0  # connections turned away by max_conns
        self.apply_options({})

    def apply_options(self, raw: Dict[str, Any]) -> None:
        o = resolve_options(raw)
        self.keep_alive = o["keep_alive"] / 1000.0
        self.header_timeout = o["header_timeout"] / 1000.0
        self.body_timeout = o["body_timeout"] / 1000.0
        self.upstream_timeout = o["upstream_timeout"] / 1000.0
        self.tunnel_idle = o["tunnel_idle"] / 1000.0
        self.connect_timeout = o["connect_timeout"] / 1000.0
        self.trust_proxy = bool(o["trust_proxy"])
        self.lowercase = bool(o["lowercase_hdrs"])
        self.max_conns = int(o["max_conns"])
        name = o["trace_header"]
        self.trace = (f"\r\n{name}: ").encode("latin-1") if name else None
        self.trace_re = http1.header_pattern(name) if name else None
        self.plain = self.trace is None and not self.lowercase  # fast path: forward the head as it came

    def configure(self, msg: Dict[str, Any], socks: List[socket.socket]) -> None:
        """Apply a configure message; `socks` (this process's listening sockets) are ours to keep or close."""
        proc = self.proc
        self.apply_options(msg.get("options") or {})
        vg_cfg = msg.get("vanguard")
        if vg_cfg != self._vg_config or self.vanguard is None and vg_cfg:
            rules = Rules(vg_cfg)
            old = self.vanguard
            self.vanguard = Vanguard(self.name, rules) if rules.active else None
            if self.vanguard is not None and old is not None:
                self.vanguard.bans.update(old.bans)
                self.vanguard.counters.update(old.counters)
                self.vanguard.bans_total = old.bans_total
            self._vg_config = vg_cfg
        if self.vanguard is not None:
            for ip, remaining_ms in msg.get("bans") or []:
                key = parse_ip(ip)
                if key is not None and key not in self.vanguard.bans:
                    self.vanguard.ban(key, remaining_ms / 1000.0)
        for lst in self.listeners.values():
            lst.close()
        self.listeners = {}
        for spec, sock in zip(msg.get("listeners") or [], socks):
            sock.setblocking(False)
            tls = None
            if spec.get("tls"):
                t = spec["tls"]
                try:
                    tls = proc.tls.get(t["cert"], t["key"], t.get("ca"), alpn=spec["scheme"] != "tcp")
                except (OSError, ValueError) as exc:  # the files changed since the daemon checked them
                    proc.log(self.name, f"proxy: not serving {spec['id']}: cannot load TLS files: {exc}", "error")
                    sock.close()
                    continue
            self.listeners[spec["id"]] = Listener(proc, self, spec, sock, tls)
        for sock in socks[len(msg.get("listeners") or []) :]:
            sock.close()

    def count_status(self, status: int) -> None:
        self.status[status] = self.status.get(status, 0) + 1

    def close(self) -> None:
        for lst in self.listeners.values():
            lst.close()
        self.listeners = {}
        self.balancer.update([])  # marks every target removed: old connections now get 503

    def snapshot(self) -> Dict[str, Any]:
        return {
            "conns_active": self.conns_active,
            "conns_total": self.conns_total,
            "requests": self.requests,
            "status": {str(k): v for k, v in self.status.items()},
            "tls_errors": self.tls_errors,
            "upstream_errors": self.upstream_errors,
            "refused": self.refused,
            "upstreams": {t.key: t.snapshot() for t in self.balancer.targets.values()},
            "listeners": {lid: {"active": lst.active, "total": lst.total} for lid, lst in self.listeners.items()},
            "vanguard": self.vanguard.snapshot() if self.vanguard is not None else None,
        }


class Listener:
    """One `server` address in this process: accepts and hands connections to HttpConn / TcpConn."""

    def __init__(
        self, proc: Proc, site: Site, spec: Dict[str, Any], sock: socket.socket, tls: Optional[TlsHolder]
    ) -> None:
        self.proc = proc
        self.site = site
        self.id = spec["id"]
        self.scheme = spec["scheme"]
        self.tcp = self.scheme == "tcp"
        self.proto = b"https" if self.scheme in ("https", "wss") or (tls is not None and not self.tcp) else b"http"
        host = spec.get("host") or "127.0.0.1"
        self.host_header = (f"[{host}]:{spec['port']}" if ":" in host else f"{host}:{spec['port']}").encode()
        self.sock = sock
        self.fd = sock.fileno()
        self.tls = tls
        self.slot = int(spec.get("slot", -1))
        self.max_conns = int(spec.get("max_conns") or 0)
        self.active = 0
        self.total = 0
        self.closed = False
        proc.reactor.add(self.fd, IN, self.on_accept)

    def on_accept(self, ev: int) -> None:
        proc = self.proc
        site = self.site
        for _ in range(64):
            try:
                sock, addr = self.sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    proc.log(site.name, f"proxy: cannot accept on {self.id}: {exc.strerror} (pausing 100 ms)", "error")
                    proc.reactor.modify(self.fd, 0)
                    proc.reactor.call_later(0.1, self.resume)
                return
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            peer_text = canonical_ip(addr[0])
            peer = parse_ip(peer_text) or (4, 0)
            if self.max_conns and not proc.slots_acquire(self.slot, self.max_conns):
                site.refused += 1
                self.turn_away(sock)
                continue
            verdict, why, defer = PASSED
            vg = site.vanguard
            if vg is not None:
                verdict, why, defer = vg.accept(peer, not self.tcp, site.trust_proxy)
                if verdict == DROP:
                    vg.count(why)
                    if vg.rules.log:
                        proc.log(site.name, f"vanguard: drop {why} {ip_text(peer)} ({self.id})")
                    if self.max_conns:
                        proc.slots_release(self.slot)
                    reset(sock)
                    continue
            self.active += 1
            self.total += 1
            site.conns_active += 1
            site.conns_total += 1
            if self.tls is not None:
                try:
                    sock = self.tls.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                except (OSError, ValueError):
                    site.tls_errors += 1
                    sock.close()
                    self.conn_closed()
                    continue
            if self.tcp:
                TcpConn(proc, self, sock, peer)
            else:
                conn = HttpConn(proc, self, sock, peer, peer_text)
                if verdict:
                    conn.blocked = verdict
                conn.defer_allow = defer

    def turn_away(self, sock: socket.socket) -> None:
        """max_conns reached: HTTP gets a short 503, TCP a reset."""
        if not self.tcp and self.tls is None:
            try:
                sock.send(
                    http1.simple_response(
                        503, f"503 Service Unavailable: worker {self.site.name!r} is at max_conns ({self.max_conns})"
                    )
                )
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            sock.close()
        else:
            reset(sock)

    def resume(self) -> None:
        if not self.closed:
            self.proc.reactor.modify(self.fd, IN)

    def conn_closed(self) -> None:
        self.active -= 1
        self.site.conns_active -= 1
        if self.max_conns:
            self.proc.slots_release(self.slot)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.proc.reactor.remove(self.fd)
        self.sock.close()


PASSED = (0, "", False)


def reset(sock: socket.socket) -> None:
    """Close with RST (the manual's silent close for blocked TCP clients)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
    except OSError:
        pass
    sock.close()

"""Listening sockets for N proxy processes: one SO_REUSEPORT group per listener, bound by the daemon.

The daemon binds N sockets per listener (socket K goes to proxy process K) and
keeps them open, so a proxy process that restarts gets the very same socket
back, with the connections that queued meanwhile, and the group's order never
changes (the kernel indexes a reuseport group in listen() order).

By default the kernel spreads connections over the group by a hash of the
4-tuple.  When a worker's Vanguard keeps per-IP state (rate_limit), a classic
BPF program (SO_ATTACH_REUSEPORT_CBPF) picks socket `source_ip mod N`
instead -- IPv4 source address, or the last 32 bits of an IPv6 one; a
dual-stack socket sees IPv4 clients as IPv4 packets, so mapped addresses hash
like plain IPv4 -- and every IP's bucket and bans live in exactly one process
(see `vanguard.owner_of`, the same arithmetic).
"""

from __future__ import annotations

import ctypes
import socket
import struct
from typing import List

SO_ATTACH_REUSEPORT_CBPF = 51
SO_DETACH_REUSEPORT_BPF = 68
SKF_NET_OFF = -0x100000
BACKLOG = 4096


def _ins(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)


def ip_hash_program(count: int) -> bytes:
    """cBPF: A = IPv4 src (or low 32 bits of IPv6 src); return A % count."""
    return b"".join(
        [
            _ins(0x30, 0, 0, SKF_NET_OFF),  # ldb [net+0]      version/IHL byte
            _ins(0x74, 0, 0, 4),  # rsh #4
            _ins(0x15, 0, 2, 4),  # jeq #4 ? v4 : v6
            _ins(0x20, 0, 0, SKF_NET_OFF + 12),  # ld [net+12]   IPv4 source
            _ins(0x05, 0, 0, 1),  # ja +1
            _ins(0x20, 0, 0, SKF_NET_OFF + 20),  # ld [net+20]   IPv6 source, last 4 bytes
            _ins(0x94, 0, 0, count),  # mod #count
            _ins(0x16, 0, 0, 0),  # ret a
        ]
    )


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _set_program(sock: socket.socket, code: bytes) -> None:
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, bytes(prog))


def attach_ip_hash(sock: socket.socket, count: int) -> bool:
    """Steer the group by client IP; False when the kernel refuses (then the 4-tuple hash stays)."""
    try:
        _set_program(sock, ip_hash_program(count))
    except OSError:
        return False
    return True


def detach(sock: socket.socket) -> None:
    """Back to the kernel's 4-tuple hash."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, 0)
    except OSError:
        # Older kernels: a program returning an out-of-range index makes the kernel fall back to its hash.
        try:
            _set_program(sock, _ins(0x06, 0, 0, 0xFFFFFFFF))
        except OSError:
            pass


def bind_group(host: str, port: int, count: int) -> List[socket.socket]:
    """N listening sockets on host:port in one reuseport group (raises OSError, closing what it opened)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks: List[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(family, socket.SOCK_STREAM)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and host in ("::", ""):
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind((host, port))
            s.listen(BACKLOG)
            s.setblocking(False)
    except OSError:
        for s in socks:
            s.close()
        raise
    return socks

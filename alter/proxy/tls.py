"""TLS server contexts: TLS 1.2+, ALPN http/1.1, optional client certificates, hot reload.

One `TlsHolder` per (cert, key, ca, alpn) in a proxy process.  Listeners read
`holder.ctx` for every new connection; `check()` (every few seconds) rebuilds
the context when any of the files changed on disk (size, mtime or inode) and
swaps it in, so new connections get the new certificate while established
ones keep the context they were accepted with.  A file caught half-written
fails to load: the old context stays and the next check tries again.

SNI: one certificate per listener; the server name a client sends is accepted
whatever it is (no SNI callback rejects it), so SNI clients work unchanged.
"""

from __future__ import annotations

import os
import ssl
from typing import Dict, List, Optional, Tuple

Stamp = Tuple[Tuple[int, int, int], ...]


def make_context(cert: str, key: Optional[str], ca: Optional[str], alpn: bool) -> ssl.SSLContext:
    """A server context; raises ssl.SSLError / OSError with the file problem."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    ctx.load_cert_chain(cert, key or None)
    if ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=ca)
    if alpn:
        ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def file_stamp(paths: List[str]) -> Stamp:
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError:
            out.append((-1, 0, 0))
    return tuple(out)


class TlsHolder:
    def __init__(self, cert: str, key: Optional[str], ca: Optional[str], alpn: bool) -> None:
        self.cert, self.key, self.ca, self.alpn = cert, key, ca, alpn
        self.paths = [p for p in (cert, key, ca) if p]
        self.stamp = file_stamp(self.paths)
        self.ctx = make_context(cert, key, ca, alpn)
        self.reloads = 0
        self.failed_stamp: Optional[Stamp] = None

    def check(self) -> Optional[str]:
        """Reload when the files changed; returns a message to log (or None)."""
        stamp = file_stamp(self.paths)
        if stamp == self.stamp or stamp == self.failed_stamp:
            return None
        try:
            ctx = make_context(self.cert, self.key, self.ca, self.alpn)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.failed_stamp = stamp
            return f"TLS: cannot reload {self.cert}: {exc} (keeping the previous certificate)"
        self.ctx = ctx
        self.stamp = stamp
        self.failed_stamp = None
        self.reloads += 1
        return f"TLS: reloaded {self.cert}"


class TlsCache:
    def __init__(self) -> None:
        self.holders: Dict[Tuple[str, Optional[str], Optional[str], bool], TlsHolder] = {}

    def get(self, cert: str, key: Optional[str], ca: Optional[str], alpn: bool) -> TlsHolder:
        k = (cert, key, ca, alpn)
        holder = self.holders.get(k)
        if holder is None:
            holder = self.holders[k] = TlsHolder(cert, key, ca, alpn)
        return holder

    def check(self) -> List[str]:
        return [msg for msg in (h.check() for h in self.holders.values()) if msg]

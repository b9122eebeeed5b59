"""Vanguard for one HTTP request on a connection (the accept-time checks are in site.Listener).

Order: ban_ip / deferred allow_ip on the resolved client IP, ban_method then
allow_method, ban_path, then the rate limit -- asked of the process that owns
the client IP when that is another one (the request is parked meanwhile, see
peers.py).  A block is answered here (403 / 405 / 429 / 400), logged when the
worker's vanguard `log` is on, counted, and the connection closes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alter.proxy import http1
from alter.proxy.vanguard import describe_path, ip_text, owner_of

if TYPE_CHECKING:
    from alter.proxy.httpconn import HttpConn

PARK = 2  # HttpConn state: waiting for the owning process's verdict


def police(self: HttpConn, req: http1.Request) -> bool:
    """Vanguard for one request: False when it was answered (blocked) or parked."""
    site = self.site
    vg = site.vanguard
    assert vg is not None
    if self.blocked:
        block(self, self.blocked, "ban_ip")
        return False
    code, why = vg.check_ip(self.client, self.peer, self.defer_allow)
    if not code:
        code, why = vg.check_method(req.method)
    if not code:
        code, why = vg.check_path(req.target)
    if not code and vg.rules.rate is not None:
        proc = self.proc
        owner = owner_of(self.client, proc.count)
        if owner != proc.index and proc.peers is not None:
            self.state = PARK
            self.pause()
            proc.peers.ask(owner, site.name, self.client, self)
            return False
        code, why = vg.consume(self.client)
    if code:
        block(self, code, why)
        return False
    return True


def block(self: HttpConn, code: int, why: str) -> None:
    req = self.req
    vg = self.site.vanguard
    assert req is not None and vg is not None
    vg.count(why)
    if vg.rules.log:
        self.proc.log(
            self.site.name,
            f"vanguard: {code} {why} {ip_text(self.client)} {req.method.decode('latin-1')} "
            f"{describe_path(req.target)[:200]}",
        )
    extra = ""
    if code == 405 and vg.rules.allow_header:
        extra = f"Allow: {vg.rules.allow_header}\r\n"
    elif code == 429:
        extra = "Retry-After: 1\r\n"
    body = {403: vg.rules.ban_response, 405: "Method Not Allowed", 429: "Too Many Requests"}.get(code, "Bad Request")
    self.answer(code, body, extra)

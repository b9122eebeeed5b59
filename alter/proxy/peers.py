"""Exact Vanguard rate limits across proxy processes: ask the process that owns the client IP.

Every client IP has one owning process, `owner_of(ip) = ip mod N` (low 32
bits) -- the same arithmetic as the reuseport BPF program, so for a client
connecting directly the owner is always the process that accepted it and
nothing is asked.  When the IP comes from X-Forwarded-For (trust_proxy) it can
belong to another process: the request is parked and the owner is asked,
over a unix datagram socketpair per process (the daemon creates them once,
each process gets its own inbox and every process's outbox, so restarts keep
the same pipes).  The owner applies its bucket / ban and answers.  No answer
within ASK_TIMEOUT (owner restarting or overloaded) -> this process decides
with its own Vanguard state and logs that once.

Wire format (ASCII, one datagram): `Q <from> <seq> <worker> <4|6> <int>` and
`R <seq> <code> <reason>`.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from alter.proxy.reactor import IN, Reactor
from alter.proxy.vanguard import PASS, IpKey

if TYPE_CHECKING:
    from alter.proxy.site import Site

ASK_TIMEOUT = 0.25


class Peers:
    def __init__(
        self,
        reactor: Reactor,
        index: int,
        inbox_fd: int,
        outbox_fds: List[int],
        site_of: Callable[[str], Optional[Site]],
        log: Callable[[str, str, str], None],
    ) -> None:
        self.reactor = reactor
        self.index = index
        self.inbox = socket.socket(fileno=inbox_fd)
        self.inbox.setblocking(False)
        self.outboxes = [socket.socket(fileno=fd) for fd in outbox_fds]
        for s in self.outboxes:
            s.setblocking(False)
        self.site_of = site_of
        self.log = log
        self.seq = 0
        self.pending: Dict[int, Tuple[Any, str, IpKey, float]] = {}
        self.asked = 0
        self.answered = 0
        self.fallbacks = 0
        self._warned = False
        reactor.add(self.inbox.fileno(), IN, self.on_inbox)

    def ask(self, owner: int, worker: str, ip: IpKey, conn: Any) -> None:
        self.seq += 1
        seq = self.seq
        msg = b"Q %d %d %s %d %d" % (self.index, seq, worker.encode(), ip[0], ip[1])
        try:
            self.outboxes[owner].send(msg)
        except OSError:
            self.reactor.call_soon(self.decide_locally, conn, worker, ip)
            return
        self.asked += 1
        self.pending[seq] = (conn, worker, ip, self.reactor.now + ASK_TIMEOUT)

    def decide_locally(self, conn: Any, worker: str, ip: IpKey) -> None:
        self.fallbacks += 1
        if not self._warned:
            self._warned = True
            self.log(
                worker,
                "vanguard: another proxy process did not answer in time; deciding rate limits locally",
                "warning",
            )
        site = self.site_of(worker)
        vg = site.vanguard if site is not None else None
        code, why = vg.consume(ip) if vg is not None else (PASS, "")
        conn.verdict(code, why)

    def on_inbox(self, ev: int) -> None:
        for _ in range(256):
            try:
                data = self.inbox.recv(512)
            except BlockingIOError:
                return
            except OSError:
                return
            parts = data.split(b" ", 4)
            try:
                if parts[0] == b"Q" and len(parts) == 5:
                    sender, seq = int(parts[1]), int(parts[2])
                    worker, rest = parts[3].decode(), parts[4].split(b" ")
                    ip = (int(rest[0]), int(rest[1]))
                    site = self.site_of(worker)
                    vg = site.vanguard if site is not None else None
                    code, why = vg.consume(ip) if vg is not None else (PASS, "")
                    reply = b"R %d %d %s" % (seq, code, why.encode() or b"-")
                    if 0 <= sender < len(self.outboxes):
                        try:
                            self.outboxes[sender].send(reply)
                        except OSError:
                            pass
                elif parts[0] == b"R" and len(parts) >= 4:
                    entry = self.pending.pop(int(parts[1]), None)
                    if entry is not None:
                        self.answered += 1
                        why = b" ".join(parts[3:]).decode()
                        entry[0].verdict(int(parts[2]), "" if why == "-" else why)
            except (ValueError, IndexError):
                continue

    def sweep(self, now: float) -> None:
        late = [seq for seq, entry in self.pending.items() if entry[3] <= now]
        for seq in late:
            conn, worker, ip, _ = self.pending.pop(seq)
            self.decide_locally(conn, worker, ip)

    def snapshot(self) -> Dict[str, int]:
        return {"asked": self.asked, "answered": self.answered, "fallbacks": self.fallbacks}

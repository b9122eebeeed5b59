"""A proxy process: `python -m alter.proxy.worker --index K --count N --control FD ...`.

Started by the daemon's ProxyManager, one per CPU by default.  It owns socket
K of every listener's SO_REUSEPORT group (the fds arrive over the control
channel), runs its own epoll loop, and reports stats, drain progress and log
lines back.  It dies with the daemon: PR_SET_PDEATHSIG(SIGKILL), a parent
check right after setting it, and EOF on the control channel all end it.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import resource
import signal
import socket
import sys
from typing import Any, Dict, List, Optional, Set

from alter.proxy.control import Channel, Message
from alter.proxy.peers import Peers
from alter.proxy.reactor import IN, OUT, Reactor
from alter.proxy.site import Site
from alter.proxy.slots import ConnSlots
from alter.proxy.tls import TlsCache

log = logging.getLogger("apm.proxy")

SWEEP = 0.25
STATS_EVERY = 1.0
TLS_CHECK_EVERY = 2.0
LOG_RATE = 200  # log lines per second per proxy process


class Proc:
    def __init__(self, index: int, count: int, control_fd: int, inbox_fd: int = -1, outbox_fds: Optional[List[int]] = None,
                 slots_fd: int = -1) -> None:  # fmt: skip
        self.index = index
        self.count = count
        self.reactor = Reactor()
        self.sites: Dict[str, Site] = {}
        self.conns: Set[Any] = set()
        self.tls = TlsCache()
        self.channel = Channel(socket.socket(fileno=control_fd))
        self.reactor.add(control_fd, IN, self.on_control)
        self.peers: Optional[Peers] = None
        if count > 1 and inbox_fd >= 0 and outbox_fds:
            self.peers = Peers(self.reactor, index, inbox_fd, outbox_fds, self.sites.get, self.log)
        self.slots = ConnSlots(slots_fd, count, index) if slots_fd >= 0 else None
        self.log_window = 0.0
        self.log_count = self.log_dropped = 0
        self.trace_prefix = os.urandom(6).hex().encode() + b"-"
        self.trace_seq = 0
        self.reactor.every(SWEEP, self.sweep)
        self.reactor.every(STATS_EVERY, self.push_stats)
        self.reactor.every(TLS_CHECK_EVERY, self.check_tls)
        self.reactor.every(10.0, self.sweep_vanguard)

    # ------------------------------------------------------------------ services for connections

    def trace_id(self) -> bytes:
        self.trace_seq += 1
        return self.trace_prefix + b"%010x" % self.trace_seq

    def log(self, worker: str, msg: str, level: str = "info") -> None:
        """A log line for the daemon; at most LOG_RATE a second (a flood of blocked requests must not
        flood the daemon): the excess is counted and reported once the rate allows again."""
        now = self.reactor.now
        if now - self.log_window >= 1.0:
            self.log_window = now
            self.log_count = 0
            if self.log_dropped:
                dropped, self.log_dropped = self.log_dropped, 0
                self.send({"op": "log", "worker": worker, "level": "warning",
                           "msg": f"proxy: {dropped} log lines suppressed (more than {LOG_RATE}/s)"})  # fmt: skip
        self.log_count += 1
        if self.log_count > LOG_RATE:
            self.log_dropped += 1
            return
        self.send({"op": "log", "worker": worker, "level": level, "msg": msg})

    def drain_changed(self, site: Site, target: Any) -> None:
        self.send(
            {
                "op": "drain",
                "worker": site.name,
                "key": target.key,
                "inflight": target.inflight,
                "tunnels": target.tunnels,
            }
        )

    def slots_acquire(self, row: int, limit: int) -> bool:
        return self.slots.acquire(row, limit) if self.slots is not None else True

    def slots_release(self, row: int) -> None:
        if self.slots is not None:
            self.slots.release(row)

    # ------------------------------------------------------------------ control channel

    def send(self, msg: Message) -> None:
        if self.channel.send(msg):
            self.reactor.modify(self.channel.fileno(), IN | OUT)

    def on_control(self, ev: int) -> None:
        if ev & OUT and not self.channel.flush():
            self.reactor.modify(self.channel.fileno(), IN)
        if not ev & ~OUT:
            return
        try:
            messages = self.channel.receive()
        except EOFError:
            self.reactor.stop()  # the daemon is gone
            return
        for msg, fds in messages:
            socks = [socket.socket(fileno=fd) for fd in fds]  # owned from here on: closed unless adopted
            try:
                self.handle(msg, socks)
            except Exception as exc:
                log.exception("proxy: control message %r failed", msg.get("op"))
                self.log(str(msg.get("worker", "")), "proxy: {} failed: {}".format(msg.get("op"), exc), "error")
                for sock in socks:
                    if sock.fileno() >= 0 and not any(
                        lst.sock is sock for site in self.sites.values() for lst in site.listeners.values()
                    ):
                        sock.close()

    def handle(self, msg: Message, socks: List[socket.socket]) -> None:
        op = msg.get("op")
        worker = str(msg.get("worker", ""))
        if op == "configure":
            site = self.sites.get(worker)
            if site is None:
                site = self.sites[worker] = Site(self, worker)
            site.configure(msg, socks)
        elif op == "upstreams":
            site = self.sites.get(worker)
            if site is None:
                site = self.sites[worker] = Site(self, worker)
            removed = site.balancer.update(msg.get("targets") or [])
            for target in list(site.balancer.targets.values()) + removed:
                if target.draining or target.removed:
                    self.drain_changed(site, target)
        elif op == "remove":
            site = self.sites.pop(worker, None)
            if site is not None:
                site.close()
        elif op == "stats":
            self.push_stats()
        elif op == "shutdown":
            self.reactor.stop()

    # ------------------------------------------------------------------ periodic work

    def sweep(self) -> None:
        now = self.reactor.now
        late = [c for c in self.conns if c.deadline <= now]
        for conn in late:
            conn.on_timeout()
        if self.peers is not None and self.peers.pending:
            self.peers.sweep(now)
        for site in self.sites.values():
            for target in site.balancer.targets.values():
                if target.idle and now - target.idle[0].idle_since > 30.0:
                    target.close_idle(30.0, now)

    def sweep_vanguard(self) -> None:
        for site in self.sites.values():
            if site.vanguard is not None:
                site.vanguard.sweep()

    def push_stats(self) -> None:
        sites = {name: site.snapshot() for name, site in self.sites.items()}
        msg: Dict[str, Any] = {"op": "stats", "sites": sites, "conns": len(self.conns)}
        if self.peers is not None:
            msg["peers"] = self.peers.snapshot()
        self.send(msg)

    def check_tls(self) -> None:
        for message in self.tls.check():
            for site in self.sites.values():
                self.log(site.name, message, "warning" if "cannot" in message else "info")
                break

    def run(self) -> None:
        self.send({"op": "hello", "pid": os.getpid(), "index": self.index})
        self.reactor.run()


def _die_with_parent(parent: int) -> None:
    try:
        from alter.linux import prctl

        prctl.set_pdeathsig(signal.SIGKILL)
    except (OSError, AttributeError, ImportError):
        pass
    if parent and os.getppid() != parent:
        os._exit(0)  # the daemon died before we could arm PDEATHSIG


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
        except (ValueError, OSError):
            pass


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="apm-proxy", description="apm proxy process (started by the daemon)")
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--control", type=int, required=True)
    p.add_argument("--inbox", type=int, default=-1)
    p.add_argument("--outboxes", default="")
    p.add_argument("--slots", type=int, default=-1)
    p.add_argument("--parent", type=int, default=0)
    args = p.parse_args(argv)
    _die_with_parent(args.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when we stop
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    _raise_nofile()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="apm-proxy[%(process)d]: %(message)s")
    outboxes = [int(x) for x in args.outboxes.split(",") if x]
    proc = Proc(args.index, args.count, args.control, args.inbox, outboxes, args.slots)
    gc.collect()
    gc.freeze()  # startup objects never need scanning again
    gc.set_threshold(20_000, 50, 50)
    proc.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

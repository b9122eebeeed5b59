"""Vanguard: the request firewall in front of a worker's listeners.

One `Vanguard` per worker per proxy process holds the compiled rules and the
per-client-IP state (token buckets, auto-bans, counters).  Rules run in this
order; the first that blocks decides:

1. at accept, on the socket peer: `ban_ip` (TCP: silent close with RST; HTTP:
   403), `allow_ip` (peer outside it: silent close -- "dropped at the TCP
   level", unless the listener is HTTP, trust_proxy is on and the peer is an
   internal address, i.e. a front proxy: then allow_ip is checked per request
   on the resolved client IP);
2. per request, on the resolved client IP (`client_ip()`): ban_ip, allow_ip
   (when deferred), ban_method then allow_method (405, skipped for TCP),
   ban_path (403, or 400 for a path that cannot be normalised), then the rate
   limit: an auto-banned IP gets 403, an empty bucket 429 (and, with ban_ttl,
   a ban).  For TCP listeners each new connection is one "request" for the
   rate limit, and a block is a silent close.

Client IP (`client_ip()`): with trust_proxy off, the socket peer.  With it on,
the peer is trusted to report the truth: take X-Forwarded-For (all its lines,
joined in order), walk it from the RIGHT and return the first entry that is not
an internal address (loopback, RFC 1918, CGNAT 100.64/10, link-local, IPv6 ULA
and link-local) -- the last hop no proxy of ours vouches for.  If every entry is
internal, the leftmost one; if an entry does not parse, the walk stops there
and the nearest valid hop (or the peer) is used.  Without X-Forwarded-For, a
valid X-Real-IP; else the peer.  IPv4-mapped IPv6 (::ffff:a.b.c.d) is always
read as the IPv4 address, in client addresses and in allow/ban lists alike (a
list entry counts as IPv4 only when it lies entirely inside ::ffff:0:0/96, so
`::/0` means every IPv6 client, not every client).
"""

from __future__ import annotations

import bisect
import ipaddress
import math
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from alter.proxy.patterns import BadPath, PatternSet, normalized_path, path_candidates

PASS = 0
DROP = -1  # silent close (TCP) / drop at accept

_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_INTERNAL = [
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "::1/128", "fc00::/7", "fe80::/10",
]  # fmt: skip

IpKey = Tuple[int, int]  # (4 or 6, integer value)


def parse_ip(text: str) -> Optional[IpKey]:
    """'1.2.3.4' / '::ffff:1.2.3.4' / '2001:db8::1' -> (version, int); None when not an address."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.version == 6:
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return 4, int(mapped)
        return 6, int(ip)
    return 4, int(ip)


def ip_text(key: IpKey) -> str:
    return str(ipaddress.IPv4Address(key[1]) if key[0] == 4 else ipaddress.IPv6Address(key[1]))


def canonical_ip(text: str) -> str:
    """Normalised text form of an address (mapped IPv6 -> IPv4); the input if it does not parse."""
    key = parse_ip(text)
    return ip_text(key) if key else text


def owner_of(key: IpKey, count: int) -> int:
    """Which proxy process owns a client IP: the same arithmetic as the reuseport BPF program."""
    if count <= 1:
        return 0
    return (key[1] & 0xFFFFFFFF) % count


class IpSet:
    """CIDR ranges (IPv4 and IPv6) as merged sorted integer intervals; membership by bisect."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        spans: Dict[int, List[Tuple[int, int]]] = {4: [], 6: []}
        self.source = [c for c in cidrs if c.strip()]
        for item in self.source:
            net = ipaddress.ip_network(item.strip(), strict=False)
            if net.version == 6 and net.subnet_of(_MAPPED):  # type: ignore[arg-type]
                lo = int(net.network_address) & 0xFFFFFFFF
                spans[4].append((lo, lo + net.num_addresses - 1))
                continue
            lo = int(net.network_address)
            spans[net.version].append((lo, lo + net.num_addresses - 1))
        self._starts: Dict[int, List[int]] = {}
        self._ends: Dict[int, List[int]] = {}
        for version, items in spans.items():
            items.sort()
            merged: List[List[int]] = []
            for lo, hi in items:
                if merged and lo <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], hi)
                else:
                    merged.append([lo, hi])
            self._starts[version] = [m[0] for m in merged]
            self._ends[version] = [m[1] for m in merged]

    def __bool__(self) -> bool:
        return bool(self.source)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple):
            return False
        version, value = key
        starts = self._starts[version]
        i = bisect.bisect_right(starts, value) - 1
        return i >= 0 and value <= self._ends[version][i]


INTERNAL = IpSet(_INTERNAL)


def _hop(entry: str) -> Optional[IpKey]:
    e = entry.strip().strip('"')
    if e.startswith("["):
        e = e[1 : e.find("]")] if "]" in e else e
    elif e.count(":") == 1:  # a.b.c.d:port
        e = e.split(":", 1)[0]
    return parse_ip(e)


def client_ip(peer: IpKey, xff: Optional[bytes], xrealip: Optional[bytes]) -> IpKey:
    """The real client address for a request (see the module doc for the exact rule)."""
    if xff:
        nearest: IpKey = peer
        entries = xff.decode("latin-1").split(",")
        for entry in reversed(entries):
            key = _hop(entry)
            if key is None:
                return nearest
            if key not in INTERNAL:
                return key
            nearest = key
        return nearest
    if xrealip:
        key = _hop(xrealip.decode("latin-1"))
        if key is not None:
            return key
    return peer


class Rules:
    """A worker's vanguard block, compiled (values are the option table's canonical ones)."""

    def __init__(self, cfg: Optional[Dict[str, Any]]) -> None:
        cfg = cfg or {}
        self.allow_ip = IpSet(cfg.get("allow_ip") or [])
        self.ban_ip = IpSet(cfg.get("ban_ip") or [])
        self.ban_path = PatternSet(cfg.get("ban_path") or [])
        self.ban_response = str(cfg.get("ban_response") or "Forbidden")
        self.allow_method = frozenset(m.upper().encode() for m in cfg.get("allow_method") or [])
        self.ban_method = frozenset(m.upper().encode() for m in cfg.get("ban_method") or [])
        rate = cfg.get("rate_limit")
        self.rate: Optional[float] = float(rate) if rate else None
        burst = cfg.get("rate_burst")
        self.burst = float(burst) if burst else (max(1.0, math.ceil(self.rate)) if self.rate else 0.0)
        self.ban_ttl = float(cfg.get("ban_ttl") or 0) / 1000.0
        log = cfg.get("log", True)
        self.log = log if isinstance(log, bool) else str(log).lower() not in ("off", "false", "no", "0")
        self.log_summary = int(cfg.get("log_summary") or 0)
        self.allow_header = ", ".join(sorted(m.decode() for m in self.allow_method - self.ban_method))

    @property
    def stateful(self) -> bool:
        """Per-IP state exists (rate limit, bans): the reuseport BPF keeps one IP on one process."""
        return self.rate is not None

    @property
    def active(self) -> bool:
        return bool(self.allow_ip or self.ban_ip or self.ban_path or self.allow_method or self.ban_method or self.rate)


class Vanguard:
    """Rules + per-IP state for one worker in one proxy process."""

    MAX_BUCKETS = 100_000

    def __init__(self, worker: str, rules: Rules, clock: Callable[[], float] = time.monotonic) -> None:
        self.worker = worker
        self.rules = rules
        self.clock = clock
        self._buckets: Dict[IpKey, List[float]] = {}
        self.bans: Dict[IpKey, float] = {}
        self.counters: Dict[str, int] = {}
        self.bans_total = 0

    # ------------------------------------------------------------------ accept time

    def accept(self, peer: IpKey, http: bool, trust_proxy: bool) -> Tuple[int, str, bool]:
        """-> (PASS | DROP | 403, reason, defer_allow) for a new connection."""
        r = self.rules
        if r.ban_ip and peer in r.ban_ip:
            return (403 if http else DROP), "ban_ip", False
        if r.allow_ip and peer not in r.allow_ip:
            if http and trust_proxy and peer in INTERNAL:
                return PASS, "", True
            return DROP, "allow_ip", False
        return PASS, "", False

    # ------------------------------------------------------------------ per request

    def check_ip(self, client: IpKey, peer: IpKey, defer_allow: bool) -> Tuple[int, str]:
        r = self.rules
        if client != peer and r.ban_ip and client in r.ban_ip:
            return 403, "ban_ip"
        if defer_allow and client not in r.allow_ip:
            return 403, "allow_ip"
        return PASS, ""

    def check_method(self, method: bytes) -> Tuple[int, str]:
        r = self.rules
        if method in r.ban_method:
            return 405, "ban_method"
        if r.allow_method and method not in r.allow_method:
            return 405, "allow_method"
        return PASS, ""

    def check_path(self, target: bytes) -> Tuple[int, str]:
        if not self.rules.ban_path:
            return PASS, ""
        try:
            forms = path_candidates(target.decode("latin-1"))
        except BadPath:
            return 400, "bad_path"
        hit = self.rules.ban_path.match_any(forms)
        return (403, "ban_path " + hit) if hit else (PASS, "")

    def consume(self, ip: IpKey) -> Tuple[int, str]:
        """The rate limit for one request (or TCP connection) from `ip`: PASS, 403 (banned) or 429."""
        r = self.rules
        if r.rate is None:
            return PASS, ""
        now = self.clock()
        until = self.bans.get(ip)
        if until is not None:
            if now < until:
                return 403, "banned"
            del self.bans[ip]
        bucket = self._buckets.get(ip)
        if bucket is None:
            if len(self._buckets) >= self.MAX_BUCKETS:
                self.sweep(now)
            bucket = self._buckets[ip] = [r.burst, now]
        else:
            tokens = bucket[0] + (now - bucket[1]) * r.rate
            bucket[0] = tokens if tokens < r.burst else r.burst
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return PASS, ""
        if r.ban_ttl > 0:
            self.bans[ip] = now + r.ban_ttl
            self.bans_total += 1
            return 429, f"rate_limit (banned for {r.ban_ttl:g}s)"
        return 429, "rate_limit"

    def count(self, reason: str) -> None:
        key = reason.split(" ", 1)[0]
        self.counters[key] = self.counters.get(key, 0) + 1

    # ------------------------------------------------------------------ housekeeping

    def sweep(self, now: Optional[float] = None) -> None:
        """Forget full buckets (they carry no state) and expired bans; keep the bucket map bounded."""
        now = self.clock() if now is None else now
        r = self.rules
        if r.rate:
            full = [ip for ip, b in self._buckets.items() if b[0] + (now - b[1]) * r.rate >= r.burst]
            for ip in full:
                del self._buckets[ip]
            while len(self._buckets) >= self.MAX_BUCKETS:
                del self._buckets[next(iter(self._buckets))]
        for ip in [ip for ip, until in self.bans.items() if until <= now]:
            del self.bans[ip]

    def ban(self, ip: IpKey, seconds: float) -> None:
        self.bans[ip] = self.clock() + seconds

    def active_bans(self, limit: int = 1000) -> List[Tuple[str, int]]:
        now = self.clock()
        out = [(ip_text(ip), int((until - now) * 1000)) for ip, until in self.bans.items() if until > now]
        out.sort(key=lambda item: -item[1])
        return out[:limit]

    def snapshot(self) -> Dict[str, Any]:
        return {
            "blocked": dict(self.counters),
            "blocked_total": sum(self.counters.values()),
            "bans": self.active_bans(),
            "bans_total": self.bans_total,
            "tracked_ips": len(self._buckets),
        }


def describe_path(target: bytes) -> str:
    try:
        return normalized_path(target.decode("latin-1"))
    except BadPath:
        return target.decode("latin-1")[:200]

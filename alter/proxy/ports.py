"""Loopback ports for instances (`PORT` / `APM_PORT`): free, never handed out twice, not reused soon.

Ports come from a range OUTSIDE the kernel's ephemeral range
(/proc/sys/net/ipv4/ip_local_port_range), so no outgoing connection -- the
proxy's own upstream connections included -- can be sitting on a port an
instance is about to bind.  A port is checked free by binding it (without
SO_REUSEADDR) on 0.0.0.0 and :: (an instance may listen on every interface),
is remembered as taken until `release()`, and then cools down for `cooldown`
seconds so a slow-dying old instance still holding it cannot collide with a
new one.
"""

from __future__ import annotations

import random
import socket
import time
from typing import Callable, Dict, Optional, Tuple

from alter.errors import ApmError


class NoFreePort(ApmError):
    exit_code = 1
    http_status = 503
    kind = "ports"


def ephemeral_range() -> Tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def default_range() -> Tuple[int, int]:
    lo, hi = ephemeral_range()
    if lo - 1 - 10000 >= 2000:
        return 10000, lo - 1
    if 65535 - hi >= 2000:
        return hi + 1, 65535
    return 1024, 65535  # no room outside the ephemeral range: fall back to checking only


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::"), (socket.AF_INET, host)):
        try:
            s = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 here
        try:
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


class PortAllocator:
    def __init__(self, host: str = "127.0.0.1", low: Optional[int] = None, high: Optional[int] = None,
                 cooldown: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 is_free: Callable[[int], bool] = port_is_free) -> None:  # fmt: skip
        lo, hi = default_range()
        self.host = host
        self.low = low if low is not None else lo
        self.high = high if high is not None else hi
        self.cooldown = cooldown
        self.clock = clock
        self.is_free = is_free
        self.taken: Dict[int, str] = {}
        self.cooling: Dict[int, float] = {}
        self._next = random.randint(self.low, self.high)

    def allocate(self, owner: str = "") -> int:
        """A free port, reserved for `owner` (e.g. "api#2") until release()."""
        now = self.clock()
        for port in [p for p, until in self.cooling.items() if until <= now]:
            del self.cooling[port]
        span = self.high - self.low + 1
        for _ in range(span):
            port = self._next
            self._next = self.low if port >= self.high else port + 1
            if port in self.taken or port in self.cooling:
                continue
            if self.is_free(port):
                self.taken[port] = owner
                return port
        raise NoFreePort(
            f"no free loopback port in {self.low}-{self.high} for {owner or 'an instance'}",
            hint="stop unused workers or widen the port range",
        )

    def release(self, port: int) -> None:
        if self.taken.pop(port, None) is not None:
            self.cooling[port] = self.clock() + self.cooldown

    def owner(self, port: int) -> Optional[str]:
        return self.taken.get(port)

"""Failed login / PIN attempts per client: growing delays, then a lockout.

    limiter.begin(ip)      # TooManyRequests while the client must wait, or while one attempt is in flight
    ... verify ...
    limiter.failure(ip)    # or limiter.success(ip); always limiter.end(ip)

Policy (defaults; `APM_GUI_LOGIN_LIMITS="free,delay,max,lockout"` overrides, for tests):
the first `free` failures cost nothing; failure number `free + k` makes the
client wait `delay * 2**k` seconds before the next attempt; failure number
`max` locks the client out for `lockout` seconds.  A success resets the
count, and so does `window` seconds without a failure.  One attempt at a
time per client, so parallel guesses cannot slip past the count.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional

from alter.web.errors import TooManyRequests

MAX_CLIENTS = 10_000


@dataclass(frozen=True)
class Policy:
    free: int = 3
    delay: float = 1.0
    max_failures: int = 10
    lockout: float = 900.0
    window: float = 3600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Policy:
        raw = env.get("APM_GUI_LOGIN_LIMITS", "").strip()
        if not raw:
            return cls()
        try:
            free, delay, most, lockout = (p.strip() for p in raw.split(","))
            policy = cls(int(free), float(delay), int(most), float(lockout))
        except ValueError:
            return cls()
        if policy.free < 0 or policy.delay < 0 or policy.max_failures < 1 or policy.lockout < 0:
            return cls()
        return policy


class _Client:
    __slots__ = ("failures", "last_failure", "not_before", "busy", "locked_out")

    def __init__(self) -> None:
        self.failures = 0
        self.last_failure = 0.0
        self.not_before = 0.0
        self.busy = False
        self.locked_out = False


class RateLimiter:
    def __init__(self, policy: Optional[Policy] = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or Policy()
        self.clock = clock
        self._lock = threading.Lock()
        self._clients: Dict[str, _Client] = {}

    def begin(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                if len(self._clients) >= MAX_CLIENTS:
                    self._prune(now)
                client = self._clients[key] = _Client()
            elif client.failures and now - client.last_failure > self.policy.window and now >= client.not_before:
                client.failures = 0
                client.locked_out = False
            if now < client.not_before:
                wait = client.not_before - now
                if client.locked_out:
                    raise TooManyRequests(
                        f"too many failed attempts from {key}: locked out for {int(wait + 0.999)} more seconds",
                        wait,
                        hint="wait, or reset the password with `apm gui reset-password` on the server",
                        locked_out=True,
                    )
                raise TooManyRequests(
                    f"too many failed attempts from {key}: wait {int(wait + 0.999)} s before trying again", wait
                )
            if client.busy:
                raise TooManyRequests(f"another attempt from {key} is still being checked", 1.0)
            client.busy = True

    def end(self, key: str) -> None:
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                client.busy = False

    def failure(self, key: str) -> float:
        """Count a failure; returns the seconds the client must now wait (0 = none)."""
        now = self.clock()
        p = self.policy
        with self._lock:
            client = self._clients.setdefault(key, _Client())
            client.failures += 1
            client.last_failure = now
            if client.failures >= p.max_failures:
                client.locked_out = True
                wait = p.lockout
            elif client.failures > p.free:
                wait = p.delay * (2 ** (client.failures - p.free - 1))
            else:
                wait = 0.0
            client.not_before = now + wait
            return wait

    def success(self, key: str) -> None:
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                busy = client.busy
                self._clients[key] = _Client()
                self._clients[key].busy = busy

    def failures(self, key: str) -> int:
        with self._lock:
            client = self._clients.get(key)
            return client.failures if client is not None else 0

    def _prune(self, now: float) -> None:
        stale = [
            k
            for k, c in self._clients.items()
            if not c.busy and now >= c.not_before and now - c.last_failure > self.policy.window
        ]
        for k in stale:
            del self._clients[k]
        if len(self._clients) >= MAX_CLIENTS:  # under attack from many addresses: forget the oldest half
            for k in sorted(self._clients, key=lambda k: self._clients[k].last_failure)[: MAX_CLIENTS // 2]:
                if not self._clients[k].busy:
                    del self._clients[k]

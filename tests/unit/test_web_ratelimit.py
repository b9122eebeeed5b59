"""Login/PIN rate limiting: free failures, growing delays, lockout, one attempt at a time."""

from __future__ import annotations

import pytest

from alter.web.errors import TooManyRequests
from alter.web.ratelimit import Policy, RateLimiter


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def attempt(limiter, key="ip", ok=False):
    limiter.begin(key)
    try:
        return limiter.success(key) if ok else limiter.failure(key)
    finally:
        limiter.end(key)


def test_delays_grow_then_lockout():
    clock = Clock()
    lim = RateLimiter(Policy(free=2, delay=1.0, max_failures=6, lockout=100.0, window=1000.0), clock=clock)
    assert attempt(lim) == 0 and attempt(lim) == 0
    waits = []
    for _ in range(3):
        waits.append(attempt(lim))
        with pytest.raises(TooManyRequests) as exc:
            lim.begin("ip")
        assert exc.value.detail["locked_out"] is False
        clock.t += waits[-1]
    assert waits == [1.0, 2.0, 4.0]
    assert attempt(lim) == 100.0  # 6th failure: lockout
    clock.t += 99.5
    with pytest.raises(TooManyRequests) as exc:
        lim.begin("ip")
    assert exc.value.detail == {"retry_after": 1, "locked_out": True}
    lim.begin("other")  # other clients are untouched
    lim.end("other")
    clock.t += 1
    attempt(lim, ok=True)
    assert lim.failures("ip") == 0


def test_one_attempt_in_flight_per_client():
    lim = RateLimiter(Policy(), clock=Clock())
    lim.begin("ip")
    with pytest.raises(TooManyRequests):
        lim.begin("ip")
    lim.end("ip")
    lim.begin("ip")
    lim.end("ip")


def test_window_forgets_old_failures():
    clock = Clock()
    lim = RateLimiter(Policy(free=1, delay=1.0, max_failures=10, lockout=5, window=60.0), clock=clock)
    attempt(lim)
    attempt(lim)
    clock.t += 61
    assert attempt(lim) == 0.0  # counted from scratch


def test_policy_from_env():
    assert Policy.from_env({}) == Policy()
    assert Policy.from_env({"APM_GUI_LOGIN_LIMITS": "2,0.5,5,3"}) == Policy(2, 0.5, 5, 3.0)
    assert Policy.from_env({"APM_GUI_LOGIN_LIMITS": "garbage"}) == Policy()
    assert Policy.from_env({"APM_GUI_LOGIN_LIMITS": "1,1,0,1"}) == Policy()

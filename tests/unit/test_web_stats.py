"""The stats sampler's per-pid cache: GET /workers and stream snapshots read no /proc while it is fresh."""

from __future__ import annotations

from typing import Any, Dict, List

from alter.supervise.testing import Harness
from alter.web import stats
from alter.web.history import History
from alter.web.stats import FRESH, StatsSampler


def test_usage_answers_from_the_last_sample_then_falls_back(monkeypatch):
    h = Harness()
    try:
        h.sup.add({"name": "w", "exec": "sleep", "params": ["100"], "startup_grace": 0})
        h.sup.start("w")
        h.settle()
        pid = h.pids("w")[0]
        payloads: List[Dict[str, Any]] = []
        sampler = StatsSampler(h.loop, h.sup, History(), payloads.append)
        monkeypatch.setattr(sampler.proc, "sample", lambda p, now: (3.14159, 8192) if p == pid else None)
        monkeypatch.setattr(stats, "read_stat", lambda p: (100, 4096, 7) if p == pid else None)
        fallback: List[int] = []
        real = h.ops.usage
        monkeypatch.setattr(h.ops, "usage", lambda p: fallback.append(p) or real(p))

        assert sampler.usage(pid) == (0.5, 1024 * 1024) and fallback == [pid]  # nothing sampled yet

        sampler.watch(+1)  # a stream wants stats: the 1 s samples fill the cache
        sampler.sample()
        assert payloads and payloads[-1]["workers"]["w"]["cpu"] == 3.1
        assert sampler.usage(pid) == (3.1, 8192) and fallback == [pid]

        h.clock.t += FRESH + 0.5  # too old: the supervisor's reader again
        assert sampler.usage(pid) == (0.5, 1024 * 1024) and fallback == [pid, pid]

        sampler.watch(-1)  # no stream: the 5 s history samples fill it
        sampler._next_history = 0.0
        sampler.sample()
        assert sampler.usage(pid) == (0.0, 4096) and fallback == [pid, pid]

        h.sup.stop("w")  # a pid that is no longer watched leaves the cache at the next sample
        h.advance(1.0)
        sampler._next_history = 0.0
        sampler.sample()
        assert pid not in sampler._by_pid
    finally:
        h.close()

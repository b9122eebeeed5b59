"""The restart policy table (docs/restart-policy.md)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import pytest

from alter.config import options
from alter.supervise.policy import BACKOFF_CAP_MS, RestartCounters, backoff_ms, decide


def cfg(**kw: Any) -> Dict[str, Any]:
    return options.effective({"exec": "x", "name": "x", **kw})


def run(
    config: Dict[str, Any],
    code: Optional[int] = 1,
    sig: Optional[int] = None,
    runtime: int = 100,
    counters: Optional[RestartCounters] = None,
):
    return decide(config, code, sig, runtime, counters or RestartCounters())


@pytest.mark.parametrize(
    "kw,code,sig,restart,kind",
    [
        ({}, 0, None, False, "clean"),
        ({}, 1, None, False, "error"),
        ({"restart": True}, 0, None, True, "clean"),
        ({"restart": True}, 1, None, False, "error"),
        ({"restart_err": True}, 1, None, True, "error"),
        ({"restart_err": True}, None, 9, True, "error"),
        ({"restart_err": True}, 0, None, False, "clean"),
        ({"restart_on_exit_codes": [3, 137]}, 3, None, True, "error"),
        ({"restart_on_exit_codes": [3]}, 1, None, False, "error"),
        ({"restart_on_exit_codes": [137]}, None, 9, True, "error"),  # killed by 9 matches 128+9
        ({"restart_on_exit_codes": [0], "restart": False}, 0, None, True, "clean"),
        (
            {"restart_on_exit_codes": [3], "restart": True, "restart_err": True},
            0,
            None,
            False,
            "clean",
        ),  # overrides both
        ({"restart_on_exit_codes": [3], "restart": True, "restart_err": True}, 1, None, False, "error"),
    ],
)
def test_which_exits_restart(
    kw: Dict[str, Any], code: Optional[int], sig: Optional[int], restart: bool, kind: str
) -> None:
    d = run(cfg(**kw), code, sig)
    assert (d.restart, d.kind) == (restart, kind)
    if not restart:
        assert d.reason


def test_clean_delay_is_flat_and_limited() -> None:
    config = cfg(restart=True, restart_delay=250, max_restarts=2)
    c = RestartCounters()
    delays = []
    for _ in range(3):
        d = decide(config, 0, None, 50, c)
        c = d.counters
        delays.append(d.delay_ms if d.restart else None)
    assert delays == [250, 250, None]
    assert "max_restarts 2" in d.reason
    assert c.clean == 2  # totals only count real restarts


def test_error_backoff_grows_doubles_and_caps() -> None:
    config = cfg(restart_err=True, err_delay=500)
    c = RestartCounters()
    delays = []
    for _ in range(10):
        d = decide(config, 1, None, 100, c)
        c = d.counters
        delays.append(d.delay_ms)
    assert delays == [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]
    assert c.error == 10 and c.streak == 10


def test_backoff_resets_after_a_stable_run() -> None:
    config = cfg(restart_err=True, err_delay=500)
    c = RestartCounters()
    for _ in range(4):
        c = decide(config, 1, None, 100, c).counters
    d = decide(config, 1, None, 10_000, c)  # ran >= 10 s: streak over
    assert d.delay_ms == 500 and d.counters.streak == 0
    d = decide(config, 1, None, 100, d.counters)
    assert d.delay_ms == 500 and d.counters.streak == 1


def test_reset_window_is_at_least_err_grace() -> None:
    config = cfg(restart_err=True, err_delay=100, err_grace=60_000)
    c = decide(config, 1, None, 100, RestartCounters()).counters
    d = decide(config, 1, None, 30_000, c)  # 30 s < err_grace 60 s: still a quick failure
    assert d.counters.streak == 2 and d.delay_ms == 200


def test_err_delay_zero_restarts_immediately_every_time() -> None:
    config = cfg(restart_err=True, err_delay=0)
    c = RestartCounters()
    for _ in range(5):
        d = decide(config, None, 9, 10, c)
        c = d.counters
        assert d.restart and d.delay_ms == 0


def test_cap_never_below_a_large_base() -> None:
    assert backoff_ms(60_000, 3) == 60_000
    assert backoff_ms(500, 100) == BACKOFF_CAP_MS
    assert backoff_ms(500, 1) == 500 and backoff_ms(500, 0) == 500


def test_max_err_restarts_without_err_grace_counts_every_restart() -> None:
    config = cfg(restart_err=True, max_err_restarts=2)
    c = RestartCounters()
    results = []
    for runtime in (100, 50_000, 100):  # even a long run counts without err_grace
        d = decide(config, 1, None, runtime, c)
        c = d.counters
        results.append(d.restart)
    assert results == [True, True, False]
    assert "max_err_restarts 2" in d.reason


def test_err_grace_only_short_runs_count_and_long_runs_reset() -> None:
    config = cfg(restart_err=True, max_err_restarts=2, err_grace=5_000)
    c = RestartCounters()
    seq = []
    for runtime in (100, 100, 6_000, 100, 100, 100):
        d = decide(config, 1, None, runtime, c)
        c = d.counters
        seq.append((d.restart, c.error_limited))
    # two quick failures, then a run >= err_grace resets (and does not count), two more allowed, the third stops
    assert seq == [(True, 1), (True, 2), (True, 0), (True, 1), (True, 2), (False, 3)]


def test_reset_limits_keeps_totals() -> None:
    c = RestartCounters(clean=3, error=4, clean_limited=3, error_limited=4, streak=4).reset_limits()
    assert (c.clean, c.error, c.clean_limited, c.error_limited, c.streak) == (3, 4, 0, 0, 0)

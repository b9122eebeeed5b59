"""The restart decision after an instance exits on its own (docs/restart-policy.md).

Pure functions over the worker's effective config and the instance's counters,
so the whole table is unit-tested without processes or clocks.

Policy, in one paragraph:

* Which exits restart.  `restart_on_exit_codes` (when non-empty) decides alone:
  restart iff the exit code is listed (a death by signal N matches 128+N).
  Otherwise code 0 restarts iff `restart`, anything else (non-zero code or a
  signal) iff `restart_err`.
* Clean restarts wait `restart_delay` (flat) and count against `max_restarts`
  (0 = unlimited) until the next manual start/restart.
* Error restarts use *exponential backoff, base err_delay, factor 2, cap 30 s,
  reset after a run of >= max(10 s, err_grace)*: the k-th consecutive quick
  failure waits `err_delay * 2**(k-1)` (never more than max(30 s, err_delay)).
  `err_delay 0` means "always immediately" (0 doubled is 0).
* `max_err_restarts` (0 = unlimited) limits error restarts.  Without
  `err_grace` every error restart counts.  With `err_grace`, only runs shorter
  than err_grace count; a run of at least err_grace resets the count to zero
  (so a process that crashes once a day is restarted forever, while a crash
  loop is stopped after max_err_restarts tries).
* A manual start/restart resets the limit counts and the backoff streak;
  the totals shown by `apm list` keep counting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional

BACKOFF_FACTOR = 2
BACKOFF_CAP_MS = 30_000
STABLE_RUN_MS = 10_000
POLICY_NAME = "exponential backoff, base err_delay, factor 2, cap 30 s, reset after a run of >= max(10 s, err_grace)"


@dataclass(frozen=True)
class RestartCounters:
    """Per-instance restart bookkeeping (immutable; `decide()` returns the next one)."""

    clean: int = 0  # total clean-exit restarts (display)
    error: int = 0  # total error-exit restarts (display)
    clean_limited: int = 0  # clean restarts counted against max_restarts
    error_limited: int = 0  # error restarts counted against max_err_restarts
    streak: int = 0  # consecutive quick error exits (backoff exponent)

    def reset_limits(self) -> RestartCounters:
        """After a manual start/restart: limits and backoff start over, totals stay."""
        return dataclasses.replace(self, clean_limited=0, error_limited=0, streak=0)


@dataclass(frozen=True)
class Decision:
    restart: bool
    delay_ms: int
    kind: str  # "clean" | "error"
    reason: str  # why not (or which rule), for the log line
    counters: RestartCounters


def is_error_exit(code: Optional[int], signal: Optional[int]) -> bool:
    return not (code == 0 and signal is None)


def backoff_ms(base_ms: int, streak: int) -> int:
    """Delay before the restart that follows the `streak`-th consecutive quick failure."""
    if streak <= 1 or base_ms <= 0:
        return max(0, base_ms)
    cap = max(BACKOFF_CAP_MS, base_ms)
    # Grow without overflow: stop doubling once past the cap.
    delay = base_ms
    for _ in range(streak - 1):
        delay *= BACKOFF_FACTOR
        if delay >= cap:
            return cap
    return delay


def stable_run_ms(config: Dict[str, Any]) -> int:
    grace = config.get("err_grace")
    return max(STABLE_RUN_MS, int(grace or 0))


def decide(
    config: Dict[str, Any], code: Optional[int], signal: Optional[int], runtime_ms: int, counters: RestartCounters
) -> Decision:
    """What to do after an unrequested exit.  `config` is the effective worker config."""
    error = is_error_exit(code, signal)
    kind = "error" if error else "clean"
    codes = list(config.get("restart_on_exit_codes") or [])
    if codes:
        effective_code = code if code is not None else (128 + signal if signal is not None else None)
        wanted = effective_code in codes
        why_not = f"exit code {effective_code} is not in restart_on_exit_codes {codes}"
    elif error:
        wanted = bool(config.get("restart_err"))
        why_not = "restart_err is off"
    else:
        wanted = bool(config.get("restart"))
        why_not = "restart is off"

    quick = runtime_ms < stable_run_ms(config)
    if not error:
        # A long clean run also ends a crash streak.
        streak = counters.streak if quick else 0
        used = counters.clean_limited + 1
        limit = int(config.get("max_restarts") or 0)
        next_counters = dataclasses.replace(counters, streak=streak, clean_limited=used)
        if not wanted:
            return Decision(False, 0, kind, why_not, next_counters)
        if limit and used > limit:
            return Decision(False, 0, kind, f"max_restarts {limit} reached", next_counters)
        delay = max(0, int(config.get("restart_delay") or 0))
        next_counters = dataclasses.replace(next_counters, clean=counters.clean + 1)
        return Decision(True, delay, kind, "restart", next_counters)

    grace = config.get("err_grace")
    if grace is not None and runtime_ms >= int(grace):
        used = 0  # a run of at least err_grace resets the count and does not count itself
    else:
        used = counters.error_limited + 1
    streak = counters.streak + 1 if quick else 0
    limit = int(config.get("max_err_restarts") or 0)
    next_counters = dataclasses.replace(counters, streak=streak, error_limited=used)
    if not wanted:
        return Decision(False, 0, kind, why_not, next_counters)
    if limit and used > limit:
        return Decision(False, 0, kind, f"max_err_restarts {limit} reached", next_counters)
    delay = backoff_ms(max(0, int(config.get("err_delay") or 0)), max(1, streak))
    next_counters = dataclasses.replace(next_counters, error=counters.error + 1)
    return Decision(True, delay, kind, "restart_err" if not codes else "restart_on_exit_codes", next_counters)


def describe_exit(code: Optional[int], signal_name: Optional[str], runtime_ms: int, oom: bool = False) -> str:
    """`exited with code 1 after 2.1s` / `was killed by SIGKILL (out of memory) after 90ms`."""
    if signal_name:
        what = f"was killed by {signal_name}" + (" (out of memory: memory_limit reached)" if oom else "")
    else:
        what = f"exited with code {code}"
    return f"{what} after {format_ms(runtime_ms)}"


def format_ms(ms: float) -> str:
    if ms < 1000:
        return f"{int(ms)} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    return f"{ms / 60_000:.1f}m"

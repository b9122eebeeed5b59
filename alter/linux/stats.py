"""CPU% and memory per pid with psutil, cheap enough for `apm list` every second.

One psutil.Process is kept per (pid, create time); cpu% is the delta of CPU
times between two calls (the first call of a pid reports 0.0).  A sample
younger than `max_age` seconds is returned again without touching /proc.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Optional, Tuple

try:
    import psutil
except ImportError:  # pragma: no cover - psutil ships with apm; degrade to "unknown"
    psutil = None

Sample = Tuple[Optional[float], Optional[int]]


class StatsCache:
    def __init__(self, max_age: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.clock = clock
        self._procs: Dict[int, psutil.Process] = {}
        self._samples: Dict[int, Tuple[float, Sample]] = {}

    def sample(self, pid: int) -> Sample:
        """(cpu percent of one core, RSS bytes), or (None, None) when the pid is gone/unknown."""
        if psutil is None:
            return None, None
        now = self.clock()
        cached = self._samples.get(pid)
        if cached is not None and now - cached[0] < self.max_age:
            return cached[1]
        proc = self._procs.get(pid)
        try:
            if proc is None or not proc.is_running():
                proc = psutil.Process(pid)
                proc.cpu_percent(None)  # prime: the first reading is meaningless
                self._procs[pid] = proc
            with proc.oneshot():
                cpu = round(proc.cpu_percent(None), 1)
                rss = int(proc.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            self.forget(pid)
            return None, None
        sample: Sample = (cpu, rss)
        self._samples[pid] = (now, sample)
        if len(self._procs) > 1024:
            self.prune()
        return sample

    def forget(self, pid: int) -> None:
        self._procs.pop(pid, None)
        self._samples.pop(pid, None)

    def prune(self) -> None:
        for pid, proc in list(self._procs.items()):
            try:
                alive = proc.is_running()
            except Exception:
                alive = False
            if not alive:
                self.forget(pid)

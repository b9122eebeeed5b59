"""Per-worker CPU/memory history for the process detail charts (kept in memory, compact).

Two rings on one shared timeline, float32 per value (about 7 KB per worker):

    fine    one point per sample (every 5 s), the last hour   (range "1h")
    coarse  the average of every 12 samples (1 min), the last 24 h   (range "24h")

A worker that was not running at a sample has a gap (null).  The sampler
(stats.py) calls `record()` on the loop; the API reads `series()` on the loop.
"""

from __future__ import annotations

import math
from array import array
from typing import Any, Dict, List, Optional, Tuple

NAN = float("nan")
FINE_INTERVAL = 5.0
FINE_SLOTS = 720
COARSE_EVERY = 12
COARSE_SLOTS = 1440


class Ring:
    """Timestamps plus, per worker, parallel cpu/memory arrays of `slots` entries."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.count = 0  # points ever written
        self.times = array("d", [NAN]) * slots
        self.series: Dict[str, Tuple[array, array]] = {}

    def _arrays(self, name: str) -> Tuple[array, array]:
        got = self.series.get(name)
        if got is None:
            got = self.series[name] = (array("f", [NAN]) * self.slots, array("f", [NAN]) * self.slots)
        return got

    def write(self, t: float, values: Dict[str, Tuple[Optional[float], Optional[float]]]) -> None:
        slot = self.count % self.slots
        self.times[slot] = t
        for name, (cpu_arr, mem_arr) in self.series.items():
            if name not in values:
                cpu_arr[slot] = NAN
                mem_arr[slot] = NAN
        for name, (cpu, mem) in values.items():
            cpu_arr, mem_arr = self._arrays(name)
            cpu_arr[slot] = NAN if cpu is None else cpu
            mem_arr[slot] = NAN if mem is None else mem
        self.count += 1

    def read(self, name: str) -> Dict[str, Any]:
        n = min(self.count, self.slots)
        start = self.count - n
        arrays = self.series.get(name)
        out: Dict[str, Any] = {"t": [], "cpu": [], "memory": []}
        for i in range(start, self.count):
            slot = i % self.slots
            out["t"].append(round(self.times[slot], 3))
            if arrays is None:
                out["cpu"].append(None)
                out["memory"].append(None)
                continue
            cpu, mem = arrays[0][slot], arrays[1][slot]
            out["cpu"].append(None if math.isnan(cpu) else round(cpu, 2))
            out["memory"].append(None if math.isnan(mem) else int(mem))
        return out


class History:
    def __init__(
        self,
        interval: float = FINE_INTERVAL,
        fine_slots: int = FINE_SLOTS,
        coarse_every: int = COARSE_EVERY,
        coarse_slots: int = COARSE_SLOTS,
    ) -> None:
        self.interval = interval
        self.coarse_every = coarse_every
        self.fine = Ring(fine_slots)
        self.coarse = Ring(coarse_slots)
        self._sums: Dict[str, List[float]] = {}  # name -> [cpu sum, mem sum, samples]
        self._pending = 0

    def record(self, t: float, values: Dict[str, Tuple[Optional[float], Optional[float]]]) -> None:
        """One sample: {worker: (cpu percent, rss bytes)} for the workers running now."""
        self.fine.write(t, values)
        for name, (cpu, mem) in values.items():
            acc = self._sums.setdefault(name, [0.0, 0.0, 0.0])
            acc[0] += cpu or 0.0
            acc[1] += mem or 0.0
            acc[2] += 1
        self._pending += 1
        if self._pending >= self.coarse_every:
            averaged = {n: (a[0] / a[2], a[1] / a[2]) for n, a in self._sums.items() if a[2]}
            self.coarse.write(t, averaged)  # type: ignore[arg-type]
            self._sums.clear()
            self._pending = 0

    def series(self, name: str, span: str = "1h") -> Dict[str, Any]:
        if span == "24h":
            data = self.coarse.read(name)
            data["interval"] = self.interval * self.coarse_every
        else:
            data = self.fine.read(name)
            data["interval"] = self.interval
        data["worker"] = name
        data["range"] = span
        return data

    def rename(self, old: str, new: str) -> None:
        for ring in (self.fine, self.coarse):
            if old in ring.series:
                ring.series[new] = ring.series.pop(old)
        if old in self._sums:
            self._sums[new] = self._sums.pop(old)

    def remove(self, name: str) -> None:
        for ring in (self.fine, self.coarse):
            ring.series.pop(name, None)
        self._sums.pop(name, None)

    def names(self) -> List[str]:
        return sorted(self.fine.series)

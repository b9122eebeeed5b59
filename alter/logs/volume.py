"""Per-hour line counts per worker and stream (alter's Log Volume chart).

`LogVolume` is daemon-wide; each `WorkerLog` counts into its worker's
`WorkerVolume` (one dict lookup per read chunk).  Hours are epoch seconds
rounded down to the hour (UTC-aligned; the GUI shifts them to local time).
Counts older than `keep_hours` (default 7 days) are pruned whenever a new
hour starts.  `snapshot()` / `restore()` give a JSON-able form for the daemon
to persist across restarts.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

KEEP_HOURS = 7 * 24
STREAMS = ("out", "err", "apm")


class WorkerVolume:
    __slots__ = ("keep_hours", "counts", "_hour")

    def __init__(self, keep_hours: int = KEEP_HOURS) -> None:
        self.keep_hours = keep_hours
        self.counts: Dict[str, Dict[int, int]] = {s: {} for s in STREAMS}
        self._hour = -1

    def add(self, stream: str, ts: float, n: int) -> None:
        hour = int(ts // 3600) * 3600
        per = self.counts.get(stream)
        if per is None:
            per = self.counts[stream] = {}
        per[hour] = per.get(hour, 0) + n
        if hour != self._hour:
            if hour > self._hour:
                self._hour = hour
            self.prune(hour)

    def prune(self, now_hour: int) -> None:
        cutoff = now_hour - self.keep_hours * 3600
        for per in self.counts.values():
            for hour in [h for h in per if h <= cutoff]:
                del per[hour]

    def series(self, since: Optional[float] = None, until: Optional[float] = None) -> Dict[str, Dict[int, int]]:
        out: Dict[str, Dict[int, int]] = {}
        for stream, per in self.counts.items():
            out[stream] = {
                h: c
                for h, c in sorted(per.items())
                if (since is None or h + 3600 > since) and (until is None or h < until)
            }
        return out

    def total(self, stream: Optional[str] = None) -> int:
        return sum(sum(per.values()) for s, per in self.counts.items() if stream is None or s == stream)

    def snapshot(self) -> Dict[str, Dict[str, int]]:
        return {s: {str(h): c for h, c in sorted(per.items())} for s, per in self.counts.items() if per}

    def restore(self, data: Dict[str, Any]) -> None:
        for stream, per in (data or {}).items():
            if not isinstance(per, dict):
                continue
            target = self.counts.setdefault(str(stream), {})
            for hour, count in per.items():
                try:
                    h, c = int(hour), int(count)
                except (TypeError, ValueError):
                    continue
                target[h] = target.get(h, 0) + c
                self._hour = max(self._hour, h)
        if self._hour >= 0:
            self.prune(self._hour)


class LogVolume:
    """Every worker's counts; what the daemon persists and the API charts."""

    def __init__(self, keep_hours: int = KEEP_HOURS) -> None:
        self.keep_hours = keep_hours
        self._workers: Dict[str, WorkerVolume] = {}

    def worker(self, name: str) -> WorkerVolume:
        vol = self._workers.get(name)
        if vol is None:
            vol = self._workers[name] = WorkerVolume(self.keep_hours)
        return vol

    def remove(self, name: str) -> None:
        self._workers.pop(name, None)

    def rename(self, old: str, new: str) -> None:
        if old in self._workers:
            self._workers[new] = self._workers.pop(old)

    def names(self) -> List[str]:
        return sorted(self._workers)

    def query(
        self, worker: Optional[str] = None, since: Optional[float] = None, until: Optional[float] = None
    ) -> List[Dict[str, Any]]:
        """Rows `{hour, worker, out, err, apm}` sorted by hour then worker (the chart's data)."""
        rows: List[Dict[str, Any]] = []
        for name in self.names():
            if worker is not None and name != worker:
                continue
            series = self._workers[name].series(since, until)
            hours = sorted({h for per in series.values() for h in per})
            for h in hours:
                row: Dict[str, Any] = {"hour": h, "worker": name}
                for stream in STREAMS:
                    row[stream] = series.get(stream, {}).get(h, 0)
                rows.append(row)
        rows.sort(key=lambda r: (r["hour"], r["worker"]))
        return rows

    def snapshot(self) -> Dict[str, Any]:
        return {"version": 1, "workers": {name: vol.snapshot() for name, vol in self._workers.items()}}

    def restore(self, data: Dict[str, Any]) -> None:
        workers = (data or {}).get("workers", {})
        if not isinstance(workers, dict):
            return
        for name, per in workers.items():
            if isinstance(per, dict):
                self.worker(str(name)).restore(per)

"""Worker CPU/memory sampling on the loop: live stats deltas (1 s) and history (5 s).

One timer, one read of /proc/<pid>/stat per running instance per tick
(procstat.py), whoever is watching:

* while some live stream wants stats, every second: the values that changed
  since the previous tick go to `on_stats(payload)` (encoded once by the
  hub, shared by every client);
* every `history.interval` seconds: the average CPU and the RSS of each
  worker go into the history ring.

CPU is percent of one core, memory is RSS bytes, summed over a worker's
instances (per instance in the live payload).  Only the instance's main
process is measured, as in `apm list`.

Every number read is also kept per pid: `usage(pid)` answers from that
cache while it is fresher than `FRESH` seconds (the 1 s tick, or the 5 s
history tick when no stream wants stats), so `GET /api/v1/workers` and a
stream's snapshot cost no /proc reads for 500 workers; a pid the sampler has
not seen yet falls back to the supervisor's own reader.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from alter.supervise.states import InstanceState
from alter.web.history import History
from alter.web.procstat import CLK_TCK, ProcStat, read_stat
from alter.web.sysinfo import HostLoad

FAST = 1.0
FRESH = 7.0  # seconds a cached sample answers usage(): past the 5 s history tick, with slack for a busy loop
ALIVE = (InstanceState.RUNNING, InstanceState.STOPPING)

WorkerRow = Dict[str, Any]  # {"cpu", "memory", "instances": [{"index", "cpu", "memory"}]}


class StatsSampler:
    def __init__(
        self,
        loop: Any,
        supervisor: Any,
        history: History,
        on_stats: Callable[[Dict[str, Any]], None],
        wall: Callable[[], float] = time.time,
        host: Optional[HostLoad] = None,
    ) -> None:
        self.loop = loop
        self.sup = supervisor
        self.history = history
        self.on_stats = on_stats
        self.wall = wall
        self.host = host or HostLoad()
        self.fast_watchers = 0
        self.proc = ProcStat()
        self.current: Dict[str, WorkerRow] = {}  # last published rows (what a new client's snapshot holds)
        self.host_now: Dict[str, Any] = {}
        self._by_pid: Dict[int, Tuple[float, int, float]] = {}  # pid -> (cpu, rss, loop time read)
        self._hist_prev: Dict[int, Tuple[int, int, float]] = {}  # pid -> (start, ticks, when)
        self._next_history = 0.0
        self._timer: Any = None
        self._running = False

    # ------------------------------------------------------------------ scheduling

    def start(self) -> None:
        self._running = True
        self._next_history = self.loop.time() + self.history.interval
        self._schedule()

    def stop(self) -> None:
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def watch(self, delta: int) -> None:
        """A stream that wants stats came (+1) or went (-1)."""
        was = self.fast_watchers
        self.fast_watchers = max(0, self.fast_watchers + delta)
        if was == 0 and self.fast_watchers and self._running:
            self._schedule(FAST)

    def _schedule(self, delay: Optional[float] = None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if delay is None:
            delay = FAST if self.fast_watchers else max(0.0, self._next_history - self.loop.time())
        self._timer = self.loop.call_later(delay, self._tick)

    # ------------------------------------------------------------------ sampling

    def _targets(self) -> List[Tuple[str, int, int]]:
        out = []
        for worker in self.sup.workers.values():
            for inst in worker.instances:
                if inst.pid is not None and inst.state in ALIVE:
                    out.append((worker.name, inst.index + 1, inst.pid))
        return out

    def _tick(self) -> None:
        self._timer = None
        if not self._running:
            return
        try:
            self.sample()
        finally:
            self._schedule()

    def sample(self) -> None:
        now = self.loop.time()
        targets = self._targets()
        fast = self.fast_watchers > 0
        if fast:
            rows: Dict[str, WorkerRow] = {}
            for name, index, pid in targets:
                got = self.proc.sample(pid, now)
                if got is None:
                    continue
                row = rows.setdefault(name, {"cpu": 0.0, "memory": 0, "instances": []})
                cpu, rss = round(got[0], 1), got[1]
                self._by_pid[pid] = (cpu, rss, now)
                row["instances"].append({"index": index, "cpu": cpu, "memory": rss})
                row["cpu"] = round(row["cpu"] + cpu, 1)
                row["memory"] += rss
            self.proc.forget_except(pid for _, _, pid in targets)
            changed = {n: r for n, r in rows.items() if self.current.get(n) != r}
            for gone in [n for n in self.current if n not in rows]:
                changed[gone] = {"cpu": None, "memory": None, "instances": []}
            self.current = rows
            self.host_now = self.host.sample()
            self.on_stats({"t": round(self.wall(), 3), "workers": changed, "host": self.host_now})
        if now >= self._next_history - 0.05:
            self._next_history = now + self.history.interval
            self._record_history(targets, now, cache=not fast)
        if len(self._by_pid) > len(targets):
            alive = {pid for _, _, pid in targets}
            for pid in [p for p in self._by_pid if p not in alive]:
                del self._by_pid[pid]

    def usage(self, pid: int) -> Tuple[Optional[float], Optional[int]]:
        """(cpu %, rss bytes) of a live pid: the cached sample while fresh, else the supervisor's reader."""
        got = self._by_pid.get(pid)
        if got is not None and self.loop.time() - got[2] <= FRESH:
            return got[0], got[1]
        usage: Tuple[Optional[float], Optional[int]] = self.sup.ops.usage(pid)
        return usage

    def _record_history(self, targets: List[Tuple[str, int, int]], now: float, cache: bool = True) -> None:
        values: Dict[str, Tuple[Optional[float], Optional[float]]] = {}
        prev = self._hist_prev
        fresh: Dict[int, Tuple[int, int, float]] = {}
        for name, _index, pid in targets:
            got = read_stat(pid)
            if got is None:
                continue
            ticks, rss, start = got
            fresh[pid] = (start, ticks, now)
            old = prev.get(pid)
            cpu = 0.0
            if old is not None and old[0] == start and now > old[2]:
                cpu = max(0.0, (ticks - old[1]) / CLK_TCK / (now - old[2]) * 100.0)
            if cache:
                self._by_pid[pid] = (round(cpu, 1), rss, now)
            cpu_sum, mem_sum = values.get(name, (0.0, 0.0))
            values[name] = ((cpu_sum or 0.0) + cpu, (mem_sum or 0.0) + rss)
        self._hist_prev = fresh
        self.history.record(round(self.wall(), 3), values)

    def snapshot(self) -> Dict[str, Any]:
        return {"t": round(self.wall(), 3), "workers": dict(self.current), "host": self.host_now}

    def renamed(self, old: str, new: str) -> None:
        self.history.rename(old, new)
        if old in self.current:
            self.current[new] = self.current.pop(old)

    def removed(self, name: str) -> None:
        self.history.remove(name)
        self.current.pop(name, None)

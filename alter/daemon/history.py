"""Per-worker restart history: the last HISTORY_MAX lifecycle events of each worker, newest first.

    history = RestartHistory(loop, bus, supervisor)   # Daemon.start(); subscribes to the bus
    history.events("api", limit=20)                     # [{time, instance, kind, pid, exit_code, ...}]
    register_history_command(commands, history, sup)   # the `history` control command

Everything is derived from the event bus (alter/events.py), on the loop thread:

    kind     when                                                   reason
    start    an instance's process started (instance.start)         start | restart reason | backoff
    exit     it exited on its own without an error                  exit
    crash    it exited with an error (instance.crash)               crash | oom
    backoff  a restart is scheduled after an exit (state backoff)    crash | exit; `delay` in seconds
    restart  it was stopped in order to start again                 manual | reload | rolling | ...
    stop     it was stopped and stays stopped                       manual | disabled | scaled | shutdown
    failed   it could not be spawned (instance.failed), or the      the error | not restarting
             restart policy gave up (state errored)

Why an instance was stopped is decided once per loop turn: a `worker.updated`
in the same turn means a config change (`reload`, or `disabled` / `scaled`
when `enabled` / `instances` changed), a worker that still wants to run and
sets `rolling` is a rolling restart, anything else is `manual` (the CLI, the
API or a config reload asked for it); `context("shutdown")` marks daemon
exit.  Whether a stop was a restart is known when the instance, once
stopped, starts again in the same turn.

Memory: a bounded deque per worker (dropped with the worker, moved on
rename).  Not persisted: a daemon restart starts with empty histories.
"""

from __future__ import annotations

import time
from collections import deque
from contextlib import contextmanager
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Set, Tuple

from alter.errors import UsageError

HISTORY_MAX = 100  # events kept per worker
KINDS = ("start", "exit", "crash", "restart", "stop", "backoff", "failed")
STOPPED_AFTER = ("stopping", "backoff", "starting", "waiting")

Key = Tuple[str, int]  # (worker, 1-based instance)
Entry = Dict[str, Any]


def _entry(
    now: float,
    instance: int,
    kind: str,
    reason: str,
    pid: Optional[int] = None,
    exit_code: Optional[int] = None,
    signal: Optional[str] = None,
    uptime: Optional[float] = None,
    delay: Optional[float] = None,
) -> Entry:
    return {
        "time": round(now, 3),
        "instance": instance,
        "kind": kind,
        "pid": pid,
        "exit_code": exit_code,
        "signal": signal,
        "reason": reason,
        "uptime": uptime,
        "delay": delay,
    }


class RestartHistory:
    """Owns every worker's history; all methods run on the loop thread."""

    def __init__(
        self,
        loop: Any,
        bus: Any,
        supervisor: Any = None,
        wall: Callable[[], float] = time.time,
        size: int = HISTORY_MAX,
    ) -> None:
        self.loop = loop
        self.sup = supervisor
        self.wall = wall
        self.size = size
        self._events: Dict[str, Deque[Entry]] = {}
        self._exits: Dict[Key, Entry] = {}  # expected exits waiting to become a "stop" or a "restart"
        self._held: Dict[Key, Entry] = {}  # stopped this turn: a "restart" if it starts again this turn
        self._stop_reason: Dict[Key, str] = {}  # why each stopping instance is being stopped
        self._unreasoned: Set[Key] = set()  # went stopping this turn, reason decided at the end of it
        self._start_reason: Dict[Key, str] = {}
        self._last_exit: Dict[Key, Entry] = {}  # the latest "exit" entry (instance.crash upgrades it)
        self._updated: Dict[str, List[str]] = {}  # workers updated this turn -> changed options
        self._context: Optional[str] = None
        self._settle_pending = False
        self._unsubs = [bus.subscribe("instance.", self._on_event), bus.subscribe("worker.", self._on_event)]

    def close(self) -> None:
        for unsub in self._unsubs:
            unsub()
        self._unsubs = []

    @contextmanager
    def context(self, reason: str) -> Iterator[None]:
        """Stops that begin inside this block get `reason` (e.g. "shutdown")."""
        old, self._context = self._context, reason
        try:
            yield
        finally:
            self._context = old

    # ------------------------------------------------------------------ reading

    def events(self, name: str, limit: int = HISTORY_MAX, instance: Optional[int] = None) -> List[Entry]:
        """Newest first; copies (the caller may encode them on another thread)."""
        self._settle()  # nothing half-decided from this turn is hidden
        out: List[Entry] = []
        for item in reversed(self._events.get(name, ())):
            if instance is not None and item["instance"] != instance:
                continue
            out.append(dict(item))
            if len(out) >= limit:
                break
        return out

    def names(self) -> List[str]:
        return sorted(self._events)

    # ------------------------------------------------------------------ recording

    def _add(self, name: str, entry: Entry) -> None:
        ring = self._events.get(name)
        if ring is None:
            ring = self._events[name] = deque(maxlen=self.size)
        ring.append(entry)

    def _soon(self) -> None:
        if not self._settle_pending:
            self._settle_pending = True
            self.loop.call_soon(self._settle)

    def _settle(self) -> None:
        """End of a loop turn: give this turn's stops their reason, commit stops that did not restart."""
        self._settle_pending = False
        for key in self._unreasoned:
            self._stop_reason[key] = self._infer_reason(key[0])
        self._unreasoned.clear()
        self._updated.clear()
        held, self._held = self._held, {}
        for (name, _index), entry in held.items():
            self._add(name, entry)

    def _infer_reason(self, name: str) -> str:
        changed = self._updated.get(name)
        if changed is not None:
            if "enabled" in changed:
                return "disabled"
            if "instances" in changed:
                return "scaled"
            return "reload"
        worker = self.sup.workers.get(name) if self.sup is not None else None
        if worker is not None and getattr(worker, "desired", "") == "running" and worker.eff.get("rolling"):
            return "rolling"
        return "manual"

    def _on_event(self, kind: str, data: Dict[str, Any]) -> None:
        name = data.get("worker")
        if not isinstance(name, str):
            return
        if kind.startswith("worker."):
            self._on_worker(kind, name, data)
            return
        index = data.get("instance")
        if not isinstance(index, int):
            return
        key = (name, index)
        now = self.wall()
        if kind == "instance.state":
            self._on_state(key, str(data.get("state")), str(data.get("old")), data.get("pid"), now)
        elif kind == "instance.start":
            reason = self._start_reason.pop(key, "start")
            self._add(name, _entry(now, index, "start", reason, pid=data.get("pid")))
        elif kind == "instance.exit":
            uptime = _seconds(data.get("runtime_ms"))
            code, sig, pid = data.get("code"), data.get("signal"), data.get("pid")
            if data.get("expected"):
                self._exits[key] = _entry(now, index, "stop", "", pid=pid, exit_code=code, signal=sig, uptime=uptime)
            else:
                entry = _entry(now, index, "exit", "exit", pid=pid, exit_code=code, signal=sig, uptime=uptime)
                self._last_exit[key] = entry
                self._add(name, entry)
        elif kind == "instance.crash":
            last = self._last_exit.get(key)
            if last is not None and last["pid"] == data.get("pid"):
                last["kind"] = "crash"
                last["reason"] = "oom" if data.get("oom") else "crash"
        elif kind == "instance.failed":
            self._add(name, _entry(now, index, "failed", str(data.get("error") or "could not start")))

    def _on_state(self, key: Key, state: str, old: str, pid: Any, now: float) -> None:
        name, index = key
        if state == "stopping":
            if self._context is not None:
                self._stop_reason[key] = self._context
            else:
                self._unreasoned.add(key)
                self._soon()
        elif state == "stopped" and old in STOPPED_AFTER:  # a process ended, or a pending start was cancelled
            entry = self._exits.pop(key, None) or _entry(now, index, "stop", "")
            if key in self._unreasoned:
                self._unreasoned.discard(key)
                self._stop_reason[key] = self._infer_reason(name)
            entry["reason"] = self._stop_reason.pop(key, None) or self._context or "manual"
            entry["time"] = round(now, 3)
            self._held[key] = entry
            self._soon()
        elif state in ("starting", "waiting"):
            held = self._held.pop(key, None)
            if held is not None:
                held["kind"] = "restart"
                self._add(name, held)
                self._start_reason[key] = held["reason"]
            elif old == "backoff":
                self._start_reason[key] = "backoff"
            elif state == "starting" and old != "waiting":
                self._start_reason.pop(key, None)
        elif state == "backoff":
            last = self._last_exit.get(key)
            reason = last["kind"] if last is not None and last["kind"] == "crash" else "exit"
            self._add(name, _entry(now, index, "backoff", reason, pid=None, delay=self._delay(key, now)))
        elif state == "errored":
            self._add(name, _entry(now, index, "failed", "not restarting (restart policy)"))

    def _delay(self, key: Key, now: float) -> Optional[float]:
        worker = self.sup.workers.get(key[0]) if self.sup is not None else None
        if worker is None:
            return None
        for inst in worker.instances:
            if inst.index + 1 == key[1] and inst.next_start_at is not None:
                return round(max(0.0, inst.next_start_at - now), 3)
        return None

    def _on_worker(self, kind: str, name: str, data: Dict[str, Any]) -> None:
        if kind == "worker.updated":
            changed = data.get("changed")
            self._updated[name] = [str(c) for c in changed] if isinstance(changed, list) else []
            self._soon()
        elif kind == "worker.removed":
            self._forget(name)
        elif kind == "worker.renamed":
            old = str(data.get("old"))
            ring = self._events.pop(old, None)
            self._forget(old)
            if ring is not None:
                self._events[name] = ring

    def _forget(self, name: str) -> None:
        self._events.pop(name, None)
        for table in (self._exits, self._held, self._stop_reason, self._start_reason, self._last_exit):
            _drop(table, name)
        self._unreasoned = {k for k in self._unreasoned if k[0] != name}


def _drop(table: Dict[Key, Any], name: str) -> None:
    for key in [k for k in table if k[0] == name]:
        del table[key]


def _seconds(ms: Any) -> Optional[float]:
    if isinstance(ms, (int, float)) and not isinstance(ms, bool):
        return round(ms / 1000.0, 3)
    return None


# ---------------------------------------------------------------------------------------------- command


def parse_limit(value: Any, what: str = "history") -> int:
    """A limit argument: 1..HISTORY_MAX (default HISTORY_MAX); UsageError naming the value otherwise."""
    if value is None:
        return HISTORY_MAX
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= HISTORY_MAX:
        raise UsageError(
            f"{what}: limit must be a whole number from 1 to {HISTORY_MAX}, got {value!r}",
            hint=f"e.g. limit 20; at most the last {HISTORY_MAX} events per worker are kept",
        )
    return value


def history_reply(history: RestartHistory, supervisor: Any, target: Any, limit: Any = None) -> Dict[str, Any]:
    """{"worker", "events"} for `name` or `name#N`; NotFound for an unknown worker."""
    count = parse_limit(limit)
    if not isinstance(target, str) or not target:
        raise UsageError("history: argument 'name' is required", hint="name a worker (api) or an instance (api#2)")
    worker, index = supervisor.target(target)
    instance = index + 1 if index is not None else None
    return {"worker": worker.name, "events": history.events(worker.name, count, instance)}


def register_history_command(commands: Any, history: RestartHistory, supervisor: Any) -> None:
    """`history {"name", "limit"?}` -> {"worker", "events": [newest first]}."""

    def history_cmd(req: Any) -> None:
        req.reply(history_reply(history, supervisor, req.args.get("name"), req.args.get("limit")))

    commands.register("history", history_cmd)  # like `info`: only callers with write rights

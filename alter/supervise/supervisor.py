"""The Supervisor: the registry of workers and the API the daemon core and handlers use.

Everything runs on the loop thread.  Methods that finish later take callbacks
(`on_ready(detail_or_None)`, `on_done()`); they return the WorkerStatus right
away.  Persistent state (which workers exist, their config and origin, and
whether they should be running) changes only through this class, which then
calls `on_change()` so the daemon core can save `snapshot()` atomically.
"""

from __future__ import annotations

import difflib
import logging
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from alter.config import options
from alter.errors import ApmError, ConfigError, Conflict, NotFound, UsageError
from alter.events import EventBus
from alter.supervise import deps, launch
from alter.supervise.hooks import NO_HOOKS, SupervisorHooks
from alter.supervise.logsink import LogFactory, MemoryLog, WorkerLog
from alter.supervise.ops import ProcessOps
from alter.supervise.output import OutputPump
from alter.supervise.startup import ReadyCallback
from alter.supervise.states import ALIVE_STATES, InstanceState
from alter.supervise.status import effective_options, log_info, worker_status
from alter.supervise.worker import Worker

log = logging.getLogger("apm.supervise")

SNAPSHOT_VERSION = 1
SHUTDOWN_SLACK = 5.0  # seconds past the longest kill_timeout before shutdown gives up waiting
LIVE_ONLY = ("instances", "enabled", "name", "namespace")  # options `update` applies without a restart


class Supervisor:
    def __init__(
        self,
        loop: Any,
        ops: ProcessOps,
        log_factory: LogFactory,
        bus: Optional[EventBus] = None,
        daemon_id: str = "apm",
        on_change: Optional[Callable[[], None]] = None,
        strict: bool = False,
    ) -> None:
        self.loop = loop
        self.ops = ops
        self.log_factory = log_factory
        self.bus = bus if bus is not None else EventBus()
        self.daemon_id = daemon_id
        self.on_change = on_change
        self.strict = strict
        self.workers: Dict[str, Worker] = {}
        self.pumps: Set[OutputPump] = set()
        self.hooks: SupervisorHooks = NO_HOOKS  # the daemon plugs in its proxy glue (alter/supervise/hooks.py)
        self._quiet = 0  # >0 while restoring: no on_change per worker
        ops.on_orphan(self._orphan_reaped)

    # ------------------------------------------------------------------ helpers

    def make_log(self, name: str, config: Dict[str, Any]) -> WorkerLog:
        try:
            return self.log_factory(name, config)
        except Exception as exc:
            log.exception("cannot open the log of worker %s; its output is kept in memory only", name)
            fallback = MemoryLog(name, config)
            fallback.system(f"warning: cannot open the log ({exc}); output is not saved")
            return fallback

    def _changed(self) -> None:
        if self._quiet or self.on_change is None:
            return
        try:
            self.on_change()
        except Exception:
            log.exception("on_change callback failed")

    def exists(self, name: str) -> bool:
        return name in self.workers

    def is_running(self, name: str) -> bool:
        worker = self.workers.get(name)
        return worker is not None and worker.is_running()

    def get(self, name: str) -> Worker:
        if not isinstance(name, str) or not name:
            raise UsageError("a worker name is required", hint="run `apm list` to see the workers")
        worker = self.workers.get(name)
        if worker is None:
            close = difflib.get_close_matches(name, list(self.workers), n=3, cutoff=0.5)
            hint = ("did you mean " + " or ".join(close) + "?") if close else "run `apm list` to see the workers"
            raise NotFound(f"no worker named {name!r}", hint=hint)
        return worker

    def target(self, target: str) -> Tuple[Worker, Optional[int]]:
        """`api` -> (worker, None); `api#2` -> (worker, 1) with the index 0-based; NotFound when out of range."""
        if not isinstance(target, str) or not target:
            raise UsageError("a worker name is required", hint="name a worker (api) or an instance (api#2)")
        if target in self.workers or "#" not in target:
            return self.get(target), None
        name, _, number = target.rpartition("#")
        worker = self.get(name)
        if not number.isdigit():
            raise UsageError(
                f"{target!r}: the instance number after # must be a number",
                hint=f"instances are {name}#1 to {name}#{worker.instance_count()}",
            )
        n = int(number)
        if not 1 <= n <= worker.instance_count():
            raise NotFound(
                f"worker {name!r} has no instance #{n}",
                hint=f"instances are numbered from 1: {name}#1 to {name}#{worker.instance_count()}",
            )
        return worker, n - 1

    def _writable(self, name: str) -> Worker:
        worker = self.get(name)
        if worker.removing:
            raise Conflict(f"worker {name!r} is being removed", hint="wait a moment and run `apm list`")
        return worker

    def _check_new_name(self, name: Any) -> str:
        try:
            value = options.coerce(options.WORKER_OPTIONS["name"], name)
        except ValueError as exc:
            raise ConfigError(f"worker name {name!r}: {exc}", hint="pick another name") from None
        if value in self.workers and self.workers[value].removing:
            raise Conflict(f"worker {value!r} is being removed", hint="wait a moment, then try again")
        if value in self.workers:
            raise Conflict(
                f"a worker named {value!r} already exists", hint=f"pick another name, or `apm remove {value}` first"
            )
        for worker in self.workers.values():
            if worker.name != value and value in worker.spawned_names():
                raise Conflict(
                    f"the name {value!r} is still used by running processes of worker {worker.name!r} "
                    "(renamed from it)",
                    hint=f"restart {worker.name} first: apm restart {worker.name}",
                )
        return str(value)

    # ------------------------------------------------------------------ add / remove

    def add(
        self,
        config: Dict[str, Any],
        origin: Optional[Dict[str, Any]] = None,
        start: bool = True,
        on_ready: Optional[ReadyCallback] = None,
    ) -> Dict[str, Any]:
        """Register a worker (ConfigError on a bad config, Conflict on a taken name) and start it."""
        if not isinstance(config, dict):
            raise UsageError("a worker config must be an object of options")
        clean, warnings = options.coerce_block("worker", config)
        self._check_new_name(clean["name"])
        refused: Optional[ApmError] = None
        try:
            self.hooks.configure(clean["name"], options.effective(clean))
        except ApmError as exc:
            if not self._quiet:
                raise
            refused = exc  # restoring: keep the worker (the port may be free next time)
        worker = Worker(self, clean, origin or {"kind": "cli", "file": None})
        self.workers[worker.name] = worker
        for warning in warnings:
            worker.say("warning: " + warning)
        if refused is not None:
            log.error("restore: worker %s: %s", worker.name, refused)
            worker.say(f"error: {refused.message}" + (f" ({refused.hint})" if refused.hint else ""))
        self.bus.publish("worker.added", {"worker": worker.name, "origin": dict(worker.origin)})
        if start:
            worker.desired = "running"
            if worker.enabled:
                worker.start(on_ready)
            elif on_ready is not None:
                self.loop.call_soon(on_ready, None)
        self._changed()
        return worker_status(worker)

    def check_spawnable(self, config: Dict[str, Any]) -> None:
        """Raise StartFailed now if instance 0 of this (coerced) config could not be spawned."""
        eff = options.effective(config)
        launch.build_spec(str(eff.get("name") or "worker"), 0, eff, self.ops, self.daemon_id)

    def remove(self, name: str, on_done: Optional[Callable[[], None]] = None) -> None:
        """Stop the worker, then forget it (the name stays taken until it has stopped)."""
        worker = self._writable(name)
        worker.removing = True
        self._changed()

        def gone() -> None:
            if self.workers.get(worker.name) is worker:
                del self.workers[worker.name]
                self.hooks.removed(worker.name)
            worker.close()
            self.bus.publish("worker.removed", {"worker": worker.name})
            self._changed()
            if on_done is not None:
                on_done()

        worker.stop(gone, desired="stopped")

    # ------------------------------------------------------------------ start / stop / restart

    def start(
        self, name: str, instance: Optional[int] = None, on_ready: Optional[ReadyCallback] = None
    ) -> Dict[str, Any]:
        """Start a worker (or one instance: `instance` 1-based, or `name#N`)."""
        worker, index = self.target(name)
        self._writable(worker.name)
        if instance is not None:
            index = self.target(f"{worker.name}#{instance}")[1]
        if not worker.enabled:
            raise Conflict(
                f"worker {worker.name!r} is disabled", hint=f"enable it: apm update {worker.name} --enabled true"
            )
        self.check_spawnable(worker.config)
        was = worker.desired
        worker.start(on_ready, only=index)
        if was != worker.desired:
            self._changed()
        return worker_status(worker)

    def stop(self, name: str, on_done: Optional[Callable[[], None]] = None) -> Dict[str, Any]:
        """Stop a worker (or one instance with `name#N`, which leaves the worker wanted)."""
        worker, index = self.target(name)
        if index is not None:
            worker.instances[index].stop(on_done)
            return worker_status(worker)
        was = worker.desired
        worker.stop(on_done)
        if was != worker.desired:
            self._changed()
        return worker_status(worker)

    def restart(self, name: str, on_ready: Optional[ReadyCallback] = None) -> Dict[str, Any]:
        worker, index = self.target(name)
        self._writable(worker.name)
        if not worker.enabled:
            raise Conflict(
                f"worker {worker.name!r} is disabled", hint=f"enable it: apm update {worker.name} --enabled true"
            )
        self.check_spawnable(worker.config)
        was = worker.desired
        if index is not None:
            self._restart_one(worker, index, on_ready)
        else:
            worker.restart(on_ready)
        if was != worker.desired:
            self._changed()
        return worker_status(worker)

    def _restart_one(self, worker: Worker, index: int, on_ready: Optional[ReadyCallback]) -> None:
        from alter.supervise.startup import StartupWatch

        worker.desired = "running"
        inst = worker.instances[index]
        watch = StartupWatch(self.loop, int(worker.eff.get("startup_grace") or 0), on_ready)
        inst.restart()
        watch.track(inst)
        watch.seal()

    def start_all(self, names: Optional[List[str]] = None, on_ready: Optional[ReadyCallback] = None) -> List[str]:
        """Start workers (default: every enabled one) in depends_on order; ConfigError on a cycle."""
        chosen = [self.get(n) for n in names] if names is not None else list(self.workers.values())
        chosen = [w for w in chosen if w.enabled and not w.removing]
        graph = {w.name: list(w.eff.get("depends_on") or []) for w in chosen}
        ordered = deps.order(graph)
        waiting = [len(ordered)]
        first: List[Optional[Dict[str, Any]]] = [None]

        def one_ready(detail: Optional[Dict[str, Any]]) -> None:
            if detail is not None and first[0] is None:
                first[0] = detail
            waiting[0] -= 1
            if waiting[0] == 0 and on_ready is not None:
                on_ready(first[0])

        for name in ordered:
            self.workers[name].start(one_ready if on_ready is not None else None)
        if not ordered and on_ready is not None:
            self.loop.call_soon(on_ready, None)
        self._changed()
        return ordered

    def stop_all(self, on_done: Optional[Callable[[], None]] = None) -> List[str]:
        """Stop every worker (the daemon keeps running); returns the names that were not already stopped."""
        names = [
            w.name for w in self.workers.values() if w.desired == "running" or any(not i.idle for i in w.instances)
        ]
        self._stop_every(on_done, keep_desired=False)
        self._changed()
        return names

    def shutdown(self, on_done: Optional[Callable[[], None]] = None) -> List[str]:
        """Stop everything for daemon exit; desired states are kept so a restart brings workers back."""
        names = [w.name for w in self.workers.values() if any(not i.idle for i in w.processes())]
        longest = max([_stop_ms(w.eff) for w in self.workers.values()] or [0]) / 1000.0
        finished = [False]

        def done() -> None:
            if finished[0]:
                return
            finished[0] = True
            timer.cancel()
            self.close()
            if on_done is not None:
                on_done()

        def too_slow() -> None:
            stuck = [i.label for w in self.workers.values() for i in w.processes() if not i.idle]
            log.error("shutdown: gave up waiting for %s", ", ".join(stuck) or "nothing")
            done()

        timer = self.loop.call_later(longest + SHUTDOWN_SLACK, too_slow)
        self._stop_every(done, keep_desired=True)
        return names

    def _stop_every(self, on_done: Optional[Callable[[], None]], keep_desired: bool) -> None:
        workers = list(self.workers.values())
        remaining = [len(workers)]

        def one() -> None:
            remaining[0] -= 1
            if remaining[0] == 0 and on_done is not None:
                on_done()

        if not workers:
            if on_done is not None:
                self.loop.call_soon(on_done)
            return
        for worker in workers:
            worker.stop(one, desired=worker.desired if keep_desired else "stopped")

    # ------------------------------------------------------------------ changes

    def update(
        self, name: str, changes: Dict[str, Any], restart: bool = True, on_ready: Optional[ReadyCallback] = None
    ) -> Dict[str, Any]:
        """Change options (`None` removes one).  Instance count and `enabled` apply now; with `restart`
        a running worker restarts (rolling if set) when anything else changed."""
        worker = self._writable(name)
        if not isinstance(changes, dict):
            raise UsageError("update needs an object of options to change")
        merged = dict(worker.config)
        normalized = {options.normalize_name(str(k)): v for k, v in changes.items()}
        if "cmd" in normalized and normalized["cmd"] is not None:
            merged.pop("exec", None)
            merged.pop("params", None)
        for key, value in normalized.items():
            if value is None:
                if key == "name":
                    continue
                merged.pop(key, None)
            else:
                merged[key] = value
        clean, warnings = options.coerce_block("worker", merged)
        renamed = clean["name"] != worker.name
        if renamed:
            self._check_new_name(clean["name"])
        self.hooks.configure(clean["name"], options.effective(clean), worker.name)  # may refuse: nothing changed yet
        if renamed:
            self.rename(worker.name, clean["name"], configure=False)
        was_enabled, old_eff = worker.enabled, worker.eff
        changed = worker.apply_config(clean)
        for warning in warnings:
            worker.say("warning: " + warning)
        if changed:
            worker.say("config updated: " + ", ".join(changed))
        needs_restart = [
            c for c in changed if c not in LIVE_ONLY and not self.hooks.applies_live(c, old_eff, worker.eff)
        ]
        alive = any(i.state in ALIVE_STATES or i.state is InstanceState.BACKOFF for i in worker.instances)
        if worker.enabled and worker.desired == "running" and not was_enabled:
            worker.start(on_ready)
        elif restart and needs_restart and alive and worker.enabled:
            worker.restart(on_ready)
        elif on_ready is not None:
            self.loop.call_soon(on_ready, None)
        self.bus.publish("worker.updated", {"worker": worker.name, "changed": changed})
        self._changed()
        return worker_status(worker)

    def rename(self, old: str, new: str, configure: bool = True) -> Dict[str, Any]:
        worker = self._writable(old)
        new = self._check_new_name(new)
        if configure:
            self.hooks.configure(new, worker.eff, old)
        del self.workers[old]
        worker.rename(new)
        self.workers[new] = worker
        self.bus.publish("worker.renamed", {"worker": new, "old": old})
        self._changed()
        return worker_status(worker)

    def set_origin(self, name: str, origin: Dict[str, Any]) -> None:
        """Record where a worker's config now comes from (a reload moved its block, saveconf gave it a file)."""
        worker = self.get(name)
        worker.origin = dict(origin)
        self._changed()

    def copy(self, name: str, new: str) -> Dict[str, Any]:
        """Duplicate a worker's config under a new name; it runs if the original is wanted running."""
        worker = self.get(name)
        new = self._check_new_name(new)
        config = dict(worker.config)
        config["name"] = new
        origin = {"kind": "copy", "file": None, "from": worker.name}
        return self.add(config, origin, start=worker.desired == "running" and worker.enabled)

    def signal(self, target: str, signum: int) -> List[Dict[str, Any]]:
        """Send `signum` to the main pid of every running instance (or of `name#N`)."""
        worker, index = self.target(target)
        chosen = worker.wanted if index is None else [worker.instances[index]]
        sent = []
        for inst in chosen:
            pid = inst.send_signal(signum)
            if pid is not None:
                sent.append({"instance": inst.index + 1, "pid": pid})
        if not sent:
            raise Conflict(
                f"{target} has no running process to signal", hint=f"start it first: apm start {worker.name}"
            )
        return sent

    # ------------------------------------------------------------------ queries

    def status(self, name: str) -> Dict[str, Any]:
        return worker_status(self.get(name))

    def list(self) -> List[Dict[str, Any]]:
        return [worker_status(w) for w in self.workers.values()]

    def info(self, name: str) -> Dict[str, Any]:
        worker = self.get(name)
        data = worker_status(worker)
        data["options"] = effective_options(worker)
        data["logs"] = log_info(worker.log)
        data.update(self.hooks.info(worker))
        return data

    def worker_log(self, name: str) -> WorkerLog:
        """A worker's log pipeline (`alter.logs.pipeline.WorkerLog` in the daemon): NotFound if no such worker."""
        return self.get(name).log

    def environment(self, name: str, index: int = 0) -> Dict[str, str]:
        """The exact environment instance `index` (0-based) gets (StartFailed if it cannot be built)."""
        worker = self.get(name)
        if not 0 <= index < worker.instance_count():
            raise NotFound(
                f"worker {name!r} has no instance #{index + 1}",
                hint=f"instances are numbered from 1 to {worker.instance_count()}",
            )
        inst = worker.instances[index] if index < len(worker.instances) else None
        slot, port = (inst.slot, inst.port) if inst is not None else (0, None)
        env, _ = launch.child_env(worker.name, index, worker.eff, self.ops, self.daemon_id, slot=slot, port=port)
        return env

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> Dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "workers": [
                {"config": dict(w.config), "origin": dict(w.origin), "desired": w.desired}
                for w in self.workers.values()
                if not w.removing
            ],
        }

    def restore(self, snapshot: Dict[str, Any]) -> List[str]:
        """Re-create workers from `snapshot()` output; those wanted running start (depends_on order).

        A bad entry is logged and skipped; it never stops the others.  Returns the names restored.
        """
        entries = snapshot.get("workers") if isinstance(snapshot, dict) else None
        if not isinstance(entries, list):
            return []
        restored: List[str] = []
        self._quiet += 1
        try:
            for entry in entries:
                try:
                    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
                        raise ConfigError(f"bad entry {entry!r}")
                    origin = entry.get("origin") if isinstance(entry.get("origin"), dict) else None
                    self.add(entry["config"], origin, start=False)
                    name = options.coerce_block("worker", entry["config"])[0]["name"]
                    self.workers[name].desired = "running" if entry.get("desired") == "running" else "stopped"
                    restored.append(name)
                except ApmError as exc:
                    log.error("restore: skipped a saved worker: %s", exc)
            wanted = [n for n in restored if self.workers[n].desired == "running"]
            try:
                self.start_all(wanted)
            except ConfigError as exc:
                log.error("restore: %s; starting in saved order", exc)
                for name in wanted:
                    if self.workers[name].enabled:
                        self.workers[name].start()
        finally:
            self._quiet -= 1
        return restored

    # ------------------------------------------------------------------ engine internals

    def worker_state_changed(self, worker: Worker) -> None:
        for other in list(self.workers.values()):
            if other is not worker:
                other.check_deps()

    def _orphan_reaped(self, pid: int) -> None:
        for worker in list(self.workers.values()):
            for inst in worker.processes():
                inst.tree_changed()

    def close(self) -> None:
        """Release timers, pumps and logs (after shutdown)."""
        for pump in list(self.pumps):
            pump.close()
        for worker in self.workers.values():
            worker.close()


def _stop_ms(eff: Dict[str, Any]) -> int:
    """How long stopping an instance may take: its drain (before_stop), then kill_timeout."""
    return int(eff.get("kill_timeout") or 0) + int(eff.get("drain_timeout") or 0)

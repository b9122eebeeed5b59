"""One worker: its config, its instances, start/stop/restart (rolling), scaling, dependency waits.

The worker's status is derived from its instances (`states.worker_status`)
and published as `worker.state` whenever it changes.  Instances whose index
is beyond `instances` (after a scale-down) keep stopping in `self.instances`
and are dropped once stopped, so a quick scale-up reuses them instead of
racing a second process with the same cgroup/marker.

Overlapping rolling restarts (when `Supervisor.hooks.overlap()` says so, e.g.
a worker behind the proxy): a replacement `Instance` with the same index and
the other slot (its own marker/cgroup) starts in `incoming`; once the hooks'
`ready_check` passes it takes the old one's place in `instances`, and the old
one moves to `retiring` and stops (`before_stop` with handover: drained first).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set, Tuple

from alter.config import options
from alter.supervise import launch
from alter.supervise.deps import DependencyWait
from alter.supervise.instance import Instance
from alter.supervise.logsink import WorkerLog
from alter.supervise.ops import ProcessOps, SpawnSpec
from alter.supervise.output import OutputPump
from alter.supervise.rolling import RollingRestart
from alter.supervise.startup import ReadyCallback, StartupWatch
from alter.supervise.states import ALIVE_STATES, InstanceState, WorkerStatus, worker_status

if TYPE_CHECKING:
    from alter.supervise.supervisor import Supervisor

log = logging.getLogger("apm.supervise")
S = InstanceState


class Worker:
    def __init__(self, sup: Supervisor, config: Dict[str, Any], origin: Dict[str, Any]) -> None:
        self.sup = sup
        self.name: str = config["name"]
        self.config: Dict[str, Any] = dict(config)
        self.eff: Dict[str, Any] = options.effective(self.config)
        self.origin = dict(origin)
        self.desired = "stopped"
        self.removing = False
        self.instances: List[Instance] = []
        self.incoming: List[Instance] = []  # replacements starting next to a running instance (overlap)
        self.retiring: List[Instance] = []  # replaced instances, stopping
        self.pumps: Set[OutputPump] = sup.pumps
        self.log: WorkerLog = sup.make_log(self.name, self.eff)
        self._status = WorkerStatus.DISABLED if not self.enabled else WorkerStatus.STOPPED
        self._deps: Optional[DependencyWait] = None
        self._rolling: Optional[RollingRestart] = None
        self._resize()

    # ------------------------------------------------------------------ InstanceHost

    @property
    def loop(self) -> Any:
        return self.sup.loop

    @property
    def ops(self) -> ProcessOps:
        return self.sup.ops

    @property
    def strict(self) -> bool:
        return self.sup.strict

    def publish(self, kind: str, data: Dict[str, Any]) -> None:
        self.sup.bus.publish(kind, data)

    def build_spec(self, index: int, slot: int = 0, port: Optional[int] = None) -> Tuple[SpawnSpec, List[str]]:
        spec, warnings = launch.build_spec(self.name, index, self.eff, self.ops, self.sup.daemon_id, slot, port)
        return spec, warnings

    def claim_port(self, index: int) -> Optional[int]:
        return self.sup.hooks.claim_port(self.name, index, self.eff)

    def release_port(self, port: int) -> None:
        self.sup.hooks.release_port(port)

    def before_stop(self, instance: Instance, done: Callable[[], None], handover: bool) -> None:
        self.sup.hooks.before_stop(instance, done, handover)

    def processes(self) -> List[Instance]:
        """Every Instance with (or about to have) a process: the instances, replacements, replaced ones."""
        return self.instances + self.incoming + self.retiring

    def instance_count(self) -> int:
        return int(self.eff.get("instances") or 1)

    def instance_changed(self, instance: Instance) -> None:
        if instance.idle and instance.index >= self.instance_count() and instance in self.instances:
            self.loop.call_soon(self._drop_retired)
        self.refresh_status()

    # ------------------------------------------------------------------ status

    @property
    def enabled(self) -> bool:
        return bool(self.eff.get("enabled", True))

    @property
    def wanted(self) -> List[Instance]:
        count = self.instance_count()  # once, not per instance: status runs on every instance change
        return [i for i in self.instances if i.index < count]

    @property
    def status(self) -> WorkerStatus:
        return self._status

    def is_running(self) -> bool:
        """Every wanted instance is running (what depends_on and `apm wait` wait for)."""
        wanted = self.wanted
        return bool(wanted) and self.enabled and all(i.state is S.RUNNING for i in wanted)

    def compute_status(self) -> WorkerStatus:
        """The status right now (`status` is the last one published)."""
        count = self.instance_count()
        states = [i.state for i in self.instances if i.index < count] + [
            i.state for i in self.instances if i.index >= count and i.state in ALIVE_STATES
        ]
        return worker_status(states, self.enabled or any(s in ALIVE_STATES for s in states))

    def refresh_status(self) -> None:
        new = self.compute_status()
        if new is not self._status:
            old, self._status = self._status, new
            self.publish("worker.state", {"worker": self.name, "status": new.value, "old": old.value})
            self.sup.worker_state_changed(self)

    def say(self, message: str) -> None:
        try:
            self.log.system(message)
        except Exception:
            log.exception("log.system failed for %s", self.name)

    # ------------------------------------------------------------------ start / stop / restart

    def start(self, on_ready: Optional[ReadyCallback] = None, only: Optional[int] = None) -> None:
        """Start every idle instance (or instance `only`, 0-based), waiting for depends_on first."""
        self.desired = "running"
        watch = StartupWatch(self.loop, int(self.eff.get("startup_grace") or 0), on_ready)
        targets = [i for i in self.wanted if only is None or i.index == only]
        pending = self._pending_deps()
        for inst in targets:
            if inst.state is S.RUNNING:
                continue
            if pending and inst.state not in (S.STOPPING, S.STARTING):
                inst.wait_for_deps()
            else:
                inst.start(manual=True)
            watch.track(inst)
        if pending and self._deps is None and any(i.state is S.WAITING for i in self.instances):
            timeout = int(self.eff.get("depends_timeout") or 0)
            self.say(f"waiting for {', '.join(pending)} to be running (depends_timeout {timeout} ms)")
            self._deps = DependencyWait(self.loop, pending, timeout, self.sup.is_running, self._deps_ready)
        watch.seal()

    def _pending_deps(self) -> List[str]:
        pending = []
        for dep in self.eff.get("depends_on") or []:
            if dep == self.name:
                continue
            if not self.sup.exists(dep):
                self.say(f"warning: depends_on names {dep!r}, which is no worker here: ignored")
                continue
            if not self.sup.is_running(dep):
                pending.append(dep)
        return pending

    def _deps_ready(self, timed_out: bool, pending: List[str]) -> None:
        self._deps = None
        if timed_out:
            self.say(
                f"warning: {', '.join(pending)} still not running after depends_timeout "
                f"{self.eff.get('depends_timeout')} ms: starting anyway"
            )
        for inst in self.wanted:
            if inst.state is S.WAITING:
                inst.start(manual=True)

    def check_deps(self) -> None:
        if self._deps is not None:
            self._deps.check()

    def stop(self, on_done: Optional[Callable[[], None]] = None, desired: str = "stopped") -> None:
        self.desired = desired
        self._cancel_pending()
        everyone = self.processes()
        remaining = [len(everyone)]

        def one_done() -> None:
            remaining[0] -= 1
            if remaining[0] == 0 and on_done is not None:
                on_done()

        if not everyone:
            if on_done is not None:
                self.loop.call_soon(on_done)
            return
        for inst in everyone:
            inst.stop(one_done)

    def restart(self, on_ready: Optional[ReadyCallback] = None) -> None:
        self._cancel_pending()
        alive = [i for i in self.wanted if i.state in ALIVE_STATES]
        if not alive:
            self.start(on_ready)
            return
        self.desired = "running"
        if self.eff.get("rolling") and (len(self.wanted) > 1 or self.sup.hooks.overlap(self)):
            self._rolling = RollingRestart(self, on_ready)
            self._rolling.begin()
            return
        watch = StartupWatch(self.loop, int(self.eff.get("startup_grace") or 0), on_ready)
        for inst in self.wanted:
            inst.restart()
            watch.track(inst)
        watch.seal()

    def _cancel_pending(self) -> None:
        if self._deps is not None:
            self._deps.cancel()
            self._deps = None
        if self._rolling is not None:
            self._rolling.cancel()
            self._rolling = None

    # ------------------------------------------------------------------ config changes

    def apply_config(self, config: Dict[str, Any]) -> List[str]:
        """Take a new (validated) config; returns the names of the options that changed."""
        changed = sorted(k for k in set(config) | set(self.config) if config.get(k) != self.config.get(k))
        was_enabled = self.enabled
        self.config = dict(config)
        self.eff = options.effective(self.config)
        try:
            self.log.reconfigure(self.eff)
        except Exception:
            log.exception("log.reconfigure failed for %s", self.name)
        if "instances" in changed:
            self._resize()
        if was_enabled and not self.enabled:
            self.stop(desired=self.desired)
        self.refresh_status()
        return changed

    def _resize(self) -> None:
        count = self.instance_count()
        for index in range(len(self.instances), count):
            self.instances.append(Instance(self, index))
        for inst in self.instances:
            if inst.index >= count and not inst.idle:
                inst.stop()
        for inst in self.instances:
            inst.reopen_streams()
        if self.desired == "running" and self.enabled:
            idle = [i for i in self.wanted if i.state in (S.STOPPED, S.STOPPING)]
            if idle:
                if self._deps is not None:
                    for inst in idle:
                        inst.wait_for_deps()
                else:
                    for inst in idle:
                        inst.start(manual=True)
        self._drop_retired()

    def _drop_retired(self) -> None:
        count = self.instance_count()
        keep = []
        for inst in self.instances:
            if inst.index >= count and inst.idle:
                inst.close()
            else:
                keep.append(inst)
        if len(keep) != len(self.instances):
            self.instances = keep
            self.refresh_status()

    def rename(self, new: str) -> None:
        old_log = self.log
        self.name = new
        self.config["name"] = new
        self.eff["name"] = new
        self.log = self.sup.make_log(new, self.eff)
        for inst in self.instances:
            inst.reopen_streams()
        try:
            old_log.close()
        except Exception:
            log.exception("closing the log of %s failed", new)

    def close(self) -> None:
        self._cancel_pending()
        for inst in self.processes():
            inst.close()
        try:
            self.log.close()
        except Exception:
            log.exception("closing the log of %s failed", self.name)

    # ------------------------------------------------------------------ overlapping replacement

    def successor(self, old: Instance) -> Instance:
        """A stopped Instance that will replace `old` (same index, the other slot), kept in `incoming`."""
        new = Instance(self, old.index, slot=1 - old.slot)
        new.counters = old.counters
        new.last_exit = old.last_exit
        self.incoming.append(new)
        return new

    def promote(self, new: Instance, old: Instance, on_stopped: Callable[[], None]) -> None:
        """`new` takes `old`'s place; `old` drains (before_stop with handover), stops and is dropped."""
        if new in self.incoming:
            self.incoming.remove(new)
        self.instances[self.instances.index(old)] = new
        self.retiring.append(old)
        self.refresh_status()
        if old.pid is not None:
            self.say(f"{new.label}: pid {new.pid} takes over; pid {old.pid} drains, then stops")

        def stopped() -> None:
            self._forget(old)
            on_stopped()

        old.stop(stopped, handover=True)

    def discard(self, inst: Instance) -> None:
        """Stop a replacement and drop it once stopped (from the loop: callers may be inside its exit handling)."""
        self.loop.call_soon(inst.stop, lambda: self._forget(inst))

    def _forget(self, inst: Instance) -> None:
        for group in (self.incoming, self.retiring):
            if inst in group:
                group.remove(inst)
                inst.close()

    def spawned_names(self) -> Set[str]:
        """Worker names live processes of this worker were started under (rename bookkeeping)."""
        names = set()
        for inst in self.processes():
            for handle in (inst.handle, inst.leftover_handle):
                if handle is not None:
                    names.add(handle.marker.rsplit(":", 1)[-1].rsplit("#", 1)[0])
        return names

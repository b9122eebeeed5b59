"""What the daemon plugs into the engine (`Supervisor.hooks`); the defaults here do nothing.

The engine knows no sockets: the daemon's proxy glue (alter/daemon/proxy_glue.py)
implements these to give instances their `PORT`, bind a worker's listeners,
admit a new instance only once it accepts connections and drain an old one
before it is stopped.  Every method runs on the loop thread; callbacks
(`done`) may be called at once or later, exactly once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

if TYPE_CHECKING:
    from alter.supervise.instance import Instance
    from alter.supervise.worker import Worker


class SupervisorHooks:
    def configure(self, name: str, eff: Dict[str, Any], old_name: Optional[str] = None) -> None:
        """Worker `name` is about to get this effective config (`old_name`: what it was called until now).

        Raise an ApmError to refuse the change (nothing has changed yet)."""

    def applies_live(self, option: str, old: Dict[str, Any], new: Dict[str, Any]) -> bool:
        """A change of `option` (effective configs before/after) needs no restart of the instances."""
        return False

    def removed(self, name: str) -> None:
        """Worker `name` is gone (stopped and forgotten)."""

    def claim_port(self, worker: str, index: int, eff: Dict[str, Any]) -> Optional[int]:
        """A port for the next process of instance `index` (0-based), or None for none."""
        return None

    def release_port(self, port: int) -> None:
        """The process that had `port` exited."""

    def overlap(self, worker: Worker) -> bool:
        """Rolling restarts of this worker start each new process before stopping the old one."""
        return False

    def ready_check(self, instance: Instance, done: Callable[[bool], None]) -> None:
        """An overlapping new process runs: done(True) once it takes traffic, done(False) if it never does."""
        done(True)

    def before_stop(self, instance: Instance, done: Callable[[], None], handover: bool) -> None:
        """A running process is about to get SIGTERM (it is `stopping` already): done() lets it.

        `handover`: a replacement already takes its traffic (rolling restart)."""
        done()

    def info(self, worker: Worker) -> Dict[str, Any]:
        """Extra keys for `info` (the proxy's counters)."""
        return {}


NO_HOOKS = SupervisorHooks()

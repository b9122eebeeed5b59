"""Rolling restart: a worker's instances one at a time, `rolling_delay` apart.

Plain (the default): each instance restarts (stop, then start); the next one
goes `rolling_delay` after the previous one runs again.

Overlapping (`Supervisor.hooks.overlap(worker)`, e.g. a worker behind the
proxy): for a running instance, a replacement process starts next to it
(`Worker.successor`, the instance's other slot); once `hooks.ready_check`
says it takes traffic, it takes the instance's place and the old process
drains and stops (`Worker.promote` -> `before_stop(..., handover=True)`).
The next instance goes `rolling_delay` after the old process stopped.  If the
replacement dies or never becomes ready, it is stopped, the old process keeps
serving, and the restart stops there.

Either way the restart stops early (and reports the failure) when a new
process dies inside its startup grace, so a bad deploy never takes down every
instance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

from alter.supervise.instance import Instance
from alter.supervise.startup import ReadyCallback, StartupWatch
from alter.supervise.states import InstanceState

if TYPE_CHECKING:
    from alter.supervise.worker import Worker

S = InstanceState


class RollingRestart:
    def __init__(self, worker: Worker, on_ready: Optional[ReadyCallback]) -> None:
        self.worker = worker
        self.on_ready = on_ready
        self.queue = list(worker.wanted)
        self.current: Optional[Instance] = None
        self.fresh: Optional[Instance] = None  # the replacement of `current` being started (overlap)
        self.timer: Optional[Any] = None
        self.cancelled = False
        self.overlap = worker.sup.hooks.overlap(worker)
        self.watch = StartupWatch(
            worker.loop, int(worker.eff.get("startup_grace") or 0), self._finished, on_started=self._started
        )

    def begin(self) -> None:
        how = "; each new process takes over before the old one stops" if self.overlap else ""
        self.worker.say(
            f"rolling restart of {len(self.queue)} instances, {self.worker.eff.get('rolling_delay')} ms apart{how}"
        )
        self._next()

    def _next(self) -> None:
        self.timer = None
        if self.cancelled:
            return
        self.queue = [i for i in self.queue if i in self.worker.wanted]
        if not self.queue:
            self.current = None
            self.watch.seal()
            return
        inst = self.current = self.queue.pop(0)
        if self.overlap and inst.state is S.RUNNING:
            fresh = self.fresh = self.worker.successor(inst)
            self.watch.track(fresh)
            fresh.start(manual=True)
            return  # sealed once the last one has handed over
        inst.restart()
        self.watch.track(inst)
        if not self.queue:
            self.watch.seal()  # the last one: done once it survives its startup grace

    def _started(self, inst: Instance) -> None:
        if self.cancelled:
            return
        if inst is self.fresh:
            self.worker.sup.hooks.ready_check(inst, lambda ok: self._ready(inst, ok))
        elif inst is self.current and self.queue:
            self._after_delay()

    def _after_delay(self) -> None:
        delay = int(self.worker.eff.get("rolling_delay") or 0) / 1000.0
        self.timer = self.worker.loop.call_later(delay, self._next)

    def _ready(self, fresh: Instance, ok: bool) -> None:
        if self.cancelled or fresh is not self.fresh:
            return
        if not ok or fresh.state is not S.RUNNING:
            port = f" on port {fresh.port}" if fresh.port else ""
            message = (
                f"the new process of {fresh.label} did not take connections{port} in time; the old one keeps running"
            )
            self.watch.cancel()  # first: stopping the replacement must not report a second failure
            self._finished(
                {
                    "worker": self.worker.name,
                    "instance": fresh.index + 1,
                    "exit_code": None,
                    "signal": None,
                    "runtime_ms": 0,
                    "stderr": "",
                    "hints": ["make the program listen on the port apm gives it in $PORT (also $APM_PORT)"],
                    "error": "not ready",
                    "message": message,
                }
            )
            return
        old, self.current, self.fresh = self.current, None, None
        if old is None or old not in self.worker.instances:  # scaled down meanwhile
            self.watch.ready_now(fresh)  # untracked: stopping it is no failure
            self.worker.discard(fresh)
            self._handed_over()
            return
        self.worker.promote(fresh, old, self._handed_over)

    def _handed_over(self) -> None:
        if self.cancelled:
            return
        self.queue = [i for i in self.queue if i in self.worker.wanted]
        if self.queue:
            self._after_delay()
        else:
            self.current = None
            self.watch.seal()

    def _drop_fresh(self) -> None:
        fresh, self.fresh = self.fresh, None
        if fresh is not None:
            self.worker.discard(fresh)

    def _finished(self, detail: Optional[Dict[str, Any]]) -> None:
        if self.worker._rolling is self:
            self.worker._rolling = None
        if detail is not None:
            self.cancelled = True
            left = len(self.queue) + (1 if self.fresh is not None else 0)  # a replaced one is untouched too
            self._drop_fresh()
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            if left:
                self.worker.say(f"rolling restart stopped: {detail.get('message')}; {left} instance(s) left untouched")
        if self.on_ready is not None:
            cb, self.on_ready = self.on_ready, None
            cb(detail)

    def cancel(self) -> None:
        """Interrupted (stop, another restart): a waiting caller is told so."""
        self.cancelled = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.watch.cancel()  # first: stopping the replacement is no startup failure
        self._drop_fresh()
        if self.on_ready is not None:
            cb, self.on_ready = self.on_ready, None
            cb(
                {
                    "instance": None,
                    "exit_code": None,
                    "signal": None,
                    "runtime_ms": 0,
                    "stderr": "",
                    "hints": [],
                    "error": "rolling restart interrupted",
                    "message": f"the rolling restart of {self.worker.name} was interrupted",
                }
            )

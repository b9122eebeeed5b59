"""One instance of a worker: spawn, exit handling, restart policy, stop with SIGTERM/SIGKILL.

Every state move goes through `_move()` -> `states.change_state()`.  Timers
are loop timers (never sleeps); at most one "schedule" timer (spawn/backoff)
and one kill timer exist at a time.

Stop: the host's `before_stop` first (the proxy drains the instance), then
SIGTERM to the whole tree (process group + cgroup + marker), then after
`kill_timeout` SIGKILL to whatever is left.  The instance is `stopped` only
when its main pid is reaped AND no tree member is left; that is re-checked
when orphans are reaped and on a short timer after SIGKILL.

When the main pid exits on its own, leftovers of the tree (a daemonized
grandchild) get SIGTERM at once and SIGKILL after kill_timeout, or right
before the next attempt spawns, whichever comes first.
"""

from __future__ import annotations

import logging
import signal
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from alter.errors import ApmError
from alter.supervise import policy
from alter.supervise.logsink import WorkerLog
from alter.supervise.ops import ExitStatus, ProcessHandle, ProcessOps, SpawnSpec
from alter.supervise.output import CAPTURE_LIMIT, OutputPump
from alter.supervise.startup import hints_for
from alter.supervise.states import IDLE_STATES, InstanceState, change_state

try:
    from typing import Protocol
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol  # type: ignore

log = logging.getLogger("apm.supervise")

S = InstanceState
RECHECK_INTERVAL = 0.05  # seconds between tree checks after SIGKILL


class InstanceHost(Protocol):
    """What an instance needs from its worker."""

    name: str
    eff: Dict[str, Any]
    log: WorkerLog
    pumps: Set[OutputPump]

    @property
    def loop(self) -> Any: ...

    @property
    def ops(self) -> ProcessOps: ...

    @property
    def strict(self) -> bool: ...

    def publish(self, kind: str, data: Dict[str, Any]) -> None: ...

    def build_spec(self, index: int, slot: int = 0, port: Optional[int] = None) -> Tuple[SpawnSpec, List[str]]: ...

    def instance_changed(self, instance: Instance) -> None: ...

    def instance_count(self) -> int: ...

    def claim_port(self, index: int) -> Optional[int]: ...

    def release_port(self, port: int) -> None: ...

    def before_stop(self, instance: Instance, done: Callable[[], None], handover: bool) -> None: ...


class Instance:
    def __init__(self, host: InstanceHost, index: int, slot: int = 0) -> None:
        self.host = host
        self.index = index  # 0-based
        self.slot = slot  # 0 or 1: which marker/cgroup its processes use (launch.marker)
        self.port: Optional[int] = None  # PORT of the current process (proxied workers)
        self.state = S.STOPPED
        self.pid: Optional[int] = None
        self.handle: Optional[ProcessHandle] = None
        self.attempt = 0
        self.started_at: Optional[float] = None  # wall clock
        self.next_start_at: Optional[float] = None  # wall clock, in backoff
        self.last_exit: Optional[Dict[str, Any]] = None
        self.error: Optional[str] = None  # why it could not be spawned (failed)
        self.counters = policy.RestartCounters()
        self.watchers: List[Any] = []  # StartupWatch objects following the next attempt
        self.pumps: List[OutputPump] = []
        self._started_mono = 0.0
        self._schedule: Optional[Any] = None  # pending spawn / backoff timer
        self._kill_timer: Optional[Any] = None
        self._killed = False
        self._stop_callbacks: List[Callable[[], None]] = []
        self._after_stop: Optional[Callable[[], None]] = None
        self._leftover: Optional[ProcessHandle] = None
        self._leftover_timer: Optional[Any] = None
        self._stop_token: Optional[object] = None  # the stop whose before_stop is pending

    # ------------------------------------------------------------------ naming / events

    @property
    def label(self) -> str:
        return f"{self.host.name}#{self.index + 1}"

    def state_event(self, old: InstanceState) -> Dict[str, Any]:
        return {
            "worker": self.host.name,
            "instance": self.index + 1,
            "state": self.state.value,
            "old": old.value,
            "pid": self.pid,
        }

    def _move(self, new: InstanceState) -> None:
        if change_state(self, new, self.host.publish, strict=self.host.strict):
            self.host.instance_changed(self)

    def _say(self, message: str) -> None:
        try:
            self.host.log.system(message, index=self.index + 1)
        except Exception:
            log.exception("log.system failed for %s", self.label)

    @property
    def loop(self) -> Any:
        return self.host.loop

    @property
    def ops(self) -> ProcessOps:
        return self.host.ops

    # ------------------------------------------------------------------ start

    def start(self, manual: bool = True) -> None:
        """Run now (dependencies are the worker's business).  `manual` resets restart limits."""
        if manual:
            self.counters = self.counters.reset_limits()
        if self.state is S.STOPPING:
            self._after_stop = lambda: self.start(manual=False)
            return
        if self.state in (S.RUNNING, S.STARTING):
            return
        self._cancel_schedule()
        self.next_start_at = None
        self._move(S.STARTING)
        self._schedule = self.loop.call_later(0, self._spawn)

    def wait_for_deps(self) -> None:
        if self.state in (S.STOPPED, S.EXITED, S.ERRORED, S.FAILED, S.BACKOFF):
            self._cancel_schedule()
            self.next_start_at = None
            self._move(S.WAITING)

    def _spawn(self) -> None:
        self._schedule = None
        if self.state is not S.STARTING:
            return
        port: Optional[int] = None
        try:
            port = self.host.claim_port(self.index)
            spec, warnings = self.host.build_spec(self.index, self.slot, port)
            for warning in warnings:
                self._say("warning: " + warning)
            self._sweep_leftovers()
            spawned = self.ops.spawn(spec, self._make_exit_handler(self.attempt + 1))
        except ApmError as exc:
            self._release_port(port)
            self._spawn_failed(exc.message, exc.hint)
            return
        except OSError as exc:
            self._release_port(port)
            self._spawn_failed(f"cannot start {self.label}: {exc.strerror or exc}", "")
            return
        self.port = port
        self.attempt += 1
        self.pid = spawned.pid
        self.handle = spawned.handle
        self.error = None
        self._killed = False
        self._started_mono = self.loop.time()
        self.started_at = self.ops.wall()
        self._open_pumps(spawned.stdout_fd, spawned.stderr_fd)
        self._move(S.RUNNING)
        self._say(f"started pid {self.pid}")
        self.host.publish(
            "instance.start",
            {"worker": self.host.name, "instance": self.index + 1, "pid": self.pid, "attempt": self.attempt},
        )
        for watch in list(self.watchers):
            watch.started(self)

    def _spawn_failed(self, message: str, hint: str) -> None:
        self.error = message + (f" ({hint})" if hint else "")
        self.pid = None
        self._move(S.FAILED)
        self._say(f"cannot start: {message}" + (f" -- {hint}" if hint else ""))
        self.host.publish("instance.failed", {"worker": self.host.name, "instance": self.index + 1, "error": message})
        detail = {
            "worker": self.host.name,
            "instance": self.index + 1,
            "exit_code": None,
            "signal": None,
            "runtime_ms": 0,
            "stderr": "",
            "hints": [hint] if hint else [],
            "error": message,
            "message": message,
        }
        self._notify_failed(detail)

    def _open_pumps(self, out_fd: Optional[int], err_fd: Optional[int]) -> None:
        count = self.host.instance_count()
        for fd, stream in ((out_fd, "out"), (err_fd, "err")):
            if fd is None:
                continue
            try:
                writer = self.host.log.open_stream(self.index + 1, stream, count)
            except Exception:
                log.exception("cannot open the %s log of %s", stream, self.label)
                writer = _NullWriter()
            pump = OutputPump(
                self.loop,
                fd,
                writer,
                capture=CAPTURE_LIMIT if stream == "err" else 0,
                registry=self.host.pumps,
                stream=stream,
            )
            self.pumps.append(pump)  # this attempt's pumps (kept after EOF for the stderr capture)

    def reopen_streams(self) -> None:
        """The log or the instance count changed: give live pumps fresh writers."""
        count = self.host.instance_count()
        for pump in self.pumps:
            if pump.open:
                try:
                    pump.set_writer(self.host.log.open_stream(self.index + 1, pump.stream, count))
                except Exception:
                    log.exception("cannot reopen the log of %s", self.label)

    # ------------------------------------------------------------------ exit

    def _make_exit_handler(self, attempt: int) -> Callable[[ExitStatus], None]:
        def on_exit(status: ExitStatus) -> None:
            self._on_exit(attempt, status)

        return on_exit

    def _on_exit(self, attempt: int, status: ExitStatus) -> None:
        if attempt != self.attempt or self.handle is None:
            log.error("BUG: exit of a stale attempt of %s ignored", self.label)
            return
        for pump in list(self.pumps):
            pump.drain()
        runtime_ms = max(0, round((self.loop.time() - self._started_mono) * 1000))
        sig_name = status.signal_name
        exited_pid = self.pid
        self.last_exit = {
            "code": status.code,
            "signal": sig_name,
            "at": self.ops.wall(),
            "runtime_ms": runtime_ms,
            "oom": status.oom,
            "pid": exited_pid,
        }
        stderr = self._stderr_capture()
        handle = self.handle
        handle.reaped = True
        self._release_port(self.port)
        self.port = None
        event = {
            "worker": self.host.name,
            "instance": self.index + 1,
            "pid": exited_pid,
            "code": status.code,
            "signal": sig_name,
            "runtime_ms": runtime_ms,
            "oom": status.oom,
        }
        if self.state is S.STOPPING:
            self.host.publish("instance.exit", dict(event, expected=True))
            self._check_stopped()
            return
        if self.state is not S.RUNNING:
            log.error("BUG: %s exited while %s", self.label, self.state.value)
            return
        error = policy.is_error_exit(status.code, status.signal)
        self.host.publish("instance.exit", dict(event, expected=False))
        if error:
            self.host.publish("instance.crash", event)
        self.pid = None
        self.handle = None
        self._handle_leftovers(handle, exited_pid)
        detail: Dict[str, Any] = {
            "worker": self.host.name,
            "instance": self.index + 1,
            "exit_code": status.code,
            "signal": sig_name,
            "runtime_ms": runtime_ms,
            "stderr": stderr,
            "hints": hints_for(stderr),
            "message": f"{self.label} {policy.describe_exit(status.code, sig_name, runtime_ms, status.oom)}",
        }
        if status.oom:
            detail["hints"].insert(
                0, "the kernel killed it for using more than memory_limit: raise memory_limit or fix the leak"
            )
        if error:
            self._notify_failed(detail)
        else:
            # A clean exit inside startup_grace (`apm run true`) is a finished job, not a failed start.
            watchers, self.watchers = self.watchers, []
            for watch in watchers:
                watch.ready_now(self)
        decision = policy.decide(self.host.eff, status.code, status.signal, runtime_ms, self.counters)
        self.counters = decision.counters
        what = policy.describe_exit(status.code, sig_name, runtime_ms, status.oom)
        if decision.restart:
            self.next_start_at = self.ops.wall() + decision.delay_ms / 1000.0
            self._move(S.BACKOFF)
            self._say(f"{what}, restarting in {policy.format_ms(decision.delay_ms)}")
            self._schedule = self.loop.call_later(decision.delay_ms / 1000.0, self._backoff_over)
        else:
            self._move(S.ERRORED if error else S.EXITED)
            self._say(f"{what}, not restarting ({decision.reason})")

    def _stderr_capture(self) -> str:
        for pump in self.pumps:
            if pump.stream == "err":
                return bytes(pump.captured).decode("utf-8", "replace")
        return ""

    def _notify_failed(self, detail: Dict[str, Any]) -> None:
        watchers, self.watchers = self.watchers, []
        for watch in watchers:
            watch.failed(self, detail)

    def _backoff_over(self) -> None:
        self._schedule = None
        if self.state is not S.BACKOFF:
            return
        self.next_start_at = None
        self._move(S.STARTING)
        self._spawn()

    # ------------------------------------------------------------------ leftovers of an attempt

    def _handle_leftovers(self, handle: ProcessHandle, main_pid: Optional[int]) -> None:
        # Stop pumps from capturing into the next attempt: they stay until EOF, detached.
        self.pumps = []
        left = self.ops.alive_pids(handle)
        if not left:
            self.ops.release(handle)
            return
        self._say(f"{len(left)} process(es) left behind by pid {main_pid}: sending SIGTERM")
        self.ops.kill_tree(handle, signal.SIGTERM)
        self._sweep_leftovers()  # an older set, if any, goes now
        self._leftover = handle
        timeout = int(self.host.eff.get("kill_timeout") or 0) / 1000.0
        self._leftover_timer = self.loop.call_later(timeout, self._kill_leftovers)

    def _kill_leftovers(self) -> None:
        self._leftover_timer = None
        handle, self._leftover = self._leftover, None
        if handle is None:
            return
        if self.ops.alive_pids(handle):
            self.ops.kill_tree(handle, signal.SIGKILL)
        self.ops.release(handle)

    def _sweep_leftovers(self) -> None:
        if self._leftover_timer is not None:
            self._leftover_timer.cancel()
        self._kill_leftovers()

    def leftovers_gone(self) -> None:
        """An orphan was reaped: maybe the previous attempt's tree is now empty."""
        if self._leftover is not None and not self.ops.alive_pids(self._leftover):
            if self._leftover_timer is not None:
                self._leftover_timer.cancel()
                self._leftover_timer = None
            handle, self._leftover = self._leftover, None
            self.ops.release(handle)

    # ------------------------------------------------------------------ stop

    def stop(self, on_done: Optional[Callable[[], None]] = None, handover: bool = False) -> None:
        """Stop (before_stop, SIGTERM, then SIGKILL after kill_timeout); `on_done()` once really stopped.

        `handover`: a replacement process already serves in its place (rolling restart with overlap)."""
        self._after_stop = None
        self._cancel_schedule()
        self.next_start_at = None
        if on_done is not None:
            self._stop_callbacks.append(on_done)
        self._drop_watchers("stopped before its startup grace ended")
        if self.state is S.STOPPING:
            return
        if self.state is S.RUNNING:
            assert self.handle is not None
            self._move(S.STOPPING)
            self._killed = False
            token = self._stop_token = object()
            try:
                self.host.before_stop(self, lambda: self._terminate(token), handover)
            except Exception:
                log.exception("before_stop of %s failed", self.label)
                self._terminate(token)
            return
        self._move(S.STOPPED)
        self._finish_stop()

    def _terminate(self, token: object) -> None:
        """before_stop is done: SIGTERM now, SIGKILL after kill_timeout."""
        if token is not self._stop_token:
            return
        self._stop_token = None
        if self.state is not S.STOPPING or self.handle is None:
            return  # stopped meanwhile
        self.ops.kill_tree(self.handle, signal.SIGTERM)
        timeout = int(self.host.eff.get("kill_timeout") or 0) / 1000.0
        self._kill_timer = self.loop.call_later(timeout, self._kill)

    def restart(self) -> None:
        """Stop if needed, then start (manual)."""
        if self.state in (S.RUNNING, S.STOPPING):
            self.stop()
            self._after_stop = lambda: self.start(manual=True)
        else:
            self.start(manual=True)

    def _kill(self) -> None:
        self._kill_timer = None
        if self.state is not S.STOPPING or self.handle is None:
            return
        left = self.ops.alive_pids(self.handle)
        if left:
            self._killed = True
            self._say(
                f"still running {self.host.eff.get('kill_timeout')} ms after SIGTERM: sending SIGKILL "
                f"to {len(left)} process(es)"
            )
            self.ops.kill_tree(self.handle, signal.SIGKILL)
        self._check_stopped()

    def _check_stopped(self) -> None:
        if self.state is not S.STOPPING or self.handle is None:
            return
        if not self.handle.reaped:
            return
        if self.ops.alive_pids(self.handle):
            # Dying after SIGKILL: look again shortly (orphan reaps also trigger a look).
            if self._killed and self._kill_timer is None:
                self._kill_timer = self.loop.call_later(RECHECK_INTERVAL, self._recheck)
            return
        if self._kill_timer is not None:
            self._kill_timer.cancel()
            self._kill_timer = None
        handle, self.handle = self.handle, None
        self.ops.release(handle)
        self.pid = None
        self.pumps = []
        self._move(S.STOPPED)
        self._finish_stop()

    def _recheck(self) -> None:
        self._kill_timer = None
        if self.state is S.STOPPING and self.handle is not None and self.ops.alive_pids(self.handle):
            self.ops.kill_tree(self.handle, signal.SIGKILL)
        self._check_stopped()

    def tree_changed(self) -> None:
        """Something was reaped: a stopping instance may be done now."""
        if self.state is S.STOPPING:
            self._check_stopped()
        if self._leftover is not None:
            self.leftovers_gone()

    def _finish_stop(self) -> None:
        callbacks, self._stop_callbacks = self._stop_callbacks, []
        after, self._after_stop = self._after_stop, None
        for cb in callbacks:
            try:
                cb()
            except Exception:
                log.exception("stop callback of %s failed", self.label)
        if after is not None:
            after()

    def _drop_watchers(self, why: str) -> None:
        if self.watchers:
            self._notify_failed(
                {
                    "worker": self.host.name,
                    "instance": self.index + 1,
                    "exit_code": None,
                    "signal": None,
                    "runtime_ms": 0,
                    "stderr": "",
                    "hints": [],
                    "error": why,
                    "message": f"{self.label} {why}",
                }
            )

    def _cancel_schedule(self) -> None:
        if self._schedule is not None:
            self._schedule.cancel()
            self._schedule = None

    def _release_port(self, port: Optional[int]) -> None:
        if port is not None:
            try:
                self.host.release_port(port)
            except Exception:
                log.exception("release_port of %s failed", self.label)

    # ------------------------------------------------------------------ misc

    def send_signal(self, sig: int) -> Optional[int]:
        """Send `sig` to the main pid; returns the pid, or None when not running."""
        if self.state in (S.RUNNING, S.STOPPING) and self.pid is not None and self.ops.signal(self.pid, sig):
            return self.pid
        return None

    @property
    def leftover_handle(self) -> Optional[ProcessHandle]:
        return self._leftover

    @property
    def idle(self) -> bool:
        return self.state in IDLE_STATES

    def close(self) -> None:
        """The instance is dropped (worker removed / scaled down) after it stopped."""
        self._cancel_schedule()
        self._stop_token = None
        if self._kill_timer is not None:
            self._kill_timer.cancel()
            self._kill_timer = None
        self._sweep_leftovers()
        self._release_port(self.port)
        self.port = None


class _NullWriter:
    def feed(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

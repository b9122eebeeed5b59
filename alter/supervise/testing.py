"""A Supervisor wired to fakes, on the real EventLoop with a manual clock (for unit tests).

h = Harness()
h.sup.add({"exec": "sleep", "params": ["100"], "restart_err": True})
h.settle()                      # run everything that is due now
pid = h.pids("sleep")[0]
h.ops.exit(pid, code=1)         # the fake process dies
h.advance(0.5)                  # time passes: timers fire in order
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from alter.daemon.loop import EventLoop
from alter.events import EventBus
from alter.supervise.logsink import MemoryLog, MemoryLogFactory
from alter.supervise.ops import FakeOps
from alter.supervise.supervisor import Supervisor

MAX_STEPS = 100_000


class ManualClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


class Harness:
    def __init__(self, pipes: bool = False, is_root: bool = True, strict: bool = True) -> None:
        self.clock = ManualClock()
        self.loop = EventLoop(clock=self.clock)
        self.ops = FakeOps(call_soon=self.loop.call_soon, is_root=is_root, clock=self.clock, pipes=pipes)
        self.logs = MemoryLogFactory()
        self.bus = EventBus()
        self.events: List[Tuple[str, Dict[str, Any]]] = []
        self.bus.subscribe("*", lambda kind, data: self.events.append((kind, dict(data))))
        self.changes = 0
        self.sup = Supervisor(
            self.loop, self.ops, self.logs, self.bus, daemon_id="test", on_change=self._changed, strict=strict
        )

    def _changed(self) -> None:
        self.changes += 1

    # ------------------------------------------------------------------ time

    def settle(self) -> None:
        """Run ready callbacks and due timers until nothing is due at the current time."""
        for _ in range(MAX_STEPS):
            self.loop.run_once(0)
            if self.loop._next_timeout() != 0:  # private on purpose: test helper
                return
        raise AssertionError("the loop never settles (a zero-delay timer re-arms itself?)")

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass, firing every timer at its own time, in order."""
        end = self.clock.t + seconds
        self.settle()
        for _ in range(MAX_STEPS):
            wait = self.loop._next_timeout()
            if wait is None or self.clock.t + wait > end + 1e-9:
                break
            self.clock.t += max(wait, 1e-9)
            self.settle()
        else:
            raise AssertionError("too many timer steps")
        self.clock.t = max(self.clock.t, end)
        self.settle()

    # ------------------------------------------------------------------ looking

    def status(self, name: str) -> Dict[str, Any]:
        return self.sup.status(name)

    def states(self, name: str) -> List[str]:
        return [i["status"] for i in self.sup.status(name)["instances"]]

    def pids(self, name: str) -> List[Optional[int]]:
        return [i["pid"] for i in self.sup.status(name)["instances"]]

    def log(self, name: str) -> MemoryLog:
        return self.logs.logs[name]

    def kinds(self, prefix: str = "") -> List[str]:
        return [k for k, _ in self.events if k.startswith(prefix)]

    def close(self) -> None:
        self.ops.close()
        for pump in list(self.sup.pumps):
            pump.close()
        self.loop.close()


class RealHarness:
    """The real engine for integration tests: real EventLoop (main thread), LinuxOps, MemoryLogs.

    The test process becomes a child subreaper for the harness' lifetime, like the daemon.
    `close()` shuts the supervisor down and SIGKILLs anything still carrying this harness' marker.
    """

    def __init__(self, daemon_id: str, use_cgroups: bool = True, cgroup_root: Optional[str] = None) -> None:
        import time

        from alter.linux import cgroups, prctl
        from alter.linux.spawn import LinuxOps

        self.time = time.monotonic
        prctl.become_subreaper()
        self.daemon_id = daemon_id
        self.loop = EventLoop()
        self.ops = LinuxOps(daemon_id, use_cgroups=use_cgroups, cgroup_root=cgroup_root or cgroups.ROOT)
        self.ops.install(self.loop)
        self.logs = MemoryLogFactory()
        self.bus = EventBus()
        self.events: List[Tuple[float, str, Dict[str, Any]]] = []
        self.bus.subscribe("*", lambda kind, data: self.events.append((self.time(), kind, dict(data))))
        self.sup = Supervisor(self.loop, self.ops, self.logs, self.bus, daemon_id=daemon_id, strict=True)

    def run_until(self, predicate: Any, timeout: float = 10.0, what: str = "condition") -> Any:
        deadline = self.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if self.time() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            self.loop.run_once(0.02)

    def run_for(self, seconds: float) -> None:
        deadline = self.time() + seconds
        while self.time() < deadline:
            self.loop.run_once(max(0.0, min(0.02, deadline - self.time())))

    def status(self, name: str) -> Dict[str, Any]:
        return self.sup.status(name)

    def pid(self, name: str, index: int = 0) -> Optional[int]:
        return self.sup.status(name)["instances"][index]["pid"]

    def running(self, name: str) -> bool:
        return self.sup.status(name)["status"] == "running"

    def marked_pids(self) -> List[int]:
        """Every live process carrying one of this harness' APM_INSTANCE markers."""
        import os

        from alter.linux import proctree

        needle = f"APM_INSTANCE={self.daemon_id}:".encode()
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit() and proctree.is_alive(int(name)):
                try:
                    with open(f"/proc/{name}/environ", "rb") as f:
                        if needle in f.read():
                            found.append(int(name))
                except OSError:
                    pass
        return found

    def close(self) -> None:
        import os
        import signal

        from alter.linux import prctl

        done: List[bool] = []
        try:
            self.sup.shutdown(lambda: done.append(True))
            self.run_until(lambda: done, timeout=15, what="shutdown")
        finally:
            for pid in self.marked_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            self.ops.reap()
            self.ops.close()
            self.loop.close()
            prctl.clear_subreaper()

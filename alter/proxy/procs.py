"""The proxy processes, daemon side: spawn, talk, notice death, restart.

`ProcPool` starts N processes with `launcher + [--index K ...]` (default
launcher: `sys.executable -m alter.proxy.worker`, source mode; the zipapp
passes its own).  Each gets: its control channel end, its peer inbox, every
peer outbox and the max_conns memfd (pass_fds).  Death is noticed by EOF on
the control channel (not by waitpid: the daemon's SIGCHLD reaper may collect
the status first -- Popen.poll() copes with that), then the process is
restarted after a back-off (RESTART_MIN doubling up to RESTART_MAX while it
keeps dying young).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from alter.proxy import control
from alter.proxy.slots import ConnSlots

log = logging.getLogger("apm.proxy")

RESTART_MIN = 0.1
RESTART_MAX = 5.0
YOUNG = 10.0


def default_launcher() -> List[str]:
    return [sys.executable, "-m", "alter.proxy.worker"]


def _source_root() -> str:
    import alter

    return os.path.dirname(os.path.dirname(os.path.abspath(alter.__file__)))


class ProcHandle:
    def __init__(self, index: int) -> None:
        self.index = index
        self.popen: Optional[subprocess.Popen] = None
        self.channel: Optional[control.Channel] = None
        self.ready = False
        self.started = 0.0
        self.backoff = RESTART_MIN
        self.restarts = 0
        self.stats: Dict[str, Any] = {}
        self.restart_timer: Any = None

    @property
    def pid(self) -> Optional[int]:
        return self.popen.pid if self.popen is not None else None


class ProcPool:
    def __init__(
        self,
        loop: Any,
        count: int,
        launcher: Optional[Sequence[str]],
        on_ready: Callable[[ProcHandle], None],
        on_message: Callable[[ProcHandle, Dict[str, Any], List[int]], None],
        on_exit: Callable[[ProcHandle], None],
        env: Optional[Dict[str, str]] = None,
    ) -> None:
        self.loop = loop
        self.count = count
        self.launcher = list(launcher) if launcher else default_launcher()
        self.on_ready = on_ready
        self.on_message = on_message
        self.on_exit = on_exit
        self.env = dict(os.environ if env is None else env)
        if not launcher:
            root = _source_root()
            path = self.env.get("PYTHONPATH", "")
            self.env["PYTHONPATH"] = root + (os.pathsep + path if path else "")
        self.procs = [ProcHandle(i) for i in range(count)]
        self.closing = False
        # Peer inboxes: pair k = (outbox end every process writes to, inbox end process k reads).
        self.peer_pairs = (
            [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(count)] if count > 1 else []
        )
        self.slots_fd = ConnSlots.create(count)
        self.slots = ConnSlots(self.slots_fd, count, -1)

    def start(self) -> None:
        for handle in self.procs:
            self.spawn(handle)

    def spawn(self, handle: ProcHandle) -> None:
        handle.restart_timer = None
        if self.closing:
            return
        parent_end, child_end = control.socketpair()
        fds = [child_end.fileno(), self.slots_fd]
        argv = list(self.launcher) + [
            "--index", str(handle.index), "--count", str(self.count), "--control", str(child_end.fileno()),
            "--slots", str(self.slots_fd), "--parent", str(os.getpid()),
        ]  # fmt: skip
        if self.peer_pairs:
            inbox = self.peer_pairs[handle.index][1].fileno()
            outboxes = [pair[0].fileno() for pair in self.peer_pairs]
            fds += [inbox] + outboxes
            argv += ["--inbox", str(inbox), "--outboxes", ",".join(map(str, outboxes))]
        try:
            handle.popen = subprocess.Popen(argv, pass_fds=fds, env=self.env, stdin=subprocess.DEVNULL, close_fds=True)
        except OSError as exc:
            log.error("proxy: cannot start proxy process %d (%s): %s", handle.index, " ".join(argv[:3]), exc)
            parent_end.close()
            child_end.close()
            self._schedule_restart(handle)
            return
        child_end.close()
        handle.channel = control.Channel(parent_end)
        handle.started = time.monotonic()
        handle.ready = False
        self.loop.add_reader(parent_end.fileno(), self._readable, handle)

    def send(self, handle: ProcHandle, msg: Dict[str, Any], fds: Sequence[int] = ()) -> None:
        ch = handle.channel
        if ch is None or ch.closed:
            return
        try:
            pending = ch.send(msg, fds)
        except ValueError as exc:
            log.error("proxy: %s", exc)
            return
        if pending:
            self.loop.add_writer(ch.fileno(), self._writable, handle)

    def broadcast(self, msg: Dict[str, Any]) -> None:
        for handle in self.procs:
            if handle.ready:
                self.send(handle, msg)

    def _writable(self, handle: ProcHandle) -> None:
        ch = handle.channel
        if (ch is None or not ch.flush()) and ch is not None:
            self.loop.remove_writer(ch.fileno())

    def _readable(self, handle: ProcHandle) -> None:
        ch = handle.channel
        if ch is None:
            return
        try:
            messages = ch.receive()
        except EOFError:
            self._died(handle)
            return
        for msg, fds in messages:
            if msg.get("op") == "hello":
                handle.ready = True
                self.on_ready(handle)
            else:
                self.on_message(handle, msg, fds)
            for fd in fds:
                os.close(fd)

    def _died(self, handle: ProcHandle) -> None:
        ch = handle.channel
        if ch is not None:
            self.loop.remove_reader(ch.fileno())
            self.loop.remove_writer(ch.fileno())
            ch.close()
        handle.channel = None
        handle.ready = False
        code = None
        if handle.popen is not None:
            try:
                handle.popen.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                handle.popen.kill()
            code = handle.popen.poll()
        self.slots.clear(proc=handle.index)
        handle.stats = {}
        self.on_exit(handle)
        if self.closing:
            return
        log.warning("proxy: proxy process %d (pid %s) exited (code %s); restarting", handle.index, handle.pid, code)
        self._schedule_restart(handle)

    def _schedule_restart(self, handle: ProcHandle) -> None:
        young = time.monotonic() - handle.started < YOUNG
        delay = handle.backoff if young else RESTART_MIN
        handle.backoff = min(RESTART_MAX, delay * 2) if young else RESTART_MIN
        handle.restarts += 1
        handle.restart_timer = self.loop.call_later(delay, self.spawn, handle)

    def close(self, timeout: float = 3.0) -> None:
        """Stop every process (ask, then SIGKILL after `timeout`); blocks at most that long."""
        self.closing = True
        for handle in self.procs:
            if handle.restart_timer is not None:
                handle.restart_timer.cancel()
            if handle.channel is not None:
                self.send(handle, {"op": "shutdown"})
        deadline = time.monotonic() + timeout
        for handle in self.procs:
            p = handle.popen
            if p is None:
                continue
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    p.send_signal(signal.SIGKILL)
                    p.wait(timeout=2.0)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            if handle.channel is not None:
                self.loop.remove_reader(handle.channel.fileno())
                self.loop.remove_writer(handle.channel.fileno())
                handle.channel.close()
                handle.channel = None
        for a, b in self.peer_pairs:
            a.close()
            b.close()
        self.peer_pairs = []
        self.slots.close()
        os.close(self.slots_fd)

    def pids(self) -> List[int]:
        return [h.pid for h in self.procs if h.pid is not None and h.popen is not None and h.popen.returncode is None]

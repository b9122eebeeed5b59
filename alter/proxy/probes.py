"""Admission probes: an instance joins the balancer only once a TCP connect to it succeeds.

The daemon reports an instance as "accepting" as soon as it runs; the program
inside may need a while before it listens.  The manager probes it with a
non-blocking connect every PROBE_FIRST seconds, doubling up to PROBE_MAX (each
attempt bounded by ATTEMPT_TIMEOUT), until one succeeds -- then `on_ok(worker,
key)` -- or the probe is stopped (instance gone, drained).  All on the
daemon's loop thread.
"""

from __future__ import annotations

import errno
import socket
from typing import Any, Callable, Dict, Optional, Tuple

PROBE_FIRST = 0.05
PROBE_MAX = 1.0
ATTEMPT_TIMEOUT = 1.0

Key = Tuple[str, str]  # (worker, "host:port")


class _Probe:
    __slots__ = ("host", "port", "delay", "sock", "timer")

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.delay = PROBE_FIRST
        self.sock: Optional[socket.socket] = None
        self.timer: Any = None


class Prober:
    def __init__(self, loop: Any, on_ok: Callable[[str, str], Any]) -> None:
        self.loop = loop
        self.on_ok = on_ok
        self.probes: Dict[Key, _Probe] = {}

    def start(self, worker: str, key: str, host: str, port: int) -> None:
        if (worker, key) not in self.probes:
            self.probes[(worker, key)] = _Probe(host, port)
            self._attempt(worker, key)

    def stop(self, worker: str, key: str) -> None:
        probe = self.probes.pop((worker, key), None)
        if probe is not None:
            self._reset(probe)

    def stop_worker(self, worker: str) -> None:
        for w, key in [k for k in self.probes if k[0] == worker]:
            self.stop(w, key)

    def probing(self, worker: str, key: str) -> bool:
        return (worker, key) in self.probes

    def _reset(self, probe: _Probe) -> None:
        if probe.timer is not None:
            probe.timer.cancel()
            probe.timer = None
        if probe.sock is not None:
            self.loop.remove_writer(probe.sock.fileno())
            probe.sock.close()
            probe.sock = None

    def _attempt(self, worker: str, key: str) -> None:
        probe = self.probes.get((worker, key))
        if probe is None:
            return
        probe.timer = None
        sock = socket.socket(socket.AF_INET6 if ":" in probe.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        err = sock.connect_ex((probe.host, probe.port))
        if err == 0:
            sock.close()
            self._ok(worker, key)
        elif err in (errno.EINPROGRESS, errno.EAGAIN):
            probe.sock = sock
            self.loop.add_writer(sock.fileno(), self._done, worker, key, sock, False)
            probe.timer = self.loop.call_later(ATTEMPT_TIMEOUT, self._done, worker, key, sock, True)
        else:
            sock.close()
            self._retry(worker, key)

    def _done(self, worker: str, key: str, sock: socket.socket, timed_out: bool) -> None:
        probe = self.probes.get((worker, key))
        if probe is None or probe.sock is not sock:
            return
        err = -1 if timed_out else sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self._reset(probe)
        if err == 0:
            self._ok(worker, key)
        else:
            self._retry(worker, key)

    def _retry(self, worker: str, key: str) -> None:
        probe = self.probes[(worker, key)]
        delay = probe.delay
        probe.delay = min(PROBE_MAX, delay * 2)
        probe.timer = self.loop.call_later(delay, self._attempt, worker, key)

    def _ok(self, worker: str, key: str) -> None:
        self.probes.pop((worker, key), None)
        self.on_ok(worker, key)

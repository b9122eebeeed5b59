"""The reverse proxy inside the daemon: the engine's hooks (alter/supervise/hooks.py) on a ProxyManager.

    glue = ProxyGlue(daemon)     # in Daemon.start(), before workers are restored
    ...
    glue.close()                 # at daemon exit

* A worker with `server` gets its listeners from `configure()` (called by the
  supervisor before an add/update/rename takes effect: a port in use refuses
  the command, naming the address and, when it can be found, what holds it).
  `removed()` (or an update without `server`) closes them.
* The proxy processes start with the first such worker and stop with the last
  one: an apm without proxied workers runs none (and never imports alter.proxy).
* Every process of a proxied instance gets a fresh loopback port
  (`PortAllocator`, in PORT / APM_PORT); it is released when the process exits.
* The upstream list is recomputed from the worker's instances on every
  `instance.state` event: running -> accepting (the manager admits it once
  its probe connects), stopping -> draining, anything else -> gone.
* Rolling restarts overlap (`overlap()`): the engine starts the new process,
  `ready_check()` waits for the manager's probe, then `before_stop(handover)`
  drains the old one before its SIGTERM.  A plain stop drains for at most
  `drain_timeout` ms (0: not at all).
* Proxy processes are children of the daemon: the SIGCHLD reaper may collect
  them as orphans; `_orphan()` tells their Popen so nothing waits on a reused pid.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set

from alter.errors import ApmError, ConfigError
from alter.supervise.hooks import SupervisorHooks
from alter.supervise.states import InstanceState

if TYPE_CHECKING:
    from alter.proxy import PortAllocator, ProxyManager
    from alter.supervise.instance import Instance
    from alter.supervise.worker import Worker

log = logging.getLogger("apm.proxy")

HOST = "127.0.0.1"  # where instances listen (PORT) and the proxy connects
READY_TIMEOUT = 30.0  # seconds a rolling restart waits for a new process to accept connections
HANDOVER_LIMIT = 65.0  # seconds (past drain_timeout) a replaced process may drain: the manager gives up after 61


def proxy_launcher() -> Optional[List[str]]:
    """argv that runs `alter.proxy.worker.main()`: the zipapp (or console script) with `__proxy-worker`,
    or None in a source checkout (the manager then runs `python -m alter.proxy.worker`)."""
    from alter.control.client import launcher_command

    command = launcher_command()
    if command[1:3] == ["-m", "alter"]:
        return None
    return command + ["__proxy-worker"]


class ProxyGlue(SupervisorHooks):
    def __init__(self, daemon: Any) -> None:
        self.loop = daemon.loop
        self.sup = daemon.supervisor
        self.manager: Optional[ProxyManager] = None
        self.ports: Optional[PortAllocator] = None
        self.configured: Dict[str, Set[int]] = {}  # workers whose listeners the manager holds -> their ports
        self.sup.hooks = self
        self._unsubscribe = daemon.bus.subscribe("instance.state", self._on_state)
        daemon.ops.on_orphan(self._orphan)

    # ------------------------------------------------------------------ manager lifecycle

    def _manager(self) -> ProxyManager:
        if self.manager is None:
            from alter.proxy import ProxyManager

            self.manager = ProxyManager(self.loop, launcher=proxy_launcher(), log_fn=self._log)
        return self.manager

    def _stop_if_idle(self) -> None:
        if self.manager is not None and not self.configured:
            manager, self.manager = self.manager, None
            if manager.started:
                log.info("proxy: no worker has a server any more; stopping the proxy processes")
            manager.close()

    def close(self) -> None:
        self._unsubscribe()
        self.configured.clear()
        if self.manager is not None:
            manager, self.manager = self.manager, None
            manager.close()

    def _log(self, worker: str, level: str, message: str) -> None:
        target = self.sup.workers.get(worker) if worker else None
        if target is not None:
            target.say(message)
        if target is None or level in ("warning", "error"):
            number = logging.WARNING if level == "warning" else logging.ERROR if level == "error" else logging.INFO
            log.log(number, "%s%s", f"{worker}: " if worker else "", message)

    # ------------------------------------------------------------------ configuration (SupervisorHooks)

    def configure(self, name: str, eff: Dict[str, Any], old_name: Optional[str] = None) -> None:
        if not eff.get("server"):  # checked first: no alter.proxy import for workers without one
            self._remove(name)
            if old_name is not None:
                self._remove(old_name)
            self._stop_if_idle()
            return
        from alter.proxy import listeners_from_config, options_from_config

        listeners = listeners_from_config(eff)
        moving = old_name is not None and old_name != name and old_name in self.configured
        held = {port for ports in self.configured.values() for port in ports}  # a renamed worker's too
        manager = self._manager()
        if moving:
            assert old_name is not None
            manager.remove(old_name)
            self.configured.pop(old_name, None)
        try:
            self._check_free(name, listeners, held)
            manager.configure(name, listeners, eff.get("vanguard"), options_from_config(eff))
        except ConfigError as exc:
            if moving:
                self._restore(str(old_name))
            self._stop_if_idle()
            raise _explain(exc, listeners, self.sup) from None
        self.configured[name] = {spec.port for spec in listeners}
        if not manager.started:
            log.info("proxy: starting %d proxy process(es) for worker %s", manager.count, name)
            manager.start()
        self.loop.call_soon(self._push, name)  # after the change (a rename) took effect

    def applies_live(self, option: str, old: Dict[str, Any], new: Dict[str, Any]) -> bool:
        """Listener, TLS, Vanguard and proxy options are the proxy's: configure() applied them already.
        `server` needs the instances restarted only when it appears or goes (their PORT)."""
        if not (old.get("server") or new.get("server")):
            return False
        if option == "server":
            return bool(old.get("server")) == bool(new.get("server"))
        from alter.config.options import WORKER_OPTIONS
        from alter.proxy.model import OPTION_DEFAULTS

        declared = WORKER_OPTIONS.get(option)
        return option in OPTION_DEFAULTS or (declared is not None and declared.section in ("TLS", "Vanguard"))

    def _check_free(self, name: str, listeners: List[Any], held: Set[int]) -> None:
        """Refuse an address some other program listens on, even with SO_REUSEPORT (which would let our
        group join theirs and split the traffic): bind it once without, on ports this daemon does not hold."""
        for spec in listeners:
            if spec.port in held:
                continue  # ours (this worker's, kept) or another worker's: the manager names the conflict
            family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
            probe = socket.socket(family, socket.SOCK_STREAM)
            try:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6 and spec.host in ("::", ""):
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                probe.bind((spec.host, spec.port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    continue  # the manager's own bind reports anything else
                raise ConfigError(
                    f"worker {name}: cannot listen on {spec.id}: {exc.strerror or exc}",
                    hint=f"another program listens on port {spec.port}: stop it or choose another port",
                ) from None
            finally:
                probe.close()

    def _restore(self, name: str) -> None:
        from alter.proxy import listeners_from_config, options_from_config

        worker = self.sup.workers.get(name)
        if worker is None or self.manager is None:
            return
        try:
            listeners = listeners_from_config(worker.eff)
            self.manager.configure(name, listeners, worker.eff.get("vanguard"), options_from_config(worker.eff))
            self.configured[name] = {spec.port for spec in listeners}
        except ApmError as exc:
            log.error("proxy: worker %s lost its listeners: %s", name, exc)

    def _remove(self, name: str) -> None:
        if name in self.configured and self.manager is not None:
            self.manager.remove(name)
        self.configured.pop(name, None)

    def removed(self, name: str) -> None:
        self._remove(name)
        self._stop_if_idle()

    # ------------------------------------------------------------------ ports

    def claim_port(self, worker: str, index: int, eff: Dict[str, Any]) -> Optional[int]:
        if not eff.get("server"):
            return None
        if self.ports is None:
            from alter.proxy import PortAllocator

            self.ports = PortAllocator(HOST)
        return self.ports.allocate(f"{worker}#{index + 1}")

    def release_port(self, port: int) -> None:
        if self.ports is not None:
            self.ports.release(port)

    # ------------------------------------------------------------------ upstreams

    def _on_state(self, kind: str, data: Dict[str, Any]) -> None:
        name = data.get("worker")
        if isinstance(name, str) and name in self.configured:
            self._push(name)

    def _push(self, name: str) -> None:
        worker = self.sup.workers.get(name)
        if worker is None or self.manager is None or name not in self.configured:
            return
        from alter.proxy import Upstream

        upstreams = []
        for inst in worker.processes():
            if inst.port is None:
                continue
            if inst.state is InstanceState.RUNNING:
                upstreams.append(Upstream(inst.index, HOST, inst.port, "accepting", pid=inst.pid or 0))
            elif inst.state is InstanceState.STOPPING:
                upstreams.append(Upstream(inst.index, HOST, inst.port, "draining", pid=inst.pid or 0))
        self.manager.set_upstreams(name, upstreams)

    # ------------------------------------------------------------------ rolling restart, drain

    def overlap(self, worker: Worker) -> bool:
        return worker.name in self.configured

    def ready_check(self, instance: Instance, done: Callable[[bool], None]) -> None:
        name, port = instance.host.name, instance.port
        if self.manager is None or name not in self.configured or port is None:
            done(True)
            return
        self._push(name)
        timeout = max(READY_TIMEOUT, 2 * int(instance.host.eff.get("startup_grace") or 0) / 1000.0)
        self.manager.when_ready(name, port, done, timeout=timeout, host=HOST)

    def before_stop(self, instance: Instance, done: Callable[[], None], handover: bool) -> None:
        name, port = instance.host.name, instance.port
        if self.manager is None or name not in self.configured or port is None:
            done()
            return
        eff = instance.host.eff
        drain_ms = int(eff.get("drain_timeout") or 0)
        if handover:
            limit = drain_ms / 1000.0 + HANDOVER_LIMIT
        elif drain_ms > 0:
            limit = drain_ms / 1000.0
        else:
            done()
            return
        finish = _Once(done)
        finish.timer = self.loop.call_later(limit, finish)  # whatever the drain does, the stop goes on
        self.manager.drain(name, instance.index, finish.drained, port=port)

    # ------------------------------------------------------------------ info, reaping

    def info(self, worker: Worker) -> Dict[str, Any]:
        if self.manager is None or worker.name not in self.configured:
            return {"proxy": None}
        return {"proxy": self.manager.stats(worker.name)}

    def _orphan(self, pid: int) -> None:
        """The daemon's reaper collected a pid it did not spawn; if it was a proxy process, its Popen must
        not waitpid() it again (the pid may be reused).  The manager notices the death by control EOF."""
        if self.manager is None:
            return
        for handle in self.manager.pool.procs:
            popen = handle.popen
            if popen is not None and popen.pid == pid and popen.returncode is None:
                popen.returncode = -1  # status taken by the reaper: unknown here


class _Once:
    """Calls `fn` the first time it is called (a drain's end or its time limit), then cancels `timer`."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn: Optional[Callable[[], None]] = fn
        self.timer: Any = None

    def __call__(self) -> None:
        fn, self.fn = self.fn, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if fn is not None:
            fn()

    def drained(self, ok: bool) -> None:
        self()


# ---------------------------------------------------------------------------------------------- errors


def _explain(exc: ConfigError, listeners: List[Any], sup: Any) -> ConfigError:
    """A bind failure with what holds the port, when /proc tells (root sees every process)."""
    if "in use" not in exc.message:
        return exc
    for spec in listeners:
        if f"{spec.id}:" not in exc.message:
            continue
        holder = port_holder(spec.port, sup)
        if holder:
            return ConfigError(f"{exc.message} (held by {holder})", hint=exc.hint)
    return exc


def port_holder(port: int, sup: Any = None) -> Optional[str]:
    """`pid 1234 (python3 -m http.server)` or `worker api#1 (pid 1234)` for a listening TCP port, or None."""
    from alter.linux.sockets import LISTEN, socket_fds, tcp_inodes

    inodes = tcp_inodes(port, LISTEN)
    if not inodes:
        return None
    pids = (int(entry) for entry in os.listdir("/proc") if entry.isdigit())
    for pid, _, _ in socket_fds(pids, inodes):
        return _describe_pid(pid, sup)
    return None


def _describe_pid(pid: int, sup: Any) -> str:
    if pid == os.getpid():
        return f"this apm daemon (pid {pid})"
    for worker in list(getattr(sup, "workers", {}).values()):
        for inst in worker.processes():
            if inst.pid == pid:
                return f"worker {inst.label} (pid {pid})"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        cmd = ""
    if len(cmd) > 80:
        cmd = cmd[:77] + "..."
    return f"pid {pid} ({cmd})" if cmd else f"pid {pid}"

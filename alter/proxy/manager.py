"""ProxyManager: the daemon's handle on the proxy (see alter/proxy/__init__.py for the contract).

Runs on the daemon's event loop thread (`alter.daemon.loop.EventLoop` or
anything with the same add_reader/add_writer/call_later/call_soon/time).
Holds the listening sockets, the desired upstreams, the probes that admit new
instances, pending drains and the latest stats of every proxy process; the
processes themselves (procs.ProcPool) do all the traffic.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from alter.errors import ConfigError
from alter.proxy.model import DrainRequest, ListenerSpec, Upstream, UpstreamState, resolve_options
from alter.proxy.probes import Prober
from alter.proxy.procs import ProcHandle, ProcPool
from alter.proxy.reuseport import attach_ip_hash, bind_group, detach
from alter.proxy.stats import merge_stats, summary_line
from alter.proxy.steer import Steering, connections, established
from alter.proxy.tls import make_context
from alter.proxy.vanguard import Rules

log = logging.getLogger("apm.proxy")

LogFn = Callable[[str, str, str], None]  # (worker, level, message)
_WILDCARDS = ("0.0.0.0", "::", "")
DRAIN_POLL = 0.25  # seconds between looks at a draining instance's steered connections


class _Group:
    """One listener's reuseport group: socket K belongs to proxy process K."""

    def __init__(self, spec: ListenerSpec, socks: List[socket.socket]) -> None:
        self.spec = spec
        self.socks = socks
        self.slot = -1
        self.hashed = False
        self.steer: Optional[Steering] = None  # tcp:// with kernel steering on (alter/proxy/steer.py)
        self.steer_off = ""  # why a tcp:// listener is not steered

    def close(self) -> None:
        self.unsteer("")
        for s in self.socks:
            s.close()

    def unsteer(self, why: str) -> None:
        if self.steer is not None:
            self.steer.close()
            self.steer = None
        self.steer_off = why


class _Worker:
    def __init__(self, name: str) -> None:
        self.name = name
        self.groups: Dict[str, _Group] = {}  # by bind key host|port
        self.vanguard: Optional[Dict[str, Any]] = None
        self.rules = Rules(None)
        self.options: Dict[str, Any] = {}
        self.desired: Dict[str, Upstream] = {}
        self.live: Set[str] = set()
        self.draining: Set[str] = set()
        self.waiters: Dict[str, List[Tuple[Callable[[bool], Any], Any]]] = {}
        self.drains: List[DrainRequest] = []
        self.summary_timer: Any = None
        self.summary_last: Dict[str, int] = {}
        self.bans: Dict[str, float] = {}  # ip -> loop time the ban ends (from the processes' stats)


class ProxyManager:
    def __init__(self, loop: Any, processes: int = 0, launcher: Optional[Sequence[str]] = None,
                 log_fn: Optional[LogFn] = None, env: Optional[Dict[str, str]] = None) -> None:  # fmt: skip
        self.loop = loop
        self.count = processes if processes > 0 else (os.cpu_count() or 1)
        self.log_fn = log_fn or _default_log
        self.workers: Dict[str, _Worker] = {}
        self.reports: Dict[Tuple[str, str], Dict[int, Tuple[int, int]]] = {}
        self.prober = Prober(loop, self._probe_ok)
        self.pool = ProcPool(loop, self.count, launcher, self._on_ready, self._on_message, self._on_exit, env)
        self._free_slots = list(range(1023, -1, -1))
        self._stats_waiters: List[Tuple[Set[int], Callable[[], Any]]] = []
        self.started = False
        self.steer_broken = ""  # set once the kernel refused steering: tcp:// stays on the proxy path

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.started = True
        self.pool.start()

    def close(self) -> None:
        for entry in list(self.workers.values()):
            self._drop_worker(entry)
        self.workers.clear()
        self.pool.close()

    def pids(self) -> List[int]:
        return self.pool.pids()

    # ------------------------------------------------------------------ configuration

    def configure(self, worker: str, listeners: List[ListenerSpec], vanguard: Optional[Dict[str, Any]] = None,
                  options: Optional[Dict[str, Any]] = None) -> None:  # fmt: skip
        """Create or update a worker's listeners, Vanguard rules and proxy options (raises ConfigError)."""
        try:
            rules = Rules(vanguard)
        except ValueError as exc:
            raise ConfigError(f"worker {worker}: vanguard: {exc}", hint="fix the vanguard block") from None
        for spec in listeners:
            self._check_spec(worker, spec)
        entry = self.workers.get(worker) or _Worker(worker)
        opts = resolve_options(options)
        wanted: Dict[str, ListenerSpec] = {}
        for spec in listeners:
            if spec.bind_key in wanted:
                raise ConfigError(
                    f"worker {worker}: two servers on {spec.host}:{spec.port}", hint="give each server its own port"
                )
            wanted[spec.bind_key] = spec
        new_groups: Dict[str, _Group] = {}
        opened: List[_Group] = []
        try:
            for key, spec in wanted.items():
                group = entry.groups.get(key)
                if group is None:
                    try:
                        group = _Group(spec, bind_group(spec.host, spec.port, self.count))
                    except OSError as exc:
                        raise ConfigError(
                            f"worker {worker}: cannot listen on {spec.id}: {exc.strerror or exc}",
                            hint=_bind_hint(exc, spec.port),
                        ) from None
                    opened.append(group)
                group.spec = spec
                new_groups[key] = group
        except ConfigError:
            for group in opened:
                group.close()
            raise
        for group in new_groups.values():
            want_hash = rules.stateful and self.count > 1
            if want_hash and not group.hashed:
                group.hashed = attach_ip_hash(group.socks[0], self.count)
            elif not want_hash and group.hashed:
                detach(group.socks[0])
                group.hashed = False
            max_conns = int(opts["max_conns"] or 0)
            if max_conns and group.slot < 0 and self._free_slots:
                group.slot = self._free_slots.pop()
                self.pool.slots.clear(row=group.slot)
            elif not max_conns and group.slot >= 0:
                self._free_slots.append(group.slot)
                group.slot = -1
        dropped = [g for k, g in entry.groups.items() if k not in new_groups]
        entry.groups = new_groups
        entry.vanguard = dict(vanguard) if vanguard else None
        entry.rules = rules
        entry.options = dict(options or {})
        self.workers[worker] = entry
        for handle in self.pool.procs:
            if handle.ready:
                self._push_config(handle, entry)
        for group in dropped:
            if group.slot >= 0:
                self._free_slots.append(group.slot)
            group.close()
        self._steer_config(entry, opts)
        self._summary(entry)

    # ------------------------------------------------------------------ kernel steering (tcp://)

    def _steer_refusal(self, entry: _Worker, spec: ListenerSpec, opts: Dict[str, Any]) -> str:
        """Why this tcp:// listener needs every connection to pass through a proxy process ("" = it does not)."""
        if spec.secure:
            return "TLS is terminated by the proxy"
        if entry.vanguard:
            return "vanguard checks every connection"
        if opts["max_conns"]:
            return "max_conns counts every connection"
        if opts["tunnel_idle"]:
            return "idle connections are closed by the proxy"
        if not opts["tcp_steering"]:
            return "tcp_steering is off"
        return self.steer_broken

    def _steer_config(self, entry: _Worker, opts: Dict[str, Any]) -> None:
        for group in entry.groups.values():
            if group.spec.scheme != "tcp":
                continue
            why = self._steer_refusal(entry, group.spec, opts)
            if why:
                group.unsteer(why)
                continue
            if group.steer is None:
                try:
                    group.steer = Steering(group.spec.host, group.spec.port)
                    group.steer_off = ""
                except OSError as exc:
                    self.steer_broken = f"the kernel refused it: {exc.strerror or exc}"
                    group.steer_off = self.steer_broken
                    self.log_fn(entry.name, "info", f"proxy: no kernel steering for {group.spec.id} "
                                f"({self.steer_broken}); its connections go through the proxy processes")  # fmt: skip
        self._steer(entry)

    def _steer(self, entry: _Worker) -> None:
        """Point the steered listeners at the instances that take new work, in index order."""
        groups = [g for g in entry.groups.values() if g.steer is not None]
        if not groups:
            return
        targets = [
            (key, u.pid, u.port)
            for key, u in sorted(entry.desired.items(), key=lambda kv: (kv[1].index, kv[1].port))
            if key in entry.live and key not in entry.draining and u.state == UpstreamState.ACCEPTING.value
        ]
        for group in groups:
            try:
                group.steer.assign(targets)  # type: ignore[union-attr]
            except OSError as exc:
                why = f"the kernel refused a map update: {exc.strerror or exc}"
                group.unsteer(why)
                self.log_fn(entry.name, "warning", f"proxy: kernel steering for {group.spec.id} stopped ({why})")

    def _steered_ports(self, entry: _Worker) -> List[int]:
        return [g.spec.port for g in entry.groups.values() if g.steer is not None]

    def _check_spec(self, worker: str, spec: ListenerSpec) -> None:
        if spec.scheme not in ("http", "https", "ws", "wss", "tcp"):
            raise ConfigError(
                f"worker {worker}: unknown server scheme {spec.scheme!r}", hint="use http, https, ws, wss or tcp"
            )
        if spec.secure:
            if not spec.tls_cert:
                raise ConfigError(
                    f"worker {worker}: {spec.id} needs TLS but tls_cert is not set", hint="set tls_cert and tls_key"
                )
            try:
                make_context(spec.tls_cert, spec.tls_key, spec.tls_ca, spec.scheme != "tcp")
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise ConfigError(
                    f"worker {worker}: cannot load TLS files for {spec.id}: {exc}",
                    hint="check tls_cert / tls_key / tls_ca (PEM files readable by the daemon)",
                ) from None
        for name, other in self.workers.items():
            if name == worker:
                continue
            for group in other.groups.values():
                o = group.spec
                if o.port == spec.port and (o.host == spec.host or o.host in _WILDCARDS or spec.host in _WILDCARDS):
                    raise ConfigError(
                        f"worker {worker}: {spec.id} conflicts with worker {name}'s {o.id}",
                        hint="choose another port",
                    )

    def remove(self, worker: str) -> None:
        entry = self.workers.pop(worker, None)
        if entry is None:
            return
        self.pool.broadcast({"op": "remove", "worker": worker})
        self._drop_worker(entry)

    def _drop_worker(self, entry: _Worker) -> None:
        for group in entry.groups.values():
            if group.slot >= 0:
                self._free_slots.append(group.slot)
            group.close()
        entry.groups = {}
        self.prober.stop_worker(entry.name)
        for key in list(entry.waiters):
            self._fire_waiters(entry, key, False)
        for req in entry.drains:
            if not req.done:
                req.done = True
                self.loop.call_soon(req.callback, True)
        entry.drains = []
        if entry.summary_timer is not None:
            entry.summary_timer.cancel()
            entry.summary_timer = None

    # ------------------------------------------------------------------ upstreams

    def set_upstreams(self, worker: str, upstreams: List[Upstream]) -> None:
        """The worker's instances as the daemon sees them now (the whole list, every time)."""
        entry = self.workers.get(worker)
        if entry is None:
            entry = self.workers[worker] = _Worker(worker)
        new = {u.key: u for u in upstreams if u.state != UpstreamState.DOWN.value}
        for key in list(entry.desired):
            if key not in new:
                entry.live.discard(key)
                entry.draining.discard(key)
                self._stop_probe(entry, key)
                self._fire_waiters(entry, key, False)
        entry.desired = new
        for key, u in new.items():
            if u.state == UpstreamState.ACCEPTING.value and key not in entry.live and key not in entry.draining:
                self._start_probe(entry, key)
            elif u.state != UpstreamState.ACCEPTING.value:
                self._stop_probe(entry, key)
        self._push_upstreams(entry)
        self._steer(entry)
        self._check_drains(entry)

    def when_ready(self, worker: str, port: int, callback: Callable[[bool], Any], timeout: float = 30.0,
                   host: str = "127.0.0.1") -> None:  # fmt: skip
        """callback(True) once the upstream host:port accepts connections and takes traffic, or
        callback(False) after `timeout` seconds / when it is removed."""
        entry = self.workers.get(worker)
        key = f"{host}:{port}"
        if entry is not None and key in entry.live:
            self.loop.call_soon(callback, True)
            return
        if entry is None:
            entry = self.workers[worker] = _Worker(worker)
        timer = self.loop.call_later(timeout, self._waiter_timeout, worker, key, callback)
        entry.waiters.setdefault(key, []).append((callback, timer))

    def _waiter_timeout(self, worker: str, key: str, callback: Callable[[bool], Any]) -> None:
        entry = self.workers.get(worker)
        if entry is None:
            return
        items = entry.waiters.get(key, [])
        for item in items:
            if item[0] is callback:
                items.remove(item)
                callback(False)
                return

    def _fire_waiters(self, entry: _Worker, key: str, ok: bool) -> None:
        for callback, timer in entry.waiters.pop(key, []):
            timer.cancel()
            self.loop.call_soon(callback, ok)

    def _start_probe(self, entry: _Worker, key: str) -> None:
        u = entry.desired[key]
        self.prober.start(entry.name, key, u.host, u.port)

    def _stop_probe(self, entry: _Worker, key: str) -> None:
        self.prober.stop(entry.name, key)

    def _probe_ok(self, worker: str, key: str) -> None:
        entry = self.workers.get(worker)
        if entry is None or key not in entry.desired:
            return
        entry.live.add(key)
        self._push_upstreams(entry)
        self._steer(entry)
        self._fire_waiters(entry, key, True)

    def _targets(self, entry: _Worker) -> List[Dict[str, Any]]:
        out = []
        for key, u in entry.desired.items():
            draining = key in entry.draining or u.state == UpstreamState.DRAINING.value
            if key in entry.live:
                state = "draining" if draining else "live"
            elif not draining and self.prober.probing(entry.name, key):
                state = "probing"  # a standby: tried only while nothing is live (upstream.Balancer)
            else:
                continue
            out.append({"index": u.index, "host": u.host, "port": u.port, "kind": u.kind, "state": state})
        return out

    def _push_upstreams(self, entry: _Worker, handle: Optional[ProcHandle] = None) -> None:
        msg = {"op": "upstreams", "worker": entry.name, "targets": self._targets(entry)}
        for h in [handle] if handle is not None else self.pool.procs:
            if h.ready:
                self.pool.send(h, msg)

    # ------------------------------------------------------------------ drain

    def drain(self, worker: str, index: int, on_drained: Callable[[bool], Any], port: Optional[int] = None,
              timeout_ms: Optional[int] = None) -> None:  # fmt: skip
        """Stop sending new work to instance `index` (only the one on `port` when given) at once;
        call on_drained(True) when no proxy process has anything in flight on it, or
        on_drained(False) when the time ran out (see __init__.py for the rules)."""
        entry = self.workers.get(worker)
        if entry is None:
            self.loop.call_soon(on_drained, True)
            return
        keys = [k for k, u in entry.desired.items() if u.index == index and (port is None or u.port == port)]
        opts = resolve_options(entry.options)
        wait = (opts["drain_timeout"] if timeout_ms is None else timeout_ms) / 1000.0
        now = self.loop.time()
        hard = now + max(wait, opts["upstream_timeout"] / 1000.0 + 1.0)
        # A target still on probation may have had standby traffic: wait for the processes' reports too.
        live = [k for k in keys if k in entry.live or self.prober.probing(worker, k)]
        for key in keys:
            self._stop_probe(entry, key)
            entry.draining.add(key)
            self.reports.pop((worker, key), None)
        if not live:
            self.loop.call_soon(on_drained, True)
            return
        req = DrainRequest(worker, live, on_drained, now, now + wait, hard)
        entry.drains.append(req)
        self._push_upstreams(entry)
        self._steer(entry)
        if wait > 0:
            self.loop.call_later(wait, self._check_drains, entry)
            if self._steered_ports(entry):
                # Steered connections live in the instance itself: no proxy process reports them.
                self.loop.call_later(DRAIN_POLL, self._poll_drain, entry, req)
        self.loop.call_later(hard - now, self._expire_drain, entry, req)

    def _poll_drain(self, entry: _Worker, req: DrainRequest) -> None:
        if req.done or self.workers.get(entry.name) is not entry:
            return
        self._check_drains(entry)
        if not req.done and self.loop.time() < req.tunnel_deadline:
            self.loop.call_later(DRAIN_POLL, self._poll_drain, entry, req)

    def _check_drains(self, entry: _Worker) -> None:
        if not entry.drains:
            return
        now = self.loop.time()
        ready = [h for h in self.pool.procs if h.ready]
        ports = self._steered_ports(entry)
        steered = established(ports) if ports else set()
        for req in entry.drains:
            if req.done:
                continue
            ok = True
            for key in req.keys:
                if key not in entry.desired:
                    continue  # removed: nothing of ours can be in flight on it any more
                reports = self.reports.get((entry.name, key), {})
                for h in ready:
                    inflight, tunnels = reports.get(h.index, (1, 0))
                    if inflight > 0 or (tunnels > 0 and now < req.tunnel_deadline):
                        ok = False
                if ok and now < req.tunnel_deadline and connections(entry.desired[key].pid, steered):
                    ok = False
            if ok:
                req.done = True
                self.loop.call_soon(req.callback, True)
        entry.drains = [r for r in entry.drains if not r.done]

    def _expire_drain(self, entry: _Worker, req: DrainRequest) -> None:
        if not req.done:
            req.done = True
            self.log_fn(
                entry.name,
                "warning",
                "proxy: drain of {} timed out with work still in flight".format(", ".join(req.keys)),
            )
            req.callback(False)
        entry.drains = [r for r in entry.drains if not r.done]

    # ------------------------------------------------------------------ processes

    def _push_config(self, handle: ProcHandle, entry: _Worker) -> None:
        max_conns = int(resolve_options(entry.options)["max_conns"] or 0)
        listeners = [g.spec.wire(g.slot, max_conns) for g in entry.groups.values()]
        fds = [g.socks[handle.index].fileno() for g in entry.groups.values()]
        now = self.loop.time()
        bans = [[ip, int((until - now) * 1000)] for ip, until in entry.bans.items() if until > now]
        msg = {"op": "configure", "worker": entry.name, "options": entry.options, "vanguard": entry.vanguard,
               "listeners": listeners, "bans": bans}  # fmt: skip
        self.pool.send(handle, msg, fds)

    def _on_ready(self, handle: ProcHandle) -> None:
        for entry in self.workers.values():
            # Upstreams first: a process that starts serving a listener already knows where to send.
            self._push_upstreams(entry, handle)
            if entry.groups or entry.vanguard:
                self._push_config(handle, entry)

    def _on_exit(self, handle: ProcHandle) -> None:
        for reports in self.reports.values():
            reports.pop(handle.index, None)
        for entry in self.workers.values():
            self._check_drains(entry)
        self._answer_stats_waiters(handle.index)

    def _on_message(self, handle: ProcHandle, msg: Dict[str, Any], fds: List[int]) -> None:
        op = msg.get("op")
        if op == "stats":
            handle.stats = msg
            now = self.loop.time()
            for worker, snap in (msg.get("sites") or {}).items():
                entry = self.workers.get(worker)
                vg = snap.get("vanguard")
                if entry is not None and vg:  # remembered, so a proxy process that restarts gets its bans back
                    for ip, left_ms in vg.get("bans", []):
                        entry.bans[ip] = max(entry.bans.get(ip, 0.0), now + left_ms / 1000.0)
                    if len(entry.bans) > 10000:
                        entry.bans = {ip: t for ip, t in entry.bans.items() if t > now}
            self._answer_stats_waiters(handle.index)
        elif op == "drain":
            worker, key = str(msg.get("worker")), str(msg.get("key"))
            self.reports.setdefault((worker, key), {})[handle.index] = (
                int(msg.get("inflight", 0)),
                int(msg.get("tunnels", 0)),
            )
            entry = self.workers.get(worker)
            if entry is not None:
                self._check_drains(entry)
        elif op == "log":
            self.log_fn(str(msg.get("worker", "")), str(msg.get("level", "info")), str(msg.get("msg", "")))

    # ------------------------------------------------------------------ stats

    def stats(self, worker: str) -> Dict[str, Any]:
        """Counters for one worker, summed over the proxy processes (at most ~1 s old)."""
        entry = self.workers.get(worker)
        snaps = [h.stats.get("sites", {}).get(worker) for h in self.pool.procs if h.stats]
        out = merge_stats([s for s in snaps if s])
        out["processes"] = [
            {"index": h.index, "pid": h.pid, "ready": h.ready, "restarts": h.restarts, "conns": h.stats.get("conns", 0)}
            for h in self.pool.procs
        ]
        if entry is not None:
            for key, u in entry.desired.items():
                info = out["upstreams"].setdefault(key, {"index": u.index, "host": u.host, "port": u.port, "active": 0,
                                                         "inflight": 0, "tunnels": 0, "requests": 0, "failures": 0})  # fmt: skip
                info["state"] = (
                    "draining" if key in entry.draining or u.state == UpstreamState.DRAINING.value
                    else "live" if key in entry.live else "probing"
                )  # fmt: skip
            ports = self._steered_ports(entry)
            if ports:
                inodes = established(ports)
                for key, u in entry.desired.items():
                    out["upstreams"][key]["steered"] = connections(u.pid, inodes)
            out["listeners_configured"] = [g.spec.id for g in entry.groups.values()]
            out["steering"] = {
                g.spec.id: {"kernel": g.steer is not None, "instances": len(g.steer.steered) if g.steer else 0,
                            "why_not": g.steer_off}
                for g in entry.groups.values() if g.spec.scheme == "tcp"
            }  # fmt: skip
        return out

    def request_stats(self, callback: Callable[[], Any]) -> None:
        """Ask every process for fresh counters; callback() once all ready ones answered (or died)."""
        waiting = {h.index for h in self.pool.procs if h.ready}
        if not waiting:
            self.loop.call_soon(callback)
            return
        self._stats_waiters.append((waiting, callback))
        self.pool.broadcast({"op": "stats"})

    def _answer_stats_waiters(self, index: int) -> None:
        keep = []
        for waiting, callback in self._stats_waiters:
            waiting.discard(index)
            if waiting:
                keep.append((waiting, callback))
            else:
                self.loop.call_soon(callback)
        self._stats_waiters = keep

    def _summary(self, entry: _Worker) -> None:
        interval = entry.rules.log_summary
        if entry.summary_timer is not None:
            entry.summary_timer.cancel()
            entry.summary_timer = None
        if interval > 0:
            entry.summary_last = dict((self.stats(entry.name).get("vanguard") or {}).get("blocked", {}))
            entry.summary_timer = self.loop.call_later(interval, self._summary_tick, entry.name, interval)

    def _summary_tick(self, worker: str, interval: int) -> None:
        entry = self.workers.get(worker)
        if entry is None or entry.rules.log_summary != interval:
            return
        blocked = dict((self.stats(worker).get("vanguard") or {}).get("blocked", {}))
        line = summary_line(entry.summary_last, blocked, interval)
        entry.summary_last = blocked
        if line:
            self.log_fn(worker, "info", line)
        entry.summary_timer = self.loop.call_later(interval, self._summary_tick, worker, interval)


def _bind_hint(exc: OSError, port: int) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"another program listens on port {port}: stop it or choose another port"
    if exc.errno == errno.EACCES:
        return f"port {port} is privileged: run the daemon as root or use a port above 1023"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "the address is not on this host: use 0.0.0.0, 127.0.0.1 or one of its addresses"
    return "check the server address"


def _default_log(worker: str, level: str, msg: str) -> None:
    log.log(logging.getLevelName(level.upper()) if isinstance(logging.getLevelName(level.upper()), int) else logging.INFO,
            "%s: %s", worker, msg)  # fmt: skip

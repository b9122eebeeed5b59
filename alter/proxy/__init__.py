"""apm's reverse proxy: http/https/ws/wss/tcp listeners in front of a worker's instances.

THE DAEMON'S CONTRACT (everything the daemon calls; all on its loop thread)
=========================================================================

    from alter.proxy import ProxyManager, ListenerSpec, Upstream, PortAllocator
    from alter.proxy import listeners_from_config, options_from_config

    proxy = ProxyManager(loop, processes=0, launcher=None, log_fn=None, env=None)
        loop       the daemon's alter.daemon.loop.EventLoop
        processes  proxy processes to run; 0 = os.cpu_count()
        launcher   argv that starts `alter.proxy.worker.main()`; None = [sys.executable,
                   "-m", "alter.proxy.worker"] (source mode).  The manager appends
                   --index/--count/--control/--inbox/--outboxes/--slots/--parent.
        log_fn     log_fn(worker, level, message) for Vanguard lines, summaries, TLS
                   reloads, process restarts; default: logging "apm.proxy"
    proxy.start() -> None                      spawn the processes (call once)
    proxy.close() -> None                      stop them (blocks <= ~3 s), close listeners

    proxy.configure(worker: str, listeners: List[ListenerSpec],
                    vanguard: Optional[dict] = None, options: Optional[dict] = None) -> None
        Create/replace a worker's listeners (bound here, synchronously: raises
        alter.errors.ConfigError for a port in use, a privileged port, bad TLS files,
        a clash with another worker), its vanguard block (option-table canonical
        values) and options (keep_alive, trust_proxy, lowercase_hdrs, max_conns,
        trace_header, drain_timeout; also internal header_timeout, body_timeout,
        upstream_timeout, tunnel_idle, connect_timeout in ms).  Unchanged addresses
        keep their sockets: reconfiguring never drops a listener.  An empty list
        closes them.
    proxy.set_upstreams(worker: str, upstreams: List[Upstream]) -> None
        The full current list of the worker's instances.  Upstream(index, host, port,
        state) with state "accepting" | "draining" | "down".  An "accepting" upstream
        joins the balancer only once the MANAGER's TCP probe connects (every 50 ms,
        backing off to 1 s); "draining" / "down" / absent ones leave it at once.
        Identity is host:port: give every new instance process a fresh port.
    proxy.when_ready(worker: str, port: int, callback: Callable[[bool], Any],
                     timeout: float = 30.0, host: str = "127.0.0.1") -> None
        callback(True) once host:port passed the probe and takes traffic; False on
        timeout or removal.  The supervisor uses it in rolling restarts.
    proxy.drain(worker: str, index: int, on_drained: Callable[[bool], Any],
                port: Optional[int] = None, timeout_ms: Optional[int] = None) -> None
        Takes instance `index` (only the one on `port` if given) out of rotation at
        once; on_drained(True) when every proxy process reports no HTTP exchange in
        flight on it and no tunnel (WebSocket/TCP) left -- tunnels are waited for
        at most timeout_ms (default: the worker's drain_timeout; 0 = not at all);
        in-flight HTTP requests are always let finish, bounded by upstream_timeout
        + 1 s, after which on_drained(False).  Idle pooled connections to it are
        closed at once.  Afterwards stop the instance, then set_upstreams() without it.
    proxy.remove(worker: str) -> None          close its listeners, forget it
    proxy.stats(worker: str) -> dict           summed over processes, <= 1 s old:
        conns_active, conns_total, requests, status {"200": n, ...}, tls_errors,
        upstream_errors, refused, upstreams {host:port: {index, state (probing|live|
        draining), active, inflight, tunnels, idle, requests, failures}}, listeners
        {id: {active, total}}, vanguard {blocked {reason: n}, blocked_total, bans
        [[ip, ms_left]], bans_total, tracked_ips} | None, processes [{index, pid,
        ready, restarts, conns}]
    proxy.request_stats(callback: Callable[[], Any]) -> None
        fresh counters from every process, then callback()
    proxy.pids() -> List[int]                  the proxy processes (for the daemon's reaper:
                                               their exit statuses can be ignored)

    PortAllocator(host="127.0.0.1").allocate(owner: str) -> int / .release(port)
        loopback ports for PORT / APM_PORT, outside the ephemeral range, never
        handed out twice, cooling down 60 s after release.
    listeners_from_config(effective_worker_config) -> List[ListenerSpec]
    options_from_config(effective_worker_config) -> dict

Rolling restart of instance i (port p_old): start the new process on a new port
p_new, set_upstreams([... old accepting, new accepting]), when_ready(p_new),
drain(i, port=p_old), on_drained -> stop the old process, set_upstreams([... new]).

PROCESS MODEL
=============
The manager starts N proxy processes (`alter.proxy.worker`), each a single
thread with its own epoll loop.  Every listener is N sockets in one
SO_REUSEPORT group, bound and held by the daemon; socket K is passed to process
K with SCM_RIGHTS, so the kernel spreads connections with no accept lock and a
restarted process gets its socket (and its queued connections) back.
Configuration and upstream lists go down, stats (every second), drain progress
and log lines come up, as JSON over a SOCK_SEQPACKET socketpair per process
(control.py).  A process dies with the daemon (PR_SET_PDEATHSIG + control EOF)
and is restarted by the manager when it dies.  When a worker's Vanguard rate
limits, a classic BPF program steers each client IP to one process, so its
token bucket and ban live in exactly one place; an IP learnt from
X-Forwarded-For is checked with its owning process over a datagram socketpair
(peers.py).  max_conns is exact across processes through a shared memfd
(slots.py).

UPSTREAM KINDS
==============
An upstream is a `Target` behind the balancer (upstream.py).  Today a target is
an instance's loopback port with a pool of keep-alive connections.  The IPC
connector (sessions over an instance's stdin/stdout frames) plugs in as a
second Target kind (`Upstream.kind == "connector"`): its `acquire()` returns a
session object with UpstreamConn's surface (send(), owner callbacks
up_readable/up_failed/up_drained, close()), so balancing, Vanguard and the
HTTP/TCP state machines stay as they are.

See docs/proxy.md for the behaviour users see (headers, limits, status codes).
"""

from __future__ import annotations

from alter.proxy.manager import ProxyManager
from alter.proxy.model import ListenerSpec, Upstream, UpstreamState, listeners_from_config, options_from_config
from alter.proxy.ports import PortAllocator

__all__ = [
    "ListenerSpec",
    "PortAllocator",
    "ProxyManager",
    "Upstream",
    "UpstreamState",
    "listeners_from_config",
    "options_from_config",
]

"""In-process microbenchmark of the proxy's per-request Python work (no kernel, no other processes).

    python3 bench/proxy/micro.py                 # HTTP keep-alive exchange and TCP tunnel relay, µs per unit
    python3 bench/proxy/micro.py --n 50000 --case http

Drives the real `HttpConn` / `UpstreamConn` / `Tunnel` code with fake sockets (recv/send are list and
counter operations), so what is timed is exactly the Python work a proxy process does per request
(parse, Vanguard short-circuit, balancing, the forwarded head, the response head, pooling) and per relayed
chunk -- the part of "proxy CPU µs per request" that Python controls.  The kernel's share (two recv and two
send calls per proxied request) is measured by bench/proxy/run.py.  Figures are CPU time
(time.process_time), median of --rounds rounds, so a busy machine moves them little.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, Callable, Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from alter.proxy import tunnel as tunnel_mod  # noqa: E402
from alter.proxy.httpconn import HttpConn  # noqa: E402
from alter.proxy.reactor import IN, SMALL_READ  # noqa: E402
from alter.proxy.site import Site  # noqa: E402
from alter.proxy.testing import FakeFds, FakeListener, FakeProc, FakeReactor  # noqa: E402
from alter.proxy.upstream import UpstreamConn  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Sat, 21 Nov 2026 16:45:49 GMT\r\n"
    b"Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"c\r\nhello world\n\r\n0\r\n\r\n"
)


class FakeSock:
    """recv() hands out the queued chunks, then EAGAIN; send() accepts everything."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.inbox: List[bytes] = []
        self.sent = 0

    def fileno(self) -> int:
        return self.fd

    def recv(self, n: int) -> bytes:
        if self.inbox:
            return self.inbox.pop()
        raise BlockingIOError

    def send(self, data: bytes) -> int:
        self.sent += len(data)
        return len(data)

    def close(self) -> None:
        pass


def http_exchange(n: int, options: Dict[str, Any]) -> float:
    """CPU µs per proxied keep-alive request (client read -> upstream send -> upstream read -> client send)."""
    proc = FakeProc()
    site = Site(proc, "bench")  # type: ignore[arg-type]
    site.apply_options(options)
    site.balancer.update([{"index": 0, "host": "127.0.0.1", "port": 1}, {"index": 1, "host": "127.0.0.1", "port": 2}])
    ups = []
    for i, target in enumerate(site.balancer.live):
        up = UpstreamConn.__new__(UpstreamConn)
        up.reactor, up.target, up.owner, up.out, up.reused, up.idle_since = proc.reactor, target, None, b"", False, 0.0
        up.closed = up.connecting = False
        up.rsize = SMALL_READ
        up.sock = FakeSock(100 + i)
        up.fd, up.mask = 100 + i, IN
        proc.reactor.add(up.fd, IN, up.on_event)
        up.idle_since = proc.reactor.now
        target.idle.append(up)
        ups.append(up)
    client = FakeSock(10)
    conn = HttpConn(proc, FakeListener(site), client, (4, 0x7F000001), "127.0.0.1")  # type: ignore[arg-type]
    on_client = conn.on_event
    with FakeFds(client, *[u.sock for u in ups]):  # the fast path reads and writes by fd
        t0 = time.process_time()
        for _ in range(n):
            client.inbox.append(REQUEST)
            on_client(IN)
            up = conn.up
            assert up is not None
            up.sock.inbox.append(RESPONSE)
            up.on_event(IN)
        elapsed = time.process_time() - t0
    assert conn.up is None and conn.state == 1, "the exchange did not complete"
    assert client.sent > n * 40
    return elapsed / n * 1e6


def tcp_relay(n: int) -> float:
    """CPU µs per request/response pair relayed by a TCP tunnel (os.read + os.write: the small-message path)."""
    reactor = FakeReactor()
    a, b = FakeSock(20), FakeSock(21)
    t = tunnel_mod.Tunnel(reactor, a, b, use_splice=False)  # type: ignore[arg-type]
    on_a, on_b = t.ab.on_event, t.ba.on_event
    with FakeFds(a, b):
        t0 = time.process_time()
        for _ in range(n):
            a.inbox.append(REQUEST)
            on_a(IN)
            b.inbox.append(RESPONSE)
            on_b(IN)
        elapsed = time.process_time() - t0
    assert b.sent == n * len(REQUEST) and a.sent == n * len(RESPONSE)
    return elapsed / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="exchanges per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--case", choices=("all", "http", "http-trace", "tcp"), default="all")
    args = ap.parse_args()
    cases: Dict[str, Callable[[], float]] = {
        "http": lambda: http_exchange(args.n, {}),
        "http-trace": lambda: http_exchange(args.n, {"trace_header": "x-request-id", "lowercase_hdrs": True}),
        "tcp": lambda: tcp_relay(args.n),
    }
    results: Dict[str, List[float]] = {k: [] for k in cases if args.case in ("all", k)}
    for _ in range(args.rounds):
        for name in results:  # interleaved: a load spike hits every case alike
            results[name].append(cases[name]())
    for name, xs in results.items():
        print(f"{name:11s} {statistics.median(xs):6.2f} µs per request (CPU; min {min(xs):.2f}, {args.rounds} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

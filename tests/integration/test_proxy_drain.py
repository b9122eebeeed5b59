"""Zero downtime: probing new instances, draining old ones, rolling restarts under load; proxy process life."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import List

import psutil

from alter.proxy import Upstream
from tests.helpers import wait_for
from tests.integration.test_proxy_support import (  # noqa: F401
    UPSTREAM_SRC,
    Raw,
    WsClient,
    free_port,
    fresh_upstreams,
    get,
    module_proxy,
    serve,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Load:
    """Keep-alive clients hammering a port until stopped; records every status (or exception)."""

    def __init__(self, port: int, clients: int = 6) -> None:
        self.port = port
        self.stop = threading.Event()
        self.results: List[object] = []
        self.threads = [threading.Thread(target=self.run) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def run(self) -> None:
        c = None
        while not self.stop.is_set():
            try:
                if c is None:
                    c = Raw(self.port)
                c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
                status, headers, _ = c.response()
                self.results.append(status)
                if headers.get("connection") == "close":
                    c.close()
                    c = None
            except Exception as exc:  # counted as a failure
                self.results.append(repr(exc))
                c = None
        if c is not None:
            c.close()

    def finish(self) -> List[object]:
        self.stop.set()
        for t in self.threads:
            t.join(10)
        return self.results


def test_new_instance_joins_only_once_it_accepts(proxy, ups) -> None:
    a = ups.start("a")
    later = free_port()
    name, port = serve(proxy, [a])
    proxy.set_upstreams(name, [Upstream(0, "127.0.0.1", a), Upstream(1, "127.0.0.1", later)], wait=False)
    proxy.sync()
    assert proxy.stats(name)["upstreams"][f"127.0.0.1:{later}"]["state"] == "probing"
    assert {get(port, "/echo")[1]["x-upstream"] for _ in range(6)} == {"a"}  # no errors meanwhile
    p = subprocess.Popen([sys.executable, "-c", UPSTREAM_SRC], env=dict(os.environ, PORT=str(later), NAME="b"))
    try:
        assert proxy.wait_ready(name, later, 10)
        proxy.sync()
        c = Raw(port)
        seen = set()
        for _ in range(4):
            c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            seen.add(c.response()[1]["x-upstream"])
        c.close()
        assert seen == {"a", "b"}
    finally:
        p.kill()
        p.wait()


def test_drain_waits_for_in_flight_requests(proxy, ups) -> None:
    a = ups.start("a")
    name, port = serve(proxy, [a, ups.start("b")])
    slow: List[int] = []
    c = Raw(port)
    # find a connection/process whose next pick is instance a, then start a slow request there
    t = threading.Thread(target=lambda: slow.append(get(port, "/slow?ms=1200")[0]))
    t.start()
    wait_for(
        lambda: any(u["inflight"] for u in proxy.stats(name)["upstreams"].values()),
        5,
        what="the slow request in flight",
    )
    busy = next(u for u in proxy.stats(name)["upstreams"].values() if u["inflight"])
    t0 = time.monotonic()
    assert proxy.drain(name, busy["index"])
    waited = time.monotonic() - t0
    t.join()
    assert slow == [200] and waited > 0.6
    assert proxy.stats(name)["upstreams"][f"127.0.0.1:{busy['port']}"]["state"] == "draining"
    seen = set()
    for _ in range(4):
        c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        seen.add(c.response()[1]["x-upstream"])
    assert len(seen) == 1  # nothing new goes to the draining instance
    c.close()


def test_drain_tunnels_bounded_by_timeout(proxy, ups) -> None:
    name, port = serve(proxy, [ups.start("a")])
    ws = WsClient(port)
    assert ws.accepted
    t0 = time.monotonic()
    assert proxy.drain(name, 0, timeout_ms=400)  # tunnels get drain_timeout, then the drain completes
    assert 0.3 < time.monotonic() - t0 < 3
    ws.send_text("still here")
    assert ws.recv_text() == "a:still here"  # the proxy does not cut it; stopping the instance will
    ws.close()
    t0 = time.monotonic()
    assert proxy.drain(name, 0)  # nothing left in flight
    assert time.monotonic() - t0 < 1.0


def test_rolling_restart_under_load_has_zero_errors(proxy, ups) -> None:
    ports = [ups.start("a0"), ups.start("b0")]
    name, port = serve(proxy, ports)
    load = Load(port)
    try:
        time.sleep(0.5)
        current = list(ports)
        for generation in (1, 2):
            for i in range(2):
                new = ups.start(f"{'ab'[i]}{generation}")
                desired = [Upstream(j, "127.0.0.1", p) for j, p in enumerate(current)] + [Upstream(i, "127.0.0.1", new)]
                proxy.set_upstreams(name, desired)  # waits until the new one accepts
                assert proxy.drain(name, i, port=current[i])
                ups.kill(ups.ports.index(current[i]))  # stop the old instance
                current[i] = new
                proxy.set_upstreams(name, [Upstream(j, "127.0.0.1", p) for j, p in enumerate(current)])
                time.sleep(0.3)
    finally:
        results = load.finish()
    failures = [r for r in results if r != 200]
    assert len(results) > 200 and failures == []
    assert {get(port, "/echo")[1]["x-upstream"] for _ in range(8)} <= {"a2", "b2"}


def test_killed_proxy_process_is_restarted(proxy, ups) -> None:
    name, port = serve(proxy, [ups.start("a")])
    before = proxy.pids()
    os.kill(before[0], signal.SIGKILL)
    wait_for(lambda: len(proxy.pids()) == 2 and proxy.pids() != before, 10, what="a restarted proxy process")
    proxy.wait_processes()
    proxy.sync()
    assert all(get(port, "/echo")[0] == 200 for _ in range(10))
    assert any(p["restarts"] == 1 for p in proxy.stats(name)["processes"])


def test_proxy_processes_die_with_their_daemon(tmp_path) -> None:
    script = tmp_path / "owner.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {ROOT!r})\n"
        "from alter.proxy.standalone import StandaloneProxy\n"
        "p = StandaloneProxy(processes=2)\n"
        "p.wait_processes()\n"
        "print(' '.join(map(str, p.pids())), flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(x) for x in owner.stdout.readline().split()]
        assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
        owner.kill()
        owner.wait()

        def gone() -> bool:
            return not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)

        wait_for(gone, 10, what="proxy processes gone after their daemon died")
    finally:
        if owner.poll() is None:
            owner.kill()

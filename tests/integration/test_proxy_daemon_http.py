"""The proxy wired into the daemon, through dist/apm: `apm run ... --server` balances, survives kill -9,
restarts with zero failed requests, answers 503 when stopped, frees its port on remove."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from tests.helpers import wait_for

# Answers "<APM_INDEX> <PORT> <pid>" on $PORT (HTTP/1.1 keep-alive, threaded); /slow creates
# <script>.slow, then waits 1 s before answering. Each response leaves in one write(), so a
# SIGKILL lands before a response (the proxy answers 502) or after it, never between its head
# and body (a truncated body is the only honest answer once a head was relayed).
SERVER = r"""
import http.server, os, socketserver, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536  # one write() per response, flushed by handle_one_request: a kill never splits it
    def do_GET(self):
        if self.path == "/slow":
            open(__file__ + ".slow", "w").close()
            time.sleep(1.0)
        body = ("%s %s %d\n" % (os.environ["APM_INDEX"], os.environ["APM_PORT"], os.getpid())).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
S(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_server(apm: Any) -> str:
    path = os.path.join(apm.home, "server.py")
    with open(path, "w") as f:
        f.write(SERVER)
    return path


def get(port: int, path: str = "/", conn: Optional[http.client.HTTPConnection] = None) -> Tuple[int, str]:
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        if conn is None:
            c.close()


def info(apm: Any, name: str = "web") -> Dict[str, Any]:
    data: Dict[str, Any] = apm.json("info", name)
    return data


def all_live(apm: Any, count: int, name: str = "web") -> Optional[Dict[str, Any]]:
    """The info once `count` instances run and the proxy admitted each of their current ports."""
    data = info(apm, name)
    ports = {i["port"] for i in data["instances"] if i["status"] == "running" and i["port"]}
    ups = (data.get("proxy") or {}).get("upstreams") or {}
    live = {u["port"] for u in ups.values() if u.get("state") == "live"}
    return data if len(ports) == count and ports <= live else None


def start_web(apm: Any, port: int, *extra: str, instances: int = 2) -> Dict[str, Any]:
    script = write_server(apm)
    apm("run", "python3", script, "--name", "web", "--instances", str(instances), "--server", f"127.0.0.1:{port}",
        "--startup-grace", "300", *extra)  # fmt: skip
    return wait_for(lambda: all_live(apm, instances), timeout=15, what="both instances admitted by the proxy")


class Hammer:
    """Client threads sending requests on keep-alive connections until stopped; every outcome is kept."""

    def __init__(self, port: int, threads: int = 3, path: str = "/") -> None:
        self.port = port
        self.path = path
        self.stopping = False
        self.ok: List[str] = []
        self.failed: List[Any] = []
        self.times: List[float] = []
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Hammer:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping = True
        for t in self.threads:
            t.join(15)

    def _run(self) -> None:
        conn: Optional[http.client.HTTPConnection] = None
        while not self.stopping:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                status, body = get(self.port, self.path, conn)
                with self.lock:
                    (self.ok if status == 200 else self.failed).append(body if status == 200 else (status, body))
                    if status != 200:
                        self.times.append(round(time.monotonic() - self.t0, 3))
                if status != 200:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.failed.append(repr(exc))
                conn = None


def test_requests_are_balanced_and_info_shows_ports_and_counters(apm: Any) -> None:
    port = free_port()
    data = start_web(apm, port)
    ports = [i["port"] for i in data["instances"]]
    assert len(set(ports)) == 2 and all(isinstance(p, int) for p in ports)
    listed = apm.json("list")["workers"][0]["instances"]
    assert [i["port"] for i in listed] == ports
    # One keep-alive connection: per-request round-robin alternates between the two instances.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    answers = [get(port, conn=conn) for _ in range(8)]
    conn.close()
    assert all(status == 200 for status, _ in answers)
    indexes = [body.split()[0] for _, body in answers]
    assert set(indexes) == {"0", "1"}
    assert all(a != b for a, b in zip(indexes, indexes[1:])), indexes
    # Each instance got its own PORT (and APM_PORT): what it answers on is what apm shows.
    served = {body.split()[0]: int(body.split()[1]) for _, body in answers}
    assert [served["0"], served["1"]] == ports
    for _ in range(6):  # fresh connections too
        assert get(port)[0] == 200
    stats = wait_for(lambda: (info(apm).get("proxy") or {}).get("requests", 0) >= 14 and info(apm)["proxy"],
                     what="proxy counters")  # fmt: skip
    assert stats["status"].get("200", 0) >= 14
    assert stats["listeners_configured"] == [f"http://127.0.0.1:{port}"]
    assert sorted(u["port"] for u in stats["upstreams"].values()) == sorted(ports)
    text = apm("info", "web").stdout
    assert "Proxy" in text and f"http://127.0.0.1:{port}" in text and "PORT" in text
    assert str(ports[0]) in text
    # Proxy options apply to the listeners in place: the instances keep running.
    pids = [i["pid"] for i in data["instances"]]
    apm("update", "web", "--keep-alive", "5000", "--trace-header", "x-request-id")
    assert [i["pid"] for i in info(apm)["instances"]] == pids
    assert get(port)[0] == 200


def test_an_instance_killed_with_sigkill_costs_at_most_its_inflight_requests(apm: Any) -> None:
    port = free_port()
    data = start_web(apm, port, "--restart-err", "--err-delay", "200")
    victim, other = data["instances"][0], data["instances"][1]
    with Hammer(port) as load:
        wait_for(lambda: len(load.ok) > 20, what="traffic")
        os.kill(victim["pid"], signal.SIGKILL)
        back = wait_for(
            lambda: (d := all_live(apm, 2)) and d["instances"][0]["pid"] != victim["pid"] and d,
            timeout=15,
            what="the killed instance back in rotation",
        )
        seen = len(load.ok)
        wait_for(lambda: len(load.ok) > seen + 40, what="traffic after the restart")
    new = back["instances"][0]
    assert new["port"] != victim["port"]  # a fresh port for the new process
    assert back["instances"][1]["pid"] == other["pid"]
    # Only requests in flight on the dying instance may fail, and only with a 502.
    assert len(load.failed) <= 3, load.failed
    assert all(isinstance(f, tuple) and f[0] == 502 for f in load.failed), load.failed
    after = load.ok[seen:]
    assert {b.split()[2] for b in after} >= {str(new["pid"]), str(other["pid"])}  # it rejoined


def test_rolling_restart_under_load_has_zero_failures(apm: Any) -> None:
    port = free_port()
    before = start_web(apm, port, "--rolling", "--rolling-delay", "100")
    old_pids = {i["pid"] for i in before["instances"]}
    with Hammer(port, threads=4) as load:
        wait_for(lambda: len(load.ok) > 30, what="traffic")
        at_restart, failed_before = len(load.ok), list(load.failed)
        out = apm("restart", "web")
        during = len(load.ok) - at_restart
        failed_during = list(load.failed)
        after = wait_for(lambda: all_live(apm, 2), timeout=15, what="new instances admitted")
        seen = len(load.ok)
        wait_for(lambda: len(load.ok) > seen + 30, what="traffic after the restart")
    assert load.failed == [], (
        f"failed before the restart: {failed_before[:3]!r}, by its end: {failed_during[:3]!r}, "
        f"in all: {load.failed[:3]!r} at {load.times[:10]} s; proxy: {info(apm)['proxy']!r}"
    )
    assert during > 20  # traffic really flowed while instances were replaced
    new_pids = {i["pid"] for i in after["instances"]}
    assert len(new_pids) == 2 and not new_pids & old_pids, (old_pids, new_pids)
    assert {b.split()[2] for b in load.ok[seen:]} == {str(p) for p in new_pids}
    assert "running" in out.stdout
    log = apm("log", "web", "--lines", "50", "--no-follow").stdout
    assert log.count("drains, then stops") == 2, log


def test_stop_drains_then_answers_503_and_remove_frees_the_port(apm: Any) -> None:
    port = free_port()
    start_web(apm, port, "--drain-timeout", "5000", instances=1)
    slow: List[Tuple[int, str]] = []
    client = threading.Thread(target=lambda: slow.append(get(port, "/slow")))
    client.start()
    wait_for(lambda: os.path.exists(os.path.join(apm.home, "server.py.slow")), what="the slow request in flight")
    apm("stop", "web")  # drains first: the request in flight is answered, not cut by SIGTERM
    client.join(10)
    assert slow and slow[0][0] == 200, slow
    status, body = get(port)
    assert status == 503 and "web" in body and "no instance accepting connections" in body
    apm("remove", "web")

    def port_free() -> bool:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the 503's connection may be in TIME_WAIT
            try:
                s.bind(("127.0.0.1", port))
                s.listen()
            except OSError:
                return False
        return True

    wait_for(port_free, timeout=5, what=f"port {port} released")

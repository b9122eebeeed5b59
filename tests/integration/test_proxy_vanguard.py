"""Vanguard end to end: client addresses from 127.0.0.x source addresses and X-Forwarded-For."""

from __future__ import annotations

import os
import signal
import socket
import time
from typing import Dict, Optional, Tuple

from tests.helpers import wait_for
from tests.integration.test_proxy_support import Raw, fresh_upstreams, module_proxy, serve  # noqa: F401


def conn_from(src: str, port: int) -> socket.socket:
    s = socket.socket()
    s.settimeout(5)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def req_from(
    src: str, port: int, path: str = "/echo", headers: str = "", method: str = "GET"
) -> Tuple[Optional[int], Dict[str, str], bytes]:
    """(status, headers, body), or (None, {}, b"") when the connection was dropped without an answer."""
    c = None
    try:
        # A TCP-level drop can reset the connection as early as connect(): that is "dropped" too.
        c = Raw(port, sock=conn_from(src, port))
        c.send(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        return c.response()
    except (EOFError, ConnectionResetError):
        return None, {}, b""
    finally:
        if c is not None:
            c.close()


def upstream_requests(proxy, name: str) -> int:
    return sum(u["requests"] for u in proxy.stats(name)["upstreams"].values())


def test_ban_ip_http_and_tcp(proxy, ups) -> None:
    vg = {"ban_ip": ["127.0.0.2/32", "10.9.0.0/16"], "ban_response": "go away"}
    name, port = serve(proxy, [ups.start("a")], vanguard=vg)
    status, headers, body = req_from("127.0.0.2", port)
    assert status == 403 and body == b"go away\n" and "x-upstream" not in headers
    assert req_from("127.0.0.3", port)[0] == 200
    assert (
        req_from("127.0.0.3", port, headers="X-Forwarded-For: 10.9.8.7\r\n")[0] == 403
    )  # trust_proxy: the real client
    assert upstream_requests(proxy, name) == 1
    tname, tport = serve(proxy, [ups.start("echo", mode="tcp")], scheme="tcp", vanguard=vg)
    s = None
    try:  # the RST may already come during connect()
        s = conn_from("127.0.0.2", tport)
        s.sendall(b"ping")
        got = s.recv(10)
    except ConnectionResetError:
        got = b""
    finally:
        if s is not None:
            s.close()
    assert got == b""  # silent close (RST)
    s = conn_from("127.0.0.3", tport)
    s.sendall(b"ping")
    assert s.recv(10) == b"ping"
    s.close()
    v = proxy.stats(tname)["vanguard"]
    assert v["blocked"]["ban_ip"] == 1
    assert any("vanguard: drop ban_ip 127.0.0.2" in line for line in proxy.log_lines(tname))


def test_trust_proxy_off_ignores_headers(proxy, ups) -> None:
    _, port = serve(proxy, [ups.start("a")], vanguard={"ban_ip": ["10.9.0.0/16"]}, options={"trust_proxy": False})
    assert req_from("127.0.0.3", port, headers="X-Forwarded-For: 10.9.8.7\r\n")[0] == 200


def test_allow_ip(proxy, ups) -> None:
    up = ups.start("a")
    # trust_proxy off: a peer outside allow_ip is dropped at the TCP level, no HTTP answer at all
    _, port = serve(proxy, [up], vanguard={"allow_ip": ["127.0.0.2"]}, options={"trust_proxy": False})
    assert req_from("127.0.0.2", port)[0] == 200
    assert req_from("127.0.0.3", port)[0] is None
    # trust_proxy on and an internal peer (a front proxy): allow_ip applies to the resolved client
    _, port = serve(proxy, [up], vanguard={"allow_ip": ["203.0.113.0/24", "127.0.0.2"]})
    assert req_from("127.0.0.3", port, headers="X-Forwarded-For: 203.0.113.50\r\n")[0] == 200
    assert req_from("127.0.0.3", port, headers="X-Forwarded-For: 198.51.100.1\r\n")[0] == 403
    assert req_from("127.0.0.3", port)[0] == 403
    assert req_from("127.0.0.2", port)[0] == 200


def test_ban_path_and_encodings(proxy, ups) -> None:
    vg = {"ban_path": ["*.php", "*wp-*", "*.env", "/.git*", "/admin/login"], "ban_response": "Forbidden"}
    name, port = serve(proxy, [ups.start("a")], vanguard=vg)
    for path in ["/index.php", "/wp-login", "/x/.env", "/.git/config", "/admin/login", "/admin/login?next=/",
                 "/%2egit/HEAD", "/a/..%2f.git/HEAD", "//admin//login", "/ADMIN/LOGIN", "/admin/login/",
                 "/index.ph%70", "/admin/login;x=1", "/%252egit/x"]:  # fmt: skip
        status, _, body = req_from("127.0.0.5", port, path)
        assert status == 403 and body == b"Forbidden\n", path
    assert req_from("127.0.0.5", port, "/../../etc/passwd")[0] == 400
    for path in ["/", "/index.html", "/admin", "/login", "/php/info.html"]:
        assert req_from("127.0.0.5", port, path)[0] == 200, path
    assert upstream_requests(proxy, name) == 5
    assert proxy.stats(name)["vanguard"]["blocked"]["ban_path"] == 14


def test_methods(proxy, ups) -> None:
    _, port = serve(proxy, [ups.start("a")], vanguard={"allow_method": ["GET", "POST"], "ban_method": ["POST"]})
    assert req_from("127.0.0.5", port)[0] == 200
    status, headers, _ = req_from("127.0.0.5", port, method="POST", headers="Content-Length: 0\r\n")
    assert status == 405 and headers["allow"] == "GET"
    assert req_from("127.0.0.5", port, method="DELETE")[0] == 405
    # methods are skipped for TCP workers
    _, tport = serve(proxy, [ups.start("e", mode="tcp")], scheme="tcp", vanguard={"allow_method": ["GET"]})
    s = socket.create_connection(("127.0.0.1", tport), timeout=5)
    s.sendall(b"DELETE")
    assert s.recv(10) == b"DELETE"
    s.close()


def test_rate_limit_refill_and_burst(proxy, ups) -> None:
    name, port = serve(proxy, [ups.start("a")], vanguard={"rate_limit": 5, "rate_burst": 5})
    c = Raw(port, sock=conn_from("127.0.0.7", port))
    statuses = []
    for _ in range(7):
        c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = c.response()
        statuses.append(status)
        if status != 200:
            break
    assert statuses == [200] * 5 + [429]
    assert headers["retry-after"] == "1"
    assert req_from("127.0.0.8", port)[0] == 200  # another IP has its own bucket
    time.sleep(0.45)  # 2 tokens back at 5/s
    assert [req_from("127.0.0.7", port)[0] for _ in range(3)] == [200, 200, 429]
    assert proxy.stats(name)["vanguard"]["blocked"]["rate_limit"] == 2


def test_ban_ttl_and_expiry(proxy, ups) -> None:
    name, port = serve(proxy, [ups.start("a")], vanguard={"rate_limit": 1, "rate_burst": 2, "ban_ttl": 1500})
    assert [req_from("127.0.0.9", port)[0] for _ in range(4)] == [200, 200, 429, 403]
    bans = proxy.stats(name)["vanguard"]["bans"]
    assert [b[0] for b in bans] == ["127.0.0.9"] and 0 < bans[0][1] <= 1500
    time.sleep(1.7)
    assert req_from("127.0.0.9", port)[0] == 200
    assert proxy.stats(name)["vanguard"]["bans"] == []


def test_rate_limit_exact_across_processes(proxy, ups) -> None:
    """One X-Forwarded-For client over connections that land on both proxy processes: still exactly burst passes."""
    name, port = serve(proxy, [ups.start("a")], vanguard={"rate_limit": 0.01, "rate_burst": 4})
    statuses = []
    for i in range(12):
        src = "127.0.0.2" if i % 2 else "127.0.0.3"  # the reuseport BPF puts these on process 0 / process 1
        statuses.append(req_from(src, port, headers="X-Forwarded-For: 1.1.1.1\r\n")[0])
    assert statuses.count(200) == 4 and statuses.count(429) == 8
    for ip in ("8.8.8.8", "8.8.8.9"):  # owners 0 and 1
        st = [
            req_from("127.0.0.2" if k % 2 else "127.0.0.3", port, headers=f"X-Forwarded-For: {ip}\r\n")[0]
            for k in range(6)
        ]
        assert st.count(200) == 4, (ip, st)


def test_reuseport_bpf_keeps_an_ip_on_one_process(proxy, ups) -> None:
    name, port = serve(proxy, [ups.start("a")], vanguard={"rate_limit": 1000})
    held = [conn_from("127.0.0.2", port) for _ in range(6)] + [conn_from("127.0.0.3", port) for _ in range(3)]

    def per_process():
        procs = proxy.stats(name)["processes"]
        return sorted(p["conns"] for p in procs) == [3, 6] and procs

    procs = wait_for(per_process, 5, what="connections split 6/3 by source IP")
    assert procs[0]["conns"] == 6  # 127.0.0.2 is even: process 0
    for s in held:
        s.close()


def test_block_log_lines_and_summary(proxy, ups) -> None:
    name, port = serve(proxy, [ups.start("a")], vanguard={"ban_path": ["*.php"], "log_summary": 1})
    for _ in range(3):
        assert req_from("127.0.0.4", port, "/x.php")[0] == 403
    lines = wait_for(lambda: [ln for ln in proxy.log_lines(name) if "in last 1s" in ln], 5, what="a summary line")
    assert lines[0] == "vanguard: in last 1s, 3 events (ban_path 3)"
    assert sum("vanguard: 403 ban_path *.php 127.0.0.4 GET /x.php" in ln for ln in proxy.log_lines(name)) == 3
    time.sleep(2.2)
    assert len([ln for ln in proxy.log_lines(name) if "in last 1s" in ln]) == 1  # silent intervals are skipped
    quiet, qport = serve(proxy, [ups.start("b")], vanguard={"ban_path": ["*.php"], "log": "off"})
    assert req_from("127.0.0.4", qport, "/x.php")[0] == 403
    time.sleep(0.3)
    assert proxy.log_lines(quiet) == []


def test_tcp_rate_limit_counts_connections(proxy, ups) -> None:
    name, port = serve(
        proxy, [ups.start("e", mode="tcp")], scheme="tcp", vanguard={"rate_limit": 0.01, "rate_burst": 2}
    )
    got = []
    for _ in range(3):
        s = None
        try:  # the third is reset, possibly already during connect()
            s = conn_from("127.0.0.6", port)
            s.sendall(b"x")
            got.append(s.recv(5))
        except ConnectionResetError:
            got.append(b"")
        finally:
            if s is not None:
                s.close()
    assert got == [b"x", b"x", b""]


def test_bans_survive_a_proxy_process_restart(proxy, ups) -> None:
    name, port = serve(proxy, [ups.start("a")], vanguard={"rate_limit": 0.01, "rate_burst": 1, "ban_ttl": 60000})
    assert [req_from("127.0.0.11", port)[0] for _ in range(3)] == [200, 429, 403]
    assert proxy.stats(name)["vanguard"]["bans"][0][0] == "127.0.0.11"
    owner = next(p for p in proxy.stats(name)["processes"] if p["index"] == 0x7F00000B % 2)
    os.kill(owner["pid"], signal.SIGKILL)
    wait_for(lambda: owner["pid"] not in proxy.pids() and len(proxy.pids()) == 2, 10, what="the owner restarted")
    proxy.wait_processes()
    proxy.sync()
    assert req_from("127.0.0.11", port)[0] == 403

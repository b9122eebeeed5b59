"""The daemon's proxy through dist/apm: Vanguard from a loaded config file, a TCP worker, a port in use,
and the proxy processes' life with the daemon's (kill -9, restart)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
from typing import Any, List

import psutil

from tests.helpers import wait_for
from tests.integration.conftest import pid_alive
from tests.integration.test_proxy_daemon_http import all_live, free_port, get, info, start_web, write_server

ECHO = r"""
import os, socket, threading
def serve(conn):
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(b"echo" + os.environ["APM_INDEX"].encode() + b":" + data)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["PORT"])))
s.listen(64)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
"""


def proxy_pids(apm: Any) -> List[int]:
    daemon = apm.daemon_pid()
    assert daemon is not None
    return [p.pid for p in psutil.Process(daemon).children() if "__proxy-worker" in " ".join(p.cmdline())]


def test_vanguard_from_a_loaded_config_file(apm: Any) -> None:
    port = free_port()
    script = write_server(apm)
    conf = os.path.join(apm.home, "apm.conf")
    with open(conf, "w") as f:
        f.write(
            "worker {\n"
            "    name      web;\n"
            f"    cmd       python3 {script};\n"
            "    instances 2;\n"
            f"    server    http://127.0.0.1:{port};\n"
            "    vanguard {\n"
            "        ban_path     *.php, /.git*;\n"
            "        ban_response go away;\n"
            "        rate_limit   1;\n"
            "        rate_burst   3;\n"
            "    }\n"
            "}\n"
        )
    apm("load", conf)
    wait_for(lambda: all_live(apm, 2), timeout=15, what="instances admitted")
    assert get(port, "/x.php") == (403, "go away\n")
    assert get(port, "/%2egit/config")[0] == 403
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    codes = [get(port, "/", conn)[0] for _ in range(6)]
    conn.close()
    assert codes[0] == 200 and 429 in codes, codes  # a burst of 3, refilled at 1 request a second
    stats = wait_for(
        lambda: (v := info(apm)["proxy"]["vanguard"])["blocked"].get("rate_limit") and v, what="rate_limit counted"
    )
    assert stats["blocked"].get("ban_path", 0) >= 2
    text = apm("info", "web").stdout
    assert "vanguard" in text and "ban_path" in text


def test_a_tcp_worker_round_trips_bytes(apm: Any) -> None:
    port = free_port()
    script = os.path.join(apm.home, "echo.py")
    with open(script, "w") as f:
        f.write(ECHO)
    apm("run", "python3", script, "--name", "echo", "--instances", "2", "--server", f"tcp://127.0.0.1:{port}",
        "--startup-grace", "300")  # fmt: skip
    wait_for(lambda: all_live(apm, 2, "echo"), timeout=15, what="instances admitted")
    seen = set()
    for n in range(4):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            payload = f"hello {n}".encode()
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        assert data.endswith(b":" + payload), data
        seen.add(data[:5])
    assert seen <= {b"echo0", b"echo1"} and seen


def test_a_port_in_use_is_refused_naming_the_address_and_its_holder(apm: Any) -> None:
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # even so: apm must not join its group
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        script = write_server(apm)
        r = apm("run", "python3", script, "--name", "web", "--server", f"127.0.0.1:{port}", check=False)
        assert r.returncode == 2
        assert f"http://127.0.0.1:{port}" in r.stderr and "Address already in use" in r.stderr
        assert f"held by pid {os.getpid()}" in r.stderr, r.stderr
        assert apm.json("list")["workers"] == []  # nothing was created
    finally:
        holder.close()


def test_proxy_processes_die_with_the_daemon_and_come_back(apm: Any) -> None:
    port = free_port()
    start_web(apm, port)
    procs = wait_for(lambda: proxy_pids(apm), what="proxy processes")
    daemon = apm.daemon_pid()
    assert daemon is not None
    os.kill(daemon, signal.SIGKILL)
    wait_for(lambda: not any(pid_alive(p) for p in procs), timeout=10, what=f"proxy processes {procs} gone")
    try:
        get(port)
        raise AssertionError("the listener outlived the daemon")
    except OSError:
        pass
    apm("list")  # starts the daemon again: it restores the worker and its listener
    wait_for(lambda: all_live(apm, 2), timeout=15, what="restored instances admitted")
    assert get(port)[0] == 200
    assert not set(proxy_pids(apm)) & set(procs)


def test_no_proxy_process_without_a_server(apm: Any) -> None:
    apm("run", "sleep", "100", "--name", "plain", "--no-wait")
    assert proxy_pids(apm) == []
    assert apm.json("info", "plain")["proxy"] is None

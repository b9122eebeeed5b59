"""Kernel steering of tcp:// servers (alter/proxy/steer.py) through dist/apm and a real daemon.

The instances report, on every new connection, their index and the peer port they see.  A steered
connection reaches the instance directly, so that peer port is the client's own local port; a
relayed one comes from a proxy process's socket, so it is not.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import psutil
import pytest

from tests.helpers import wait_for
from tests.integration.test_proxy_daemon_http import all_live, free_port, info

PEER = r"""
import os, socket, threading
def serve(conn, peer):
    with conn:
        conn.sendall(("%s %d\n" % (os.environ["APM_INDEX"], peer[1])).encode())
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["PORT"])))
s.listen(128)
while True:
    c, peer = s.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
"""


def start(apm: Any, name: str, port: int, *flags: str, conf: str = "") -> None:
    script = os.path.join(apm.home, "peer.py")
    with open(script, "w") as f:
        f.write(PEER)
    if conf:
        path = os.path.join(apm.home, f"{name}.conf")
        with open(path, "w") as f:
            f.write(
                f"worker {{\n    name {name};\n    cmd python3 {script};\n    instances 2;\n"
                f"    server tcp://127.0.0.1:{port};\n{conf}}}\n"
            )
        apm("load", path)
    else:
        apm("run", "python3", script, "--name", name, "--instances", "2", "--server", f"tcp://127.0.0.1:{port}", *flags)
    wait_for(lambda: all_live(apm, 2, name), timeout=20, what="instances admitted")


def steering(apm: Any, name: str) -> Dict[str, Any]:
    data = info(apm, name)["proxy"]["steering"]
    assert len(data) == 1
    return dict(next(iter(data.values())))


def hello(port: int, keep: bool = False) -> Tuple[int, int, int, Optional[socket.socket]]:
    """(instance index, peer port the instance saw, our local port[, the open socket])."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    line = b""
    while not line.endswith(b"\n"):
        chunk = s.recv(100)
        assert chunk, f"connection closed before the greeting ({line!r})"
        line += chunk
    index, seen = line.split()
    local = s.getsockname()[1]
    if not keep:
        s.close()
        return int(index), int(seen), local, None
    return int(index), int(seen), local, s


def wait_steered(apm: Any, name: str, what: str = "both instances steered", timeout: float = 10) -> None:
    wait_for(lambda: steering(apm, name).get("instances") == 2, timeout=timeout, what=what)


def direct(port: int) -> bool:
    """One new connection: did the instance see our own socket (steered, no proxy process in between)?"""
    _, seen, local, _ = hello(port)
    return seen == local


def test_connections_go_straight_to_the_instances_round_robin(apm: Any) -> None:
    port = free_port()
    start(apm, "tcp", port)
    wait_steered(apm, "tcp")
    assert steering(apm, "tcp")["kernel"] is True
    picks = []
    for _ in range(6):
        index, seen, local, _ = hello(port)
        assert seen == local  # the instance saw our own socket: no proxy process in between
        picks.append(index)
    assert all(a != b for a, b in zip(picks, picks[1:])), picks  # round-robin
    assert set(picks) == {0, 1}
    # Bytes flow both ways, and the open connection is counted on its instance.
    index, _, _, s = hello(port, keep=True)
    assert s is not None
    with s:
        s.sendall(b"ping")
        assert s.recv(100) == b"ping"
        ups = wait_for(
            lambda: (u := info(apm, "tcp")["proxy"]["upstreams"]) and sum(x.get("steered", 0) for x in u.values()) == 1
            and u, what="the steered connection counted",
        )  # fmt: skip
        assert [x["index"] for x in ups.values() if x.get("steered")] == [index]
    text = apm("info", "tcp").stdout
    assert f"tcp://127.0.0.1:{port}: kernel steering to 2 instance(s)" in text


@pytest.mark.parametrize(
    "conf, why",
    [
        ("    tcp_steering off;\n", "tcp_steering is off"),
        ("    vanguard {\n        ban_ip 10.0.0.0/8;\n    }\n", "vanguard checks every connection"),
        ("    max_conns 100;\n", "max_conns counts every connection"),
    ],
)
def test_servers_that_need_the_proxy_are_relayed_by_it(apm: Any, conf: str, why: str) -> None:
    port = free_port()
    start(apm, "relayed", port, conf=conf)
    state = steering(apm, "relayed")
    assert state == {"kernel": False, "instances": 0, "why_not": why}
    for _ in range(4):
        index, seen, local, _ = hello(port)
        assert seen != local  # a proxy process's connection
    assert why in apm("info", "relayed").stdout


def test_turning_steering_off_and_on_applies_without_a_restart(apm: Any) -> None:
    port = free_port()
    conf = os.path.join(apm.home, "live.conf")
    script = os.path.join(apm.home, "peer.py")
    with open(script, "w") as f:
        f.write(PEER)

    def load(extra: str, command: str = "reload") -> None:
        with open(conf, "w") as f:
            f.write(
                f"worker {{\n    name live;\n    cmd python3 {script};\n    instances 2;\n"
                f"    server tcp://127.0.0.1:{port};\n{extra}}}\n"
            )
        apm(command, conf)

    load("", "load")
    wait_for(lambda: all_live(apm, 2, "live"), timeout=20, what="instances admitted")
    wait_steered(apm, "live")
    pids = sorted(i["pid"] for i in info(apm, "live")["instances"])
    assert direct(port)
    load("    tcp_steering off;\n")
    wait_for(lambda: steering(apm, "live")["kernel"] is False, what="steering off")
    assert not direct(port)
    load("    tcp_steering on;\n")
    wait_steered(apm, "live", "steered again")
    assert direct(port)
    assert sorted(i["pid"] for i in info(apm, "live")["instances"]) == pids  # no restart


def test_a_killed_instance_costs_no_new_connection(apm: Any) -> None:
    port = free_port()
    start(apm, "tcp", port, "--restart-err", "--err-delay", "200")  # restarted after a crash
    wait_steered(apm, "tcp")
    victim = next(i for i in info(apm, "tcp")["instances"] if i["index"] == 1)
    os.kill(victim["pid"], 9)

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", victim["port"]), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False

    # A connection caught in the dying process's accept queue is reset, steered or relayed alike
    # (the proxy too would have connected to it by then): start once its socket is gone.
    wait_for(refused, what="the killed instance's socket closed")
    failures: List[str] = []
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:  # through the death, the restart and the re-steering
        try:
            hello(port)
        except OSError as exc:
            failures.append(repr(exc))
    assert failures == []
    wait_for(lambda: steering(apm, "tcp").get("instances") == 2 and all_live(apm, 2, "tcp"), timeout=20,
             what="the restarted instance steered again")  # fmt: skip
    assert direct(port)


def test_rolling_restart_under_tcp_load_has_zero_errors(apm: Any) -> None:
    port = free_port()
    start(apm, "tcp", port, "--rolling", "--rolling-delay", "100", "--drain-timeout", "5000")
    wait_steered(apm, "tcp")
    before = {i["pid"] for i in info(apm, "tcp")["instances"]}
    stop = threading.Event()
    results: List[object] = []

    def client() -> None:
        while not stop.is_set():
            try:
                _, _, _, s = hello(port, keep=True)
                assert s is not None
                with s:
                    s.sendall(b"x" * 100)
                    got = b""
                    while len(got) < 100:
                        chunk = s.recv(200)
                        if not chunk:
                            raise ConnectionError("closed mid-exchange")
                        got += chunk
                results.append("ok")
            except Exception as exc:
                results.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        apm("restart", "tcp", timeout=60)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    errors = [r for r in results if r != "ok"]
    assert errors == [] and len(results) > 50, (errors[:5], len(results))
    after = {i["pid"] for i in info(apm, "tcp")["instances"]}
    assert not before & after
    wait_steered(apm, "tcp", "the new instances steered")
    assert direct(port)


def test_a_drain_waits_for_the_steered_connections_of_the_old_instance(apm: Any) -> None:
    port = free_port()
    start(apm, "tcp", port, "--rolling", "--rolling-delay", "0", "--drain-timeout", "30000")
    wait_steered(apm, "tcp")
    index, seen, local, s = hello(port, keep=True)
    assert s is not None and seen == local
    old = next(i["pid"] for i in info(apm, "tcp")["instances"] if i["index"] == index + 1)  # APM_INDEX is 0-based
    restart = subprocess.Popen(
        apm.cmd("restart", "tcp"), env=apm.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(2.5)
        assert psutil.pid_exists(old) and restart.poll() is None  # held by our open connection
        s.sendall(b"still here")
        assert s.recv(100) == b"still here"
        assert direct(port)  # new connections still work, and do not go to the old one
        closed = time.monotonic()
        s.close()
        assert restart.wait(25) == 0
        assert time.monotonic() - closed < 15  # released by the close, not by the 30 s drain_timeout
        wait_for(lambda: not psutil.pid_exists(old), what="the old instance stopped")
    finally:
        s.close()
        if restart.poll() is None:
            restart.kill()
            restart.wait()


def test_a_malformed_tcp_steering_value_is_refused_naming_it(apm: Any) -> None:
    conf = os.path.join(apm.home, "bad.conf")
    with open(conf, "w") as f:
        f.write("worker t {\n    cmd python3 x.py;\n    server tcp://127.0.0.1:5000;\n    tcp_steering maybe;\n}\n")
    r = apm("check", conf, check=False)
    assert r.returncode == 2
    assert "bad.conf:4:" in r.stderr + r.stdout and "tcp_steering" in r.stderr + r.stdout
    assert "expected true or false, got 'maybe'" in r.stderr + r.stdout

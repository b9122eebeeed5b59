"""alter/proxy/steer.py against the running kernel: the sk_lookup program, its maps and its limits.

In-process (no daemon): listeners in this test stand in for instances, their pid is ours.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Iterator, List, Tuple

import pytest

from alter.linux import bpf
from alter.proxy.steer import Steering, connections, established, find_listener, program
from tests.integration.test_proxy_daemon_http import free_port


def instance(reuse: bool = True, family: int = socket.AF_INET) -> socket.socket:
    """A stand-in instance listener: 127.0.0.1, or a dual-stack [::] like node's default."""
    s = socket.socket(family)
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::" if family == socket.AF_INET6 else "127.0.0.1", 0))
    s.listen(16)
    return s


@pytest.fixture
def listeners() -> Iterator[List[socket.socket]]:
    made: List[socket.socket] = []
    yield made
    for s in made:
        s.close()


def target(s: socket.socket) -> Tuple[str, int, int]:
    port = s.getsockname()[1]
    return (f"k{port}", os.getpid(), port)


def landed(host: str, port: int, listeners: List[socket.socket]) -> int:
    """Connect to host:port; the index of the listener that got the connection."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as c:
        c.settimeout(5)
        c.connect((host, port))
        for i, s in enumerate(listeners):
            s.setblocking(False)
            try:
                conn, _ = s.accept()
            except BlockingIOError:
                continue
            finally:
                s.setblocking(True)
            assert conn.getsockname()[1] == port  # the original destination, as steering promises
            conn.close()
            return i
    raise AssertionError("no listener got the connection")


def test_connections_are_handed_out_round_robin(listeners: List[socket.socket]) -> None:
    listeners += [instance(), instance(), instance()]
    port = free_port()
    steer = Steering("127.0.0.1", port)
    try:
        assert steer.assign([target(s) for s in listeners]) == [target(s)[0] for s in listeners]
        picks = [landed("127.0.0.1", port, listeners) for _ in range(9)]
        assert picks == [0, 1, 2] * 3
        # Fewer instances: the map shrinks, the count follows.
        steer.assign([target(listeners[2])])
        assert {landed("127.0.0.1", port, listeners) for _ in range(3)} == {2}
    finally:
        steer.close()
    with pytest.raises(ConnectionRefusedError):  # detached: nothing listens on the port itself
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_a_closed_listener_empties_its_slot_and_its_share_falls_through(listeners: List[socket.socket]) -> None:
    listeners += [instance(), instance()]
    port = free_port()
    fallback = socket.socket()
    fallback.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    fallback.bind(("127.0.0.1", port))  # the proxy processes' own listener
    fallback.listen(16)
    steer = Steering("127.0.0.1", port)
    try:
        steer.assign([target(s) for s in listeners])
        listeners[1].close()
        picks = [landed("127.0.0.1", port, [listeners[0], fallback]) for _ in range(4)]
        assert picks == [0, 1, 0, 1]  # slot 1 is empty: the ordinary lookup finds the fallback
    finally:
        steer.close()
        fallback.close()


def test_only_the_listeners_own_address_is_steered(listeners: List[socket.socket]) -> None:
    listeners.append(instance())
    port = free_port()
    steer = Steering("127.0.0.2", port)
    try:
        steer.assign([target(listeners[0])])
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        assert landed("127.0.0.2", port, listeners) == 0
    finally:
        steer.close()


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_ipv6_and_dual_stack(listeners: List[socket.socket]) -> None:
    listeners.append(instance(family=socket.AF_INET6))
    port = free_port()
    for host, dest in (("::1", "::1"), ("::", "127.0.0.1"), ("::", "::1")):
        steer = Steering(host, port)
        try:
            steer.assign([target(listeners[0])])
            assert landed(dest, port, listeners) == 0, (host, dest)
        finally:
            steer.close()
    steer = Steering("0.0.0.0", port)  # IPv4 only, like a bind to 0.0.0.0
    try:
        steer.assign([target(listeners[0])])
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("::1", port), timeout=5)
    finally:
        steer.close()


def test_a_listener_without_so_reuseaddr_is_left_to_the_proxy(listeners: List[socket.socket]) -> None:
    """Its steered connections would keep the address from being bound again (a daemon restart)."""
    listeners += [instance(reuse=False), instance()]
    port = free_port()
    steer = Steering("127.0.0.1", port)
    try:
        assert steer.assign([target(s) for s in listeners]) == [target(listeners[1])[0]]
        assert {landed("127.0.0.1", port, listeners) for _ in range(3)} == {1}
    finally:
        steer.close()


def test_established_connections_are_counted_per_instance(listeners: List[socket.socket]) -> None:
    listeners.append(instance())
    port = free_port()
    steer = Steering("127.0.0.1", port)
    try:
        steer.assign([target(listeners[0])])
        assert find_listener(os.getpid(), listeners[0].getsockname()[1]) is not None
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        served = [listeners[0].accept()[0] for _ in clients]
        assert connections(os.getpid(), established([port])) == 3  # the served ends (local port = the public one)
        for s in clients + served:
            s.close()
        assert connections(os.getpid(), established([port])) == 0
        assert connections(0, established([port])) == 0
    finally:
        steer.close()


def test_the_program_is_refused_cleanly_with_a_bad_map() -> None:
    """Whatever the kernel refuses surfaces as OSError naming the verifier's complaint."""
    code = program("127.0.0.1", 1234, 999_999, 999_999)
    with pytest.raises(OSError) as err:
        bpf.load_program(bpf.PROG_TYPE_SK_LOOKUP, code, bpf.ATTACH_SK_LOOKUP, b"apm_test")
    assert err.value.strerror


def test_map_elements_round_trip() -> None:
    m = bpf.Map(bpf.MAP_TYPE_ARRAY, 4, 8, 2)
    try:
        m.update(struct.pack("I", 1), struct.pack("II", 7, 9))
        assert struct.unpack("II", m.lookup(struct.pack("I", 1))) == (7, 9)
        with pytest.raises(OSError):
            m.update(struct.pack("I", 5), struct.pack("II", 1, 1))  # out of range
    finally:
        m.close()

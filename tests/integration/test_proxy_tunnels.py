"""WebSocket upgrades and raw TCP passthrough."""

from __future__ import annotations

import hashlib
import os
import socket
import threading

from tests.integration.test_proxy_support import Raw, WsClient, fresh_upstreams, get, module_proxy, serve  # noqa: F401


def test_websocket_upgrade_and_echo(proxy, ups) -> None:
    name, port = serve(proxy, [ups.start("a"), ups.start("b")], scheme="ws")
    clients = [WsClient(port) for _ in range(4)]
    assert all(c.accepted for c in clients)
    names = set()
    for i, c in enumerate(clients):
        for j in range(3):
            c.send_text(f"msg {i}.{j}" + "x" * (200 * j))
            reply = c.recv_text()
            who, text = reply.split(":", 1)
            names.add(who)
            assert text == f"msg {i}.{j}" + "x" * (200 * j)
    assert names == {"a", "b"}  # balanced per connection
    s = proxy.stats(name)
    assert s["status"]["101"] == 4 and sum(u["tunnels"] for u in s["upstreams"].values()) == 4
    for c in clients:
        c.close()


def test_websocket_on_http_listener_and_plain_requests_on_ws_listener(proxy, ups) -> None:
    up = ups.start("a")
    _, hport = serve(proxy, [up])
    c = WsClient(hport)
    assert c.accepted
    c.send_text("hi")
    assert c.recv_text() == "a:hi"
    c.close()
    _, wport = serve(proxy, [up], scheme="ws")
    assert get(wport, "/echo")[0] == 200


def test_websocket_refused_upgrade_is_a_normal_response(proxy, ups) -> None:
    _, port = serve(proxy, [ups.start("a")], scheme="ws")
    c = WsClient(port, path="/not-ws")  # the upstream answers 200, not 101
    assert c.status == 200 and not c.accepted
    c.raw.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.raw.response()[0] == 200  # still an HTTP connection
    c.raw.close()


def test_tcp_passthrough_large_and_half_close(proxy, ups) -> None:
    name, port = serve(proxy, [ups.start("e", mode="tcp")], scheme="tcp")
    payload = os.urandom(8 * 1024 * 1024)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    received = bytearray()

    def reader() -> None:
        while True:
            data = s.recv(65536)
            if not data:
                return
            received.extend(data)

    t = threading.Thread(target=reader)
    t.start()
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)  # half-close travels through: the echo server then ends its side
    t.join(20)
    s.close()
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
    assert proxy.stats(name)["requests"] == 1


def test_tcp_server_speaks_first_and_round_robin(proxy, ups) -> None:
    a = ups.start("a", mode="tcp", GREETING="hello-a\n")
    b = ups.start("b", mode="tcp", GREETING="hello-b\n")
    _, port = serve(proxy, [a, b], scheme="tcp")
    greetings = set()
    for _ in range(6):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        greetings.add(s.recv(100))
        s.close()
    assert greetings == {b"hello-a\n", b"hello-b\n"}


def test_tcp_no_instance_resets(proxy, ups) -> None:
    _, port = serve(proxy, [], scheme="tcp")
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            s.sendall(b"x")
            assert s.recv(10) == b""
        finally:
            s.close()
    except ConnectionResetError:
        pass

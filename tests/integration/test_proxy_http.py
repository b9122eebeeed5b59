"""The HTTP proxy with real clients (raw sockets, http.client, curl) and real upstream processes."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import threading
import time

from tests.helpers import wait_for
from tests.integration.test_proxy_support import Raw, fresh_upstreams, get, module_proxy, raw, serve  # noqa: F401


def body_json(body: bytes) -> dict:
    return json.loads(body)


def hdr(data: dict, name: str):
    return [v for k, v in data["headers"] if k.lower() == name.lower()]


def test_round_robin_and_forwarding_headers(proxy, ups) -> None:
    a, b = ups.start("a"), ups.start("b")
    _, port = serve(proxy, [a, b])
    seen = []
    for _ in range(6):
        status, headers, body = get(port, "/echo?q=1", host="example.org")
        assert status == 200
        seen.append(headers["x-upstream"])
        data = body_json(body)
        assert data["target"] == "/echo?q=1"
        assert hdr(data, "Host") == ["example.org"]
        assert hdr(data, "X-Forwarded-For") == ["127.0.0.1"]
        assert hdr(data, "X-Real-IP") == ["127.0.0.1"]
        assert hdr(data, "X-Forwarded-Proto") == ["http"]
        assert hdr(data, "Forwarded") == ["for=127.0.0.1;proto=http"]
        assert "connection" not in headers or headers["connection"] == "keep-alive"
        assert "keep-alive" not in headers  # the upstream's hop-by-hop headers are not relayed
    assert set(seen) == {"a", "b"}
    c = Raw(port)  # one connection = one proxy process: strict alternation, per request
    order = []
    for _ in range(6):
        c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        order.append(c.response()[1]["x-upstream"])
    c.close()
    assert order[0::2] == [order[0]] * 3 and order[1::2] == [order[1]] * 3 and order[0] != order[1]


def test_keep_alive_and_pipelining(proxy, ups) -> None:
    name, port = serve(proxy, [ups.start("a"), ups.start("b")])
    c = Raw(port)
    c.send(b"".join(b"GET /echo?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5)))
    targets = [body_json(c.response()[2])["target"] for _ in range(5)]
    assert targets == [f"/echo?n={i}" for i in range(5)]  # in order
    c.send(b"GET /echo?n=9 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert body_json(c.response()[2])["target"] == "/echo?n=9"
    c.close()
    stats = proxy.stats(name)
    assert stats["conns_total"] == 1 and stats["requests"] == 6 and stats["status"] == {"200": 6}


def test_http_client_keep_alive_and_large_bodies(proxy, ups) -> None:
    _, port = serve(proxy, [ups.start("a")])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    payload = os.urandom(5 * 1024 * 1024)
    for _ in range(3):
        conn.request("POST", "/upload", body=payload, headers={"Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        data = json.loads(resp.read())
        assert resp.status == 200 and data["bytes"] == len(payload)
        assert data["sha256"] == hashlib.sha256(payload).hexdigest()
    conn.request("GET", "/download?size=3000000")
    resp = conn.getresponse()
    assert resp.status == 200 and len(resp.read()) == 3000000
    conn.close()


def test_chunked_both_ways(proxy, ups) -> None:
    _, port = serve(proxy, [ups.start("a")])
    c = Raw(port)
    c.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    time.sleep(0.05)
    c.send(b"6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
    status, _, body = c.response()
    assert status == 200 and body_json(body)["bytes"] == 11
    assert body_json(body)["sha256"] == hashlib.sha256(b"hello world").hexdigest()
    c.send(b"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = c.response()
    assert headers["transfer-encoding"] == "chunked" and body == b"hello, world"
    c.send(b"GET /download?size=1000000&chunked=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = c.response()
    assert len(body) == 1000000 and body[:256] == bytes(range(256))
    c.close()
    out = subprocess.run(["curl", "-sS", "--max-time", "10", f"http://127.0.0.1:{port}/chunked"], capture_output=True)
    assert out.stdout == b"hello, world"


def test_expect_100_continue(proxy, ups) -> None:
    _, port = serve(proxy, [ups.start("a")])
    c = Raw(port)
    c.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    c.sock.settimeout(5)
    while b"\r\n\r\n" not in c.buf:
        c._fill()
    assert c.buf.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    c.buf = c.buf[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
    c.send(b"hello")
    status, _, body = c.response()
    assert status == 200 and body_json(body)["bytes"] == 5
    t0 = time.monotonic()
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-H", "Expect: 100-continue", "--data-binary", "x" * 2000,
         f"http://127.0.0.1:{port}/upload"], capture_output=True)  # fmt: skip
    assert json.loads(out.stdout)["bytes"] == 2000
    assert time.monotonic() - t0 < 0.9  # the 100 was relayed: curl did not sit out its 1 s wait


def test_trust_proxy_headers(proxy, ups) -> None:
    up = ups.start("a")
    _, port = serve(proxy, [up])
    extra = "X-Forwarded-For: 6.6.6.6, 1.1.1.1\r\nX-Forwarded-Proto: https\r\nForwarded: for=1.1.1.1\r\nX-Real-IP: 9.9.9.9\r\n"
    data = body_json(get(port, "/echo", extra)[2])
    assert hdr(data, "X-Forwarded-For") == ["6.6.6.6, 1.1.1.1, 127.0.0.1"]
    assert hdr(data, "X-Real-IP") == ["1.1.1.1"]  # the last untrusted hop
    assert hdr(data, "X-Forwarded-Proto") == ["https"]
    assert hdr(data, "Forwarded") == ["for=1.1.1.1, for=127.0.0.1;proto=http"]
    _, port2 = serve(proxy, [up], options={"trust_proxy": False})
    data = body_json(get(port2, "/echo", extra)[2])
    assert hdr(data, "X-Forwarded-For") == ["127.0.0.1"]
    assert hdr(data, "X-Real-IP") == ["127.0.0.1"]
    assert hdr(data, "X-Forwarded-Proto") == ["http"]
    assert hdr(data, "Forwarded") == ["for=127.0.0.1;proto=http"]


def test_trace_header_lowercase_and_hop_by_hop(proxy, ups) -> None:
    _, port = serve(proxy, [ups.start("a")], options={"trace_header": "X-Request-Id", "lowercase_hdrs": True})
    ids = set()
    for _ in range(5):
        data = body_json(
            get(
                port,
                "/echo",
                "X-Request-Id: forged\r\nX-Mixed-Case: v\r\nConnection: keep-alive, X-Private\r\nX-Private: s\r\nTE: trailers\r\n",
            )[2]
        )
        names = [k for k, _ in data["headers"]]
        assert all(k == k.lower() for k in names)
        assert "x-mixed-case" in names and "x-private" not in names and "te" not in names and "connection" not in names
        (rid,) = hdr(data, "x-request-id")
        assert rid != "forged"
        ids.add(rid)
    assert len(ids) == 5


def test_http10_and_head(proxy, ups) -> None:
    _, port = serve(proxy, [ups.start("a")])
    c = Raw(port)
    c.send(b"GET /chunked HTTP/1.0\r\n\r\n")
    status, headers, body = c.response()
    assert status == 200 and body == b"hello, world" and "transfer-encoding" not in headers  # de-chunked for 1.0
    assert c.closed()
    data = body_json(raw(port, b"GET /echo HTTP/1.0\r\n\r\n")[2])
    assert data["version"] == "1.1" and hdr(data, "Host") == [f"127.0.0.1:{port}"]
    c = Raw(port)
    c.send(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    status, headers, _ = c.response()
    assert headers["connection"] == "keep-alive"
    c.send(b"HEAD /download?size=100 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    status, headers, body = c.response(head_request=True)
    assert status == 200 and headers["content-length"] == "100" and body == b""
    c.send(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert c.response()[0] == 200  # HEAD left no stray body behind
    c.close()


def test_503_when_no_instance(proxy, ups) -> None:
    name, port = serve(proxy, [])
    status, headers, body = get(port)
    assert status == 503 and f"worker '{name}' has no instance accepting connections" in body.decode()
    assert headers["connection"] == "close"


def test_502_when_instances_refuse(proxy, ups) -> None:
    up = ups.start("a")
    name, port = serve(proxy, [up])
    assert get(port)[0] == 200
    ups.kill(0)
    status, _, body = get(port)
    assert status == 502 and name in body.decode()


def test_upstream_death_mid_request_fails_only_that_request(proxy, ups) -> None:
    a, b = ups.start("a"), ups.start("b")
    name, port = serve(proxy, [a, b])
    results = []
    died = []

    def load() -> None:
        for _ in range(40):
            t = time.monotonic()
            status, _, body = get(port, "/echo")
            results.append((t, status, body))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    status, _, body = get(port, "/die")  # one instance dies while answering
    died.append(time.monotonic())
    for t in threads:
        t.join()
    assert status == 502 and "closed the connection before answering" in body.decode()
    dead = f"127.0.0.1:{a}" if f":{a} " in body.decode() else f"127.0.0.1:{b}"
    # Requests the dying instance had in flight at that instant share its fate; nothing else fails.
    for t, st, text in results:
        assert st == 200 or (st == 502 and dead in text.decode() and t < died[0]), (st, text)
    assert sum(st == 200 for _, st, _ in results) >= 110
    assert [get(port, "/echo")[0] for _ in range(6)] == [200] * 6


def test_504_on_upstream_timeout(proxy, ups) -> None:
    name, port = serve(proxy, [ups.start("a")], options={"upstream_timeout": 500})
    t0 = time.monotonic()
    status, _, body = get(port, "/slow?ms=3000")
    assert status == 504 and "did not answer within 0.5s" in body.decode() and name in body.decode()
    assert time.monotonic() - t0 < 2.0
    assert get(port, "/echo")[0] == 200


def test_502_on_invalid_response(proxy, ups) -> None:
    _, port = serve(proxy, [ups.start("a")])
    status, _, body = get(port, "/garbage")
    assert status == 502 and "invalid response" in body.decode()


def test_stale_pooled_connection_is_retried_when_safe(proxy, ups) -> None:
    name, port = serve(proxy, [ups.start("a")])
    c = Raw(port)
    c.send(b"GET /flaky HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.response()[0] == 200  # the upstream connection goes back to the pool
    c.send(b"GET /flaky HTTP/1.1\r\nHost: x\r\n\r\n")  # reused: it dies unanswered -> replayed
    assert c.response()[0] == 200
    c.send(b"POST /flaky HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")  # not idempotent: no replay
    assert c.response()[0] == 502
    c.close()


def test_max_conns(proxy, ups) -> None:
    _, port = serve(proxy, [ups.start("a")], options={"max_conns": 2})
    held = [Raw(port), Raw(port)]
    for c in held:
        c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.response()[0] == 200
    status, _, body = get(port)
    assert status == 503 and "max_conns" in body.decode()
    held.pop().close()
    wait_for(lambda: get(port)[0] == 200, 5, what="a slot after a close")
    held[0].close()


def test_keep_alive_idle_timeout(proxy, ups) -> None:
    _, port = serve(proxy, [ups.start("a")], options={"keep_alive": 300})
    c = Raw(port)
    c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.response()[0] == 200
    t0 = time.monotonic()
    assert c.closed(timeout=3)
    assert 0.2 < time.monotonic() - t0 < 1.5
    _, port = serve(proxy, [ups.start("b")], options={"keep_alive": 0})
    c = Raw(port)
    c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, _ = c.response()
    assert headers["connection"] == "close" and c.closed()


def test_client_half_close_still_answered(proxy, ups) -> None:
    _, port = serve(proxy, [ups.start("a")])
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /slow?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n")
    s.shutdown(socket.SHUT_WR)
    c = Raw(port, sock=s)
    status, headers, _ = c.response()
    assert status == 200 and headers["connection"] == "close"
    c.close()


def test_stats_counts(proxy, ups) -> None:
    name, port = serve(proxy, [ups.start("a"), ups.start("b")])
    for _ in range(4):
        get(port, "/echo")
    get(port, "/status?code=404")
    s = proxy.stats(name)
    assert s["requests"] == 5 and s["status"] == {"200": 4, "404": 1}
    assert sorted(u["requests"] for u in s["upstreams"].values()) == [2, 3]
    assert all(u["state"] == "live" for u in s["upstreams"].values())
    assert len(s["processes"]) == 2 and all(p["ready"] for p in s["processes"])

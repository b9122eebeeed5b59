"""Malformed and smuggling requests over the wire, oversized heads, slow clients."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.integration.test_proxy_support import Raw, fresh_upstreams, get, module_proxy, serve  # noqa: F401

CASES = [
    # (name, raw bytes, expected status)
    ("cl-te", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", 400),
    (
        "te-cl",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
        400,
    ),
    ("dup-cl", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nAB", 400),
    ("conflicting-cl", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nAB", 400),
    ("cl-list", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\nAB", 400),
    ("cl-sign", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\nA", 400),
    ("cl-space-colon", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 1\r\n\r\nA", 400),
    ("te-space-colon", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-obs-fold", b"POST / HTTP/1.1\r\nHost: x\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-tab-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tX-B: 2\r\n\r\n", 400),
    ("te-xchunked", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501),
    (
        "te-double",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
        400,
    ),
    ("te-list", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (
        "bad-chunk-size",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-size-prefix",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-size-overflow",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
        400,
    ),
    ("chunk-no-crlf", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
    ("chunk-bare-lf", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400),
    ("bad-header-name", b"GET / HTTP/1.1\r\nHost: x\r\nX(y): z\r\n\r\n", 400),
    ("nul-in-value", b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
    ("bare-lf-head", b"GET / HTTP/1.1\nHost: x\n\n", 400),
    ("bare-cr", b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400),
    ("no-host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two-hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("bad-request-line", b"GET /\r\nHost: x\r\n\r\n", 400),
    ("extra-space", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("lowercase-version", b"GET / http/1.1\r\nHost: x\r\n\r\n", 400),
    ("http2", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("ctl-in-target", b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("relative-target", b"GET a/b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("connect", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405),
    ("expect-other", b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", 417),
    ("uri-too-long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ("too-many-headers", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 120 + b"\r\n", 431),
    ("head-too-large", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n", 431),
]


@pytest.fixture(scope="module")
def site(proxy):
    from tests.integration.test_proxy_support import Upstreams

    u = Upstreams()
    name, port = serve(proxy, [u.start("a")], options={"header_timeout": 1000})
    yield name, port
    u.close()


@pytest.mark.parametrize("name, data, status", CASES, ids=[c[0] for c in CASES])
def test_refused(site, name: str, data: bytes, status: int) -> None:
    _, port = site
    c = Raw(port)
    c.send(data)
    got, headers, body = c.response()
    assert got == status, body
    assert "x-upstream" not in headers  # answered by the proxy, never forwarded
    assert headers["connection"] == "close" and c.closed()  # and nothing after it is read as a request
    c.close()


def test_nothing_reached_the_upstream(proxy, site) -> None:
    name, port = site
    before = sum(u["requests"] for u in proxy.stats(name)["upstreams"].values())
    for _, data, _ in CASES[:10]:
        c = Raw(port)
        c.send(data)
        c.response()
        c.close()
    assert sum(u["requests"] for u in proxy.stats(name)["upstreams"].values()) == before


def test_smuggled_second_request_is_not_served(site) -> None:
    _, port = site
    c = Raw(port)
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
           b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n")  # fmt: skip
    assert c.response()[0] == 400
    assert c.closed() and b"HTTP/1.1" not in c.buf


def test_valid_pipelined_body_boundaries(site) -> None:
    _, port = site
    c = Raw(port)
    c.send(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /echo?second HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert c.response()[0] == 200
    status, _, body = c.response()
    assert status == 200 and b"/echo?second" in body
    c.close()


def test_leading_empty_lines_tolerated(site) -> None:
    _, port = site
    c = Raw(port)
    c.send(b"\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.response()[0] == 200
    c.close()


def test_slowloris_gets_408_and_costs_others_nothing(site) -> None:
    _, port = site
    slow = []
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        slow.append(s)
    stop = threading.Event()

    def drip() -> None:
        while not stop.is_set():
            for s in slow:
                try:
                    s.sendall(b"X-A: b\r\n")
                except OSError:
                    pass
            time.sleep(0.2)

    t = threading.Thread(target=drip)
    t.start()
    try:
        worst = 0.0
        for _ in range(30):
            t0 = time.monotonic()
            assert get(port, "/echo")[0] == 200
            worst = max(worst, time.monotonic() - t0)
        assert worst < 0.5
        time.sleep(1.3)  # header_timeout is 1 s
        for s in slow[:5]:
            c = Raw(port, sock=s)
            status, _, body = c.response()
            assert status == 408 and b"did not arrive within 1s" in body
    finally:
        stop.set()
        t.join()
        for s in slow:
            s.close()


def test_idle_connection_without_a_byte_is_closed(site) -> None:
    _, port = site
    c = Raw(port)
    t0 = time.monotonic()
    assert c.closed(timeout=4)
    assert time.monotonic() - t0 < 2.5

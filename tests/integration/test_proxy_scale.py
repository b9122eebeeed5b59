"""Many connections and big bodies: the proxy's memory stays bounded."""

from __future__ import annotations

import hashlib
import resource
import shutil
import socket
import threading
import time
from typing import List

import pytest

from tests.helpers import wait_for
from tests.integration.test_proxy_support import Raw, fresh_upstreams, module_proxy, rss_kb, serve  # noqa: F401

BIG = 200 * 1024 * 1024


@pytest.fixture
def nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class RssWatch:
    """Peak RSS growth of the proxy processes while a transfer runs."""

    def __init__(self, pids: List[int]) -> None:
        self.pids = pids
        self.base = {p: rss_kb(p) for p in pids}
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, max(rss_kb(p) - self.base[p] for p in self.pids))
            time.sleep(0.02)

    def finish(self) -> int:
        self.stop.set()
        self.thread.join()
        return self.peak


def test_thousand_concurrent_connections(proxy, ups, nofile) -> None:
    up = ups.start_node("n") if shutil.which("node") else ups.start("n")
    name, port = serve(proxy, [up])
    conns = [Raw(port, timeout=30) for _ in range(1000)]
    try:
        wait_for(lambda: proxy.stats(name)["conns_active"] == 1000, 15, what="1000 connections open")
        for c in conns:
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert all(c.response()[0] == 200 for c in conns)
        for c in conns:  # and once more on the same (keep-alive) connections
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert all(c.response()[0] == 200 for c in conns)
    finally:
        for c in conns:
            c.close()
    wait_for(lambda: proxy.stats(name)["conns_active"] == 0, 10, what="all connections closed")


def test_200mb_upload_and_download_with_bounded_memory(proxy, ups) -> None:
    _, port = serve(proxy, [ups.start("a")])
    watch = RssWatch(proxy.pids())
    chunk = bytes(range(256)) * 4096  # 1 MiB
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BIG)
    digest = hashlib.sha256()
    for _ in range(BIG // len(chunk)):
        s.sendall(chunk)
        digest.update(chunk)
    c = Raw(port, sock=s, timeout=30)
    status, _, body = c.response()
    assert status == 200 and b'"bytes": %d' % BIG in body and digest.hexdigest().encode() in body
    c.send(b"GET /download?size=%d HTTP/1.1\r\nHost: x\r\n\r\n" % BIG)
    while b"\r\n\r\n" not in c.buf:
        c._fill()
    head, rest = c.buf.split(b"\r\n\r\n", 1)
    assert b" 200 " in head and b"Content-Length: %d" % BIG in head
    got = len(rest)
    while got < BIG:
        data = s.recv(1 << 20)
        assert data
        got += len(data)
    c.close()
    growth = watch.finish()
    assert got == BIG
    assert growth < 20 * 1024, f"proxy RSS grew by {growth} KiB"


def test_slow_reader_download_is_backpressured(proxy, ups) -> None:
    _, port = serve(proxy, [ups.start("a")])
    watch = RssWatch(proxy.pids())
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET /download?size=%d&chunked=1 HTTP/1.1\r\nHost: x\r\n\r\n" % (64 * 1024 * 1024))
    time.sleep(1.0)  # do not read: the proxy must stop reading the upstream, not buffer 64 MB
    assert watch.peak < 8 * 1024
    got = 0
    while True:
        data = s.recv(1 << 20)
        got += len(data)
        if data.endswith(b"0\r\nX-Trailer: done\r\n\r\n") or not data:
            break
    s.close()
    assert got > 64 * 1024 * 1024
    assert watch.finish() < 20 * 1024

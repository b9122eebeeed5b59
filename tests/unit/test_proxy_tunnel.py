"""Tunnel with both copy strategies (splice and recv/send) on socketpairs, driven by a Reactor thread."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from typing import Iterator

import pytest

from alter.proxy.reactor import IN, Reactor
from alter.proxy.testing import FakeFds, FakeReactor
from alter.proxy.tunnel import CHUNK, HAVE_SPLICE, IDLE_STEP, SMALL, Tunnel


@contextlib.contextmanager
def running(reactor: Reactor, *socks: socket.socket) -> Iterator[None]:
    """Run the reactor on a thread for the block; then stop it and close it and the test's sockets."""
    thread = threading.Thread(target=reactor.run)
    thread.start()
    try:
        yield
    finally:
        reactor.stop()
        thread.join(5)
        for s in socks:
            s.close()
        reactor.close()


@pytest.mark.parametrize("splice", [False, True, None] if HAVE_SPLICE else [False, None])
def test_tunnel_relays_both_ways_with_backpressure(splice) -> None:
    reactor = Reactor()
    a_out, a_in = socket.socketpair()  # client side: test holds a_out, tunnel gets a_in
    b_in, b_out = socket.socketpair()  # upstream side: tunnel gets b_in, test holds b_out
    for s in (a_in, b_in):
        s.setblocking(False)
    closed = threading.Event()
    tunnel = Tunnel(
        reactor, a_in, b_in, to_a=b"hello-a", to_b=b"hello-b", on_close=lambda t: closed.set(), use_splice=splice
    )
    with running(reactor, a_out, b_out):
        assert a_out.recv(7) == b"hello-a"
        assert b_out.recv(7) == b"hello-b"
        payload = os.urandom(4 * 1024 * 1024)
        got = bytearray()

        def drain() -> None:
            while len(got) < len(payload):
                data = b_out.recv(65536)
                if not data:
                    return
                got.extend(data)

        reader = threading.Thread(target=drain)
        reader.start()
        a_out.sendall(payload)  # far more than the socket buffers: only works with flow control
        reader.join(20)
        assert bytes(got) == payload
        b_out.sendall(b"reply")
        assert a_out.recv(5) == b"reply"
        if splice is None and HAVE_SPLICE:  # adaptive: the bulk direction moved to splice, the other did not
            assert tunnel.ab.pipe_w >= 0 and tunnel.ba.pipe_w < 0
        a_out.shutdown(socket.SHUT_WR)
        assert b_out.recv(10) == b""  # half-close forwarded
        b_out.sendall(b"late")
        assert a_out.recv(10) == b"late"  # the other direction still flows
        b_out.close()
        assert a_out.recv(10) == b""
        assert closed.wait(5)


def test_small_messages_are_copied_in_order_without_a_pipe() -> None:
    """Request/response traffic on the adaptive path: every message relayed intact, no pipe created."""
    reactor = Reactor()
    a_out, a_in = socket.socketpair()
    b_in, b_out = socket.socketpair()
    for s in (a_in, b_in):
        s.setblocking(False)
    tunnel = Tunnel(reactor, a_in, b_in)
    with running(reactor, a_out, b_out):
        for i in range(200):
            msg = b"GET /%d HTTP/1.1\r\n\r\n" % i
            a_out.sendall(msg)
            assert b_out.recv(1000) == msg
            b_out.sendall(b"reply %d" % i)
            assert a_out.recv(1000) == b"reply %d" % i
        assert tunnel.ab.pipe_w < 0 and tunnel.ba.pipe_w < 0


def test_an_eof_queued_behind_the_bytes_is_seen() -> None:
    """Edge-triggered copy mode: the client's bytes and its FIN are both waiting when the tunnel starts
    (a short read must not be taken for 'drained' while EPOLLRDHUP says an EOF is queued)."""
    reactor = Reactor()
    listen, up_listen = socket.create_server(("127.0.0.1", 0)), socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listen.getsockname())
    a, _ = listen.accept()
    client.sendall(b"hello")
    client.shutdown(socket.SHUT_WR)
    b = socket.create_connection(up_listen.getsockname())
    upstream, _ = up_listen.accept()
    for s in (a, b):
        s.setblocking(False)
    tunnel = Tunnel(reactor, a, b)
    assert reactor.masks[a.fileno()] & select.EPOLLET, "a copying half is edge-triggered"
    with running(reactor, client, upstream, listen, up_listen):
        upstream.settimeout(5)
        assert upstream.recv(100) == b"hello"
        assert upstream.recv(100) == b""  # the half-close arrived too
        upstream.sendall(b"bye")
        upstream.close()
        client.settimeout(5)
        assert client.recv(100) == b"bye"
        assert client.recv(100) == b""
    assert tunnel.closed


class ChunkSock:
    """A source that always has a full chunk ready (count of them), and a sink that takes everything."""

    def __init__(self, fd: int, chunks: int = 0) -> None:
        self.fd, self.chunks, self.got = fd, chunks, 0

    def fileno(self) -> int:
        return self.fd

    def recv(self, n: int) -> bytes:
        if not self.chunks:
            raise BlockingIOError
        self.chunks -= 1
        return b"x" * n

    def send(self, data: bytes) -> int:
        self.got += len(data)
        return len(data)

    def close(self) -> None:
        pass


def test_an_edge_triggered_half_comes_back_for_what_one_batch_left() -> None:
    """pump() stops after 16 reads; edge-triggered, no new event would come, so it must schedule itself."""
    reactor = FakeReactor()
    src, dst = ChunkSock(20, chunks=40), ChunkSock(21)
    tunnel = Tunnel(reactor, src, dst, use_splice=False)  # type: ignore[arg-type]
    assert reactor.masks[20] & select.EPOLLET
    with FakeFds(src, dst):
        tunnel.ab.on_event(IN)
    assert dst.got == SMALL + 39 * CHUNK and src.chunks == 0  # the first read was SMALL, then whole chunks


class StreamSock:
    """A source holding a byte stream (recv hands out what was asked, then EAGAIN) that records
    the sizes asked for; as a sink it keeps what it is sent."""

    def __init__(self, fd: int) -> None:
        self.fd, self.inbox, self.asked, self.out = fd, bytearray(), [], bytearray()

    def fileno(self) -> int:
        return self.fd

    def recv(self, n: int) -> bytes:
        self.asked.append(n)
        if not self.inbox:
            raise BlockingIOError
        data = bytes(self.inbox[:n])
        del self.inbox[:n]
        return data

    def send(self, data: bytes) -> int:
        self.out += data
        return len(data)

    def close(self) -> None:
        pass


def test_small_messages_are_read_small_and_a_bigger_one_switches_the_half_to_whole_chunks() -> None:
    reactor = FakeReactor()
    src, dst = StreamSock(20), StreamSock(21)
    tunnel = Tunnel(reactor, src, dst, use_splice=False)  # type: ignore[arg-type]
    sent = bytearray()
    with FakeFds(src, dst):
        for i in range(3):
            message = b"ping %d" % i
            src.inbox += message
            sent += message
            tunnel.ab.on_event(IN)
        assert src.asked == [SMALL, SMALL, SMALL] and tunnel.ab.size == SMALL
        big = bytes(range(256)) * 8  # 2 KiB: fills the SMALL read, the rest follows in one chunk read
        src.inbox += big
        sent += big
        tunnel.ab.on_event(IN)
        assert tunnel.ab.size == CHUNK and src.asked[3:5] == [SMALL, CHUNK]
        src.inbox += b"pong"
        sent += b"pong"
        tunnel.ab.on_event(IN)
    assert src.asked[-1] == CHUNK  # switched for good
    assert bytes(dst.out) == bytes(sent)  # every byte, in order
    assert tunnel.ab.size == CHUNK and tunnel.ba.size == SMALL  # per direction
    assert not tunnel.closed


def test_the_idle_timeout_sees_fast_path_traffic() -> None:
    reactor = FakeReactor(now=100.0)
    a, b = ChunkSock(20), ChunkSock(21)
    tunnel = Tunnel(reactor, a, b, idle_timeout=5.0, use_splice=False)  # type: ignore[arg-type]
    assert tunnel.deadline == 100.0 + IDLE_STEP
    for t in range(1, 20):  # a message every second for 19 s: never idle
        reactor.now = 100.0 + t
        a.chunks = 1
        a.recv = lambda n: b"ping"  # type: ignore[method-assign]
        with FakeFds(a, b):
            tunnel.ab.on_event(IN)
        del a.recv
        if tunnel.deadline <= reactor.now:
            tunnel.on_timeout()
        assert not tunnel.closed
    closed_at = None
    for t in range(20, 40):  # then silence
        reactor.now = 100.0 + t
        if tunnel.deadline <= reactor.now:
            tunnel.on_timeout()
        if tunnel.closed:
            closed_at = t
            break
    assert closed_at is not None and 19 + 5 <= closed_at <= 19 + 5 + IDLE_STEP

"""Tunnel with both copy strategies (splice and recv/send) on socketpairs, driven by a Reactor thread."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from alter.proxy.reactor import Reactor
from alter.proxy.tunnel import HAVE_SPLICE, Tunnel


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
    thread = threading.Thread(target=reactor.run)
    thread.start()
    try:
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
    finally:
        reactor.stop()
        thread.join(5)
        for s in (a_out, b_out):
            s.close()
        reactor.close()


def test_small_messages_go_through_the_scratch_buffer_in_order() -> None:
    """Request/response traffic on the adaptive path: every message relayed intact, no pipe created."""
    reactor = Reactor()
    a_out, a_in = socket.socketpair()
    b_in, b_out = socket.socketpair()
    for s in (a_in, b_in):
        s.setblocking(False)
    tunnel = Tunnel(reactor, a_in, b_in)
    thread = threading.Thread(target=reactor.run)
    thread.start()
    try:
        for i in range(200):
            msg = b"GET /%d HTTP/1.1\r\n\r\n" % i
            a_out.sendall(msg)
            assert b_out.recv(1000) == msg
            b_out.sendall(b"reply %d" % i)
            assert a_out.recv(1000) == b"reply %d" % i
        assert tunnel.ab.pipe_w < 0 and tunnel.ba.pipe_w < 0
    finally:
        reactor.stop()
        thread.join(5)
        for s in (a_out, b_out):
            s.close()
        reactor.close()

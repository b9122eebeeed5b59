"""The daemon <-> proxy process channel: JSON over SOCK_SEQPACKET, file descriptors with SCM_RIGHTS."""

from __future__ import annotations

import os
import socket

import pytest

from alter.proxy import control


def test_messages_keep_boundaries_and_carry_fds() -> None:
    a, b = control.socketpair()
    left, right = control.Channel(a), control.Channel(b)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    try:
        assert not left.send({"op": "configure", "worker": "api"}, [listener.fileno()])
        assert not left.send({"op": "stats"})
        got = right.receive()
        assert [m["op"] for m, _ in got] == ["configure", "stats"]
        (fd,) = got[0][1]
        assert got[1][1] == []
        dup = socket.socket(fileno=fd)
        assert dup.getsockname() == listener.getsockname()  # the very same socket
        dup.close()
        assert right.receive() == []  # nothing more, no blocking
    finally:
        listener.close()
        left.close()
    with pytest.raises(EOFError):
        right.receive()
    right.close()


def test_queue_when_the_peer_is_slow_and_size_limit() -> None:
    a, b = control.socketpair()
    left, right = control.Channel(a), control.Channel(b)
    big = {"op": "stats", "pad": "x" * 200_000}
    pending = False
    sent = 0
    while not pending and sent < 1000:
        pending = left.send(big)
        sent += 1
    assert pending and left.queue  # the socket is full: the rest waits, nothing blocks
    received = 0
    while left.queue or received < sent:
        received += len(right.receive())
        left.flush()
    assert received == sent
    with pytest.raises(ValueError):
        left.send({"op": "x", "pad": "y" * (control.MAX_MESSAGE + 1)})
    left.close()
    right.close()


def test_garbage_is_skipped_and_its_fds_closed() -> None:
    a, b = control.socketpair()
    r, w = os.pipe()
    socket.send_fds(a, [b"not json"], [r])
    a.send(b'{"op": "ok"}')
    ch = control.Channel(b)
    assert [m["op"] for m, _ in ch.receive()] == ["ok"]
    os.close(w)
    a.close()
    ch.close()

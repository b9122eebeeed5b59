"""Syslog message formats, destinations and the bounded queue (no network needed)."""

from __future__ import annotations

import calendar
import re

import pytest

from alter.daemon.loop import EventLoop
from alter.logs.syslog import MAX_DATAGRAM, SyslogSink, parse_dest

TS = calendar.timegm((2026, 11, 21, 13, 5, 9, 0, 0, 0)) + 0.123456


@pytest.fixture
def loop():
    lp = EventLoop()
    yield lp
    lp.close()


@pytest.mark.parametrize(
    "dest, parsed",
    [
        ("syslog://localhost:514", ("udp", ("localhost", 514))),
        ("udp://10.0.0.1:5514", ("udp", ("10.0.0.1", 5514))),
        ("syslog://loghost", ("udp", ("loghost", 514))),
        ("tcp://127.0.0.1:601", ("tcp", ("127.0.0.1", 601))),
        ("tcp://[::1]:601", ("tcp", ("::1", 601))),
        ("/dev/log", ("unix", "/dev/log")),
        ("unix:///run/systemd/journal/syslog", ("unix", "/run/systemd/journal/syslog")),
        ("local", ("unix", "/dev/log")),
    ],
)
def test_parse_dest(dest, parsed) -> None:
    assert parse_dest(dest) == parsed


@pytest.mark.parametrize("dest", ["http://x:1", "syslog://", "tcp://h:0", "tcp://h:99999", "nonsense"])
def test_parse_dest_rejects(dest) -> None:
    with pytest.raises(ValueError):
        parse_dest(dest)


def test_rfc5424_udp_messages(loop) -> None:
    s = SyslogSink(loop, "udp://127.0.0.1:9", "my app", hostname="host-1")
    msgs = s.messages(TS, "err", 2, b"\x1b[31mboom\x1b[0m \xff\n\nsecond\n")
    assert msgs == [
        "<11>1 2026-11-21T13:05:09.123456Z host-1 myapp 2 err - boom \ufffd".encode(),
        b"<11>1 2026-11-21T13:05:09.123456Z host-1 myapp 2 err - second",
    ]
    assert s.messages(TS, "out", 1, b"x\n")[0].startswith(b"<14>1 ")
    assert s.messages(TS, "apm", 0, b"x\n")[0].startswith(b"<13>1 2026-11-21T13:05:09.123456Z host-1 myapp - apm - x")
    s.close()


def test_tcp_octet_counting(loop) -> None:
    s = SyslogSink(loop, "tcp://127.0.0.1:9", "api", hostname="h")
    [m] = s.messages(TS, "out", 1, "héllo\n".encode())
    length, _, body = m.partition(b" ")
    assert int(length) == len(body) and body.endswith("héllo".encode())
    s.close()


def test_local_socket_format(loop) -> None:
    s = SyslogSink(loop, "/nonexistent/dev-log", "api")
    [m] = s.messages(TS, "out", 3, b"hi\n")
    assert re.match(rb"^<14>Nov 21 \d\d:\d\d:\d\d api\[3\]: hi$", m), m
    s.close()


def test_datagrams_are_cut(loop) -> None:
    s = SyslogSink(loop, "udp://127.0.0.1:9", "api")
    [m] = s.messages(TS, "out", 1, "é".encode() * 10_000 + b"\n")
    assert len(m) <= MAX_DATAGRAM
    m.decode("utf-8")  # not cut inside a character
    s.close()


def test_queue_is_bounded_drop_oldest_while_down(loop) -> None:
    s = SyslogSink(loop, "/nonexistent/dev-log", "api", max_queue=100)
    assert not s.connected and "cannot connect" in (s.error or "")
    for i in range(30):
        s.send_block(TS, "out", 1, b"".join(b"m%d-%d\n" % (i, k) for k in range(10)))
    st = s.status()
    assert st["queued"] == 100 and st["dropped"] == 200 and st["sent"] == 0 and st["connected"] is False
    assert s._queue[0].endswith(b"m20-0")  # the oldest were dropped
    s.close()

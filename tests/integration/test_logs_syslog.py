"""Syslog to real local receivers (UDP, TCP) and to dead ones: the loop keeps answering."""

from __future__ import annotations

import calendar
import re
import socket
import threading
import time
from typing import List

import pytest

from tests.integration.test_logs_capture import Lateness, logenv_for, run_for, run_until


@pytest.fixture
def logenv(tmp_path):
    yield from logenv_for(tmp_path)


RFC5424 = re.compile(rb"^<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\S+) (\S+) (\S+) (\S+) (-) (.*)$", re.S)

LINES = """
import os, sys
sys.stdout.buffer.write(b"plain line\\n\\x1b[32mgreen\\x1b[0m line\\nunicode \\xc3\\xa9\\xe2\\x9c\\x93\\n")
sys.stdout.flush()
sys.stderr.buffer.write(b"an error \\xff\\n")
"""

FLOOD = """
import os, sys
n = int(sys.argv[1])
data = b"".join(b"flood %07d %s\\n" % (i, b"f" * 50) for i in range(n))
for pos in range(0, len(data), 65536):
    os.write(1, data[pos:pos + 65536])
"""


def free_port(kind: int) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_udp_rfc5424_fields(logenv) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    port = rx.getsockname()[1]
    wl = logenv.worker(instances=2, syslog=f"syslog://127.0.0.1:{port}", syslog_tag="my-app")
    p = logenv.pump(wl, LINES, index=2, instances=2)
    got: List[bytes] = []

    def receive() -> bool:
        while True:
            try:
                got.append(rx.recv(65536))
            except BlockingIOError:
                return len(got) >= 4

    run_until(logenv.loop, lambda: p.done and receive(), what="4 datagrams")
    rx.close()
    parsed = [RFC5424.match(m) for m in got]
    assert all(parsed), got
    by_text = {m.group(8): m for m in parsed}
    assert set(by_text) == {b"plain line", b"green line", "unicode é✓".encode(), "an error \ufffd".encode()}
    out, err = by_text[b"plain line"], by_text["an error \ufffd".encode()]
    assert out.group(1) == b"14" and err.group(1) == b"11"  # user.info / user.err
    assert out.group(3) == socket.gethostname().encode()[:255]
    assert out.group(4) == b"my-app" and out.group(5) == b"2" and out.group(6) == b"out" and err.group(6) == b"err"
    assert abs(calendar.timegm(time.strptime(out.group(2)[:19].decode(), "%Y-%m-%dT%H:%M:%S")) - time.time()) < 60
    assert wl.status()["syslog"]["sent"] == 4


def test_udp_dead_port_never_blocks_the_loop(logenv) -> None:
    port = free_port(socket.SOCK_DGRAM)
    wl = logenv.worker(syslog=f"udp://127.0.0.1:{port}")
    late = Lateness(logenv.loop)
    p = logenv.pump(wl, FLOOD, "100000")
    run_until(logenv.loop, lambda: p.done, timeout=60, what="the flood to be read")
    run_for(logenv.loop, 0.1)
    late.stop()
    st = wl.status()
    assert st["lines"] == 100000  # every line still reached the file pipeline
    assert st["syslog"]["dropped"] > 0 and "refuses" in (st["syslog"]["error"] or "")
    assert late.fired > 0 and late.worst < 0.5, f"loop timer {late.worst:.3f}s late"


def test_tcp_dead_port_queue_bounded_and_loop_responsive(logenv) -> None:
    port = free_port(socket.SOCK_STREAM)
    wl = logenv.worker(syslog=f"tcp://127.0.0.1:{port}")
    late = Lateness(logenv.loop)
    p = logenv.pump(wl, FLOOD, "50000")
    run_until(logenv.loop, lambda: p.done, timeout=60, what="the flood to be read")
    run_for(logenv.loop, 0.6)  # a reconnect attempt happens meanwhile
    late.stop()
    st = wl.status()["syslog"]
    assert st["connected"] is False and "cannot connect" in st["error"] and "ECONNREFUSED" in st["error"]
    assert st["queued"] == 10_000 and st["dropped"] == 40_000
    assert late.worst < 0.5, f"loop timer {late.worst:.3f}s late"


class TcpReceiver:
    """Accepts connections in a thread and splits octet-counted frames."""

    def __init__(self, port: int = 0, drop_first_after: int = 0) -> None:
        self.drop_first_after = drop_first_after
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.frames: List[bytes] = []
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.settimeout(0.2)
            buf = b""
            while not self._stop:
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                buf += data
                while b" " in buf:
                    length, _, rest = buf.partition(b" ")
                    n = int(length)
                    if len(rest) < n:
                        break
                    self.frames.append(rest[:n])
                    buf = rest[n:]
                if self.connections == 1 and self.drop_first_after and len(self.frames) >= self.drop_first_after:
                    break  # hang up on the first connection (a receiver restart)
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        self.sock.close()


def test_tcp_octet_counting_to_a_listener(logenv) -> None:
    rx = TcpReceiver()
    try:
        wl = logenv.worker(syslog=f"tcp://127.0.0.1:{rx.port}")
        p = logenv.pump(wl, FLOOD, "5000")
        run_until(logenv.loop, lambda: p.done and len(rx.frames) >= 5000, timeout=30, what="5000 frames")
        texts = [RFC5424.match(f).group(8) for f in rx.frames]
        assert texts == [b"flood %07d %s" % (i, b"f" * 50) for i in range(5000)]
        assert wl.status()["syslog"]["connected"] and wl.status()["syslog"]["dropped"] == 0
    finally:
        rx.close()


def test_tcp_receiver_comes_up_later_and_gets_the_queue(logenv) -> None:
    port = free_port(socket.SOCK_STREAM)
    wl = logenv.worker(syslog=f"tcp://127.0.0.1:{port}")
    wl.system("written while the receiver is down")
    run_for(logenv.loop, 0.1)
    assert wl.status()["syslog"]["queued"] == 1
    rx = TcpReceiver(port)
    try:
        run_until(logenv.loop, lambda: rx.frames, timeout=10, what="the queued message after reconnect")
        assert rx.frames[0].endswith(b" apm - written while the receiver is down")
        assert wl.status()["syslog"]["connected"] and wl.status()["syslog"]["error"] is None
    finally:
        rx.close()


def test_tcp_receiver_hangs_up_and_we_reconnect(logenv) -> None:
    rx = TcpReceiver(drop_first_after=1)
    try:
        wl = logenv.worker(syslog=f"tcp://127.0.0.1:{rx.port}")
        wl.system("first")
        run_until(logenv.loop, lambda: rx.frames, timeout=10, what="the first frame")
        run_until(
            logenv.loop, lambda: not wl.status()["syslog"]["connected"], timeout=10, what="the hang-up to be noticed"
        )
        assert "closed by the receiver" in wl.status()["syslog"]["error"]
        wl.system("second")
        run_until(logenv.loop, lambda: len(rx.frames) >= 2, timeout=10, what="a frame on the new connection")
        assert rx.connections == 2 and rx.frames[-1].endswith(b" - second")
    finally:
        rx.close()

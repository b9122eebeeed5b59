"""Stand-ins for a proxy process, its reactor and a listener: drive HttpConn/UpstreamConn/Tunnel
without sockets or epoll (tests/unit/test_proxy_fastpath.py, bench/proxy/micro.py)."""

from __future__ import annotations

from typing import Any, Dict, List, Set, Tuple


class FakeReactor:
    """Records registrations and masks; call_soon runs at once."""

    def __init__(self, now: float = 1000.0) -> None:
        self.handlers: Dict[int, Any] = {}
        self.masks: Dict[int, int] = {}
        self.now = now

    def add(self, fd: int, mask: int, handler: Any) -> None:
        self.handlers[fd] = handler
        self.masks[fd] = mask

    def modify(self, fd: int, mask: int) -> None:
        self.masks[fd] = mask

    def set_handler(self, fd: int, handler: Any) -> None:
        self.handlers[fd] = handler

    def remove(self, fd: int) -> None:
        self.handlers.pop(fd, None)
        self.masks.pop(fd, None)

    def call_soon(self, cb: Any, *args: Any) -> None:
        cb(*args)


class FakeProc:
    """What connections need of their proxy process: the reactor, trace ids, the log."""

    index = 0
    count = 1
    peers = None

    def __init__(self) -> None:
        self.reactor = FakeReactor()
        self.conns: Set[Any] = set()
        self.seq = 0
        self.logs: List[Tuple[str, str]] = []

    def trace_id(self) -> bytes:
        self.seq += 1
        return b"%010x" % self.seq

    def log(self, worker: str, msg: str, level: str = "info") -> None:
        self.logs.append((worker, msg))

    def drain_changed(self, *a: Any) -> None:
        pass


class FakeListener:
    proto = b"http"
    host_header = b"127.0.0.1:8080"
    id = "http://127.0.0.1:8080"

    def __init__(self, site: Any) -> None:
        self.site = site
        self.closed = 0

    def conn_closed(self) -> None:
        self.closed += 1


class FakeFds:
    """Routes tunnel.py's and fast.py's os.read/os.write (their fast paths call them on fd numbers)
    to fake sockets:

    with FakeFds(a, b):
        tunnel.ab.on_event(IN)
    """

    def __init__(self, *socks: Any) -> None:
        self.socks = {s.fileno(): s for s in socks}
        self.saved: Tuple[Any, Any] = (None, None)

    def read(self, fd: int, n: int) -> bytes:
        return bytes(self.socks[fd].recv(n))

    def write(self, fd: int, data: Any) -> int:
        return int(self.socks[fd].send(data))

    def add(self, sock: Any) -> None:
        self.socks[sock.fileno()] = sock

    def __enter__(self) -> FakeFds:
        from alter.proxy import fast, tunnel

        self.saved = (tunnel._read, tunnel._write)
        tunnel._read, tunnel._write = self.read, self.write
        fast._read, fast._write = self.read, self.write
        return self

    def __exit__(self, *exc: Any) -> None:
        from alter.proxy import fast, tunnel

        tunnel._read, tunnel._write = self.saved
        fast._read, fast._write = self.saved

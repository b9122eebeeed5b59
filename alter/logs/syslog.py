"""Forwarding a worker's lines to syslog without ever blocking the event loop.

Destinations (the `syslog` option):

    syslog://host[:port]   udp://host[:port]   RFC 5424 over UDP (port 514)
    tcp://host[:port]                          RFC 5424 over TCP, octet-counting framing (RFC 6587)
    /dev/log, unix:///path, local              the local syslog socket (unix datagram),
                                               in the traditional `<PRI>Mmm dd hh:mm:ss TAG[N]: MSG`
                                               form that journald and rsyslog parse

RFC 5424 message: `<PRI>1 2026-11-21T13:05:09.123456Z host TAG N out - text`
(facility user; severity info for stdout, err for stderr, notice for apm's own
lines; PROCID is the 1-based instance index, or `-`; MSGID is the stream; no
structured data).  ANSI escapes are always stripped and invalid UTF-8 replaced.
One line is one message; datagrams are cut at MAX_DATAGRAM bytes.

Sockets are non-blocking.  Messages wait in a bounded queue (MAX_QUEUE) while
the socket is busy or disconnected; when it is full the oldest are dropped and
counted (`status()["dropped"]`).  TCP and unix sockets reconnect on a loop
timer with exponential backoff (0.5 s doubling to 30 s).  A UDP receiver that
is down costs nothing but the (counted) lost datagrams.  Host names are
resolved in a helper thread so DNS never stalls the loop.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from alter.logs.colors import strip_ansi

log = logging.getLogger("apm.logs.syslog")

MAX_QUEUE = 10_000
MAX_DATAGRAM = 8192
MAX_STREAM_MSG = 64 * 1024
BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
REFUSED_WINDOW = 10.0  # status() reports a refusing UDP receiver for this long after the last refusal
FACILITY_USER = 1
SEVERITY = {"out": 6, "err": 3, "apm": 5}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def parse_dest(dest: str) -> Tuple[str, Any]:
    """`udp://h:514` -> ("udp", ("h", 514)); `tcp://...` -> ("tcp", ...); `/dev/log` -> ("unix", "/dev/log")."""
    d = dest.strip()
    if d == "local":
        return "unix", "/dev/log"
    if d.startswith("unix://"):
        return "unix", "/" + d[len("unix://") :].lstrip("/")
    if d.startswith("unix:"):
        return "unix", "/" + d[len("unix:") :].lstrip("/")
    if d.startswith("/"):
        return "unix", d
    scheme, sep, rest = d.partition("://")
    if not sep or scheme not in ("syslog", "udp", "tcp"):
        raise ValueError(f"{dest!r} is not a syslog destination (syslog://host:port, udp://, tcp://, or /dev/log)")
    rest = rest.rstrip("/")
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    elif rest.count(":") == 1:
        host, _, port = rest.partition(":")
    else:
        host, port = rest, ""
    if not host:
        raise ValueError(f"{dest!r} has no host")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{dest!r}: port {port!r} is not 1-65535")
    return ("tcp" if scheme == "tcp" else "udp"), (host, int(port) if port else 514)


def _ascii_token(text: str, limit: int) -> bytes:
    out = "".join(ch for ch in text if 33 <= ord(ch) <= 126)[:limit]
    return (out or "-").encode("ascii")


def _clean(block: bytes) -> bytes:
    data = strip_ansi(block)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        data = data.decode("utf-8", "replace").encode("utf-8")
    return data


def _cut(msg: bytes, limit: int) -> bytes:
    if len(msg) <= limit:
        return msg
    return msg[:limit].decode("utf-8", "ignore").encode("utf-8")


class SyslogSink:
    def __init__(
        self,
        loop: Any,
        dest: str,
        tag: str,
        hostname: Optional[str] = None,
        max_queue: int = MAX_QUEUE,
        resolver: Optional[Callable[..., Any]] = None,
    ) -> None:
        self.loop = loop
        self.dest = dest
        self.kind, self.address = parse_dest(dest)
        self.tag = tag
        self._app = _ascii_token(tag, 48)
        self._tag3164 = (tag.replace(" ", "_").replace(":", "_") or "apm").encode("utf-8", "replace")[:64]
        self._host = _ascii_token(hostname if hostname is not None else socket.gethostname(), 255)
        self.max_queue = max_queue
        self._resolver = resolver or socket.getaddrinfo
        self._sock: Optional[socket.socket] = None
        self._sockaddr: Any = None
        self._family = socket.AF_UNIX if self.kind == "unix" else socket.AF_INET
        self.connected = False
        self._connecting = False
        self._writing = False
        self._reading = False
        self._queue: Deque[bytes] = deque()
        self._partial: Optional[memoryview] = None
        self._partial_msg = b""
        self.sent = 0
        self.dropped = 0
        self.error: Optional[str] = None
        self._backoff = BACKOFF_MIN
        self._timer: Any = None
        self._closed = False
        self._refused_at: Optional[float] = None
        self._ts_sec = -1
        self._ts_cache: Tuple[bytes, bytes] = (b"", b"")
        self._start()

    # ------------------------------------------------------------------ formatting

    def _stamp(self, ts: float) -> Tuple[bytes, bytes]:
        """(RFC 3339 UTC timestamp without fraction, RFC 3164 local timestamp) for this second."""
        sec = int(ts)
        if sec != self._ts_sec:
            g = time.gmtime(sec)
            lt = time.localtime(sec)
            self._ts_cache = (
                b"%04d-%02d-%02dT%02d:%02d:%02d" % (g.tm_year, g.tm_mon, g.tm_mday, g.tm_hour, g.tm_min, g.tm_sec),
                b"%s %2d %02d:%02d:%02d"
                % (_MONTHS[lt.tm_mon - 1].encode(), lt.tm_mday, lt.tm_hour, lt.tm_min, lt.tm_sec),
            )
            self._ts_sec = sec
        return self._ts_cache

    def header(self, ts: float, stream: str, index: int) -> bytes:
        pri = FACILITY_USER * 8 + SEVERITY.get(stream, 6)
        procid = b"%d" % index if index > 0 else b"-"
        rfc3339, rfc3164 = self._stamp(ts)
        if self.kind == "unix":
            return b"<%d>%s %s[%s]: " % (pri, rfc3164, self._tag3164, procid if index > 0 else b"0")
        usec = min(999_999, int((ts - int(ts)) * 1_000_000 + 0.5))
        return b"<%d>1 %s.%06dZ %s %s %s %s - " % (pri, rfc3339, usec, self._host, self._app, procid, stream.encode())

    def messages(self, ts: float, stream: str, index: int, block: bytes) -> List[bytes]:
        head = self.header(ts, stream, index)
        lines = _clean(block).split(b"\n")
        limit = MAX_STREAM_MSG if self.kind == "tcp" else MAX_DATAGRAM
        msgs = [_cut(head + line, limit) for line in lines if line]
        if self.kind == "tcp":
            msgs = [b"%d %s" % (len(m), m) for m in msgs]
        return msgs

    def send_block(self, ts: float, stream: str, index: int, block: bytes) -> None:
        """Queue one message per line of `block` and send what the socket takes now."""
        if self._closed:
            return
        msgs = self.messages(ts, stream, index, block)
        if not msgs:
            return
        q = self._queue
        q.extend(msgs)
        over = len(q) - self.max_queue
        if over > 0:
            for _ in range(over):
                q.popleft()
            self.dropped += over
        if self.connected and not self._writing:
            self._flush()

    # ------------------------------------------------------------------ connecting

    def _start(self) -> None:
        if self.kind == "unix":
            self._sockaddr = self.address
            self._connect()
            return
        host, port = self.address
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None:
            self._family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            self._sockaddr = (host, port)
            self._connect()
            return
        self._connecting = True
        threading.Thread(target=self._resolve, args=(host, port), name="apm-syslog-resolve", daemon=True).start()

    def _resolve(self, host: str, port: int) -> None:  # runs in a helper thread
        socktype = socket.SOCK_STREAM if self.kind == "tcp" else socket.SOCK_DGRAM
        try:
            infos = self._resolver(host, port, 0, socktype)
            result: Any = (infos[0][0], infos[0][4])
        except (OSError, IndexError) as exc:
            result = exc
        self.loop.call_soon_threadsafe(self._resolved, result)

    def _resolved(self, result: Any) -> None:
        self._connecting = False
        if self._closed:
            return
        if isinstance(result, BaseException):
            self._failed(f"cannot resolve {self.address[0]}: {result}")
            return
        self._family, self._sockaddr = result
        self._connect()

    def _connect(self) -> None:
        self._timer = None
        if self._closed:
            return
        if self._sockaddr is None:  # resolution failed earlier: resolve again
            self._start()
            return
        socktype = socket.SOCK_STREAM if self.kind == "tcp" else socket.SOCK_DGRAM
        try:
            sock = socket.socket(self._family, socktype | socket.SOCK_CLOEXEC)
        except OSError as exc:
            self._failed(f"cannot create socket: {exc.strerror}")
            return
        sock.setblocking(False)
        self._sock = sock
        if self.kind == "tcp":
            err = sock.connect_ex(self._sockaddr)
            if err in (0, errno.EISCONN):
                self._connected()
            elif err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
                self._connecting = True
                self.loop.add_writer(sock.fileno(), self._on_connect)
            else:
                self._failed(f"cannot connect to {self.dest}: {errno.errorcode.get(err, err)}")
            return
        try:
            sock.connect(self._sockaddr)
        except OSError as exc:
            self._failed(f"cannot connect to {self.dest}: {exc.strerror or exc}")
            return
        self._connected()

    def _on_connect(self) -> None:
        sock = self._sock
        if sock is None:
            return
        self.loop.remove_writer(sock.fileno())
        self._connecting = False
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._failed(f"cannot connect to {self.dest}: {errno.errorcode.get(err, err)}")
            return
        self._connected()

    def _connected(self) -> None:
        assert self._sock is not None
        self.connected = True
        self._connecting = False
        self.error = None
        self._backoff = BACKOFF_MIN
        if self.kind == "tcp":
            self._reading = True
            self.loop.add_reader(self._sock.fileno(), self._on_readable)
        self._flush()

    def _on_readable(self) -> None:
        """A syslog receiver never talks back: readable means closed (or reset)."""
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._failed(f"connection to {self.dest} lost: {exc.strerror or exc}")
            return
        if not data:
            self._failed(f"connection to {self.dest} closed by the receiver")

    def _drop_socket(self) -> None:
        sock = self._sock
        self._sock = None
        self.connected = False
        if sock is None:
            return
        fd = sock.fileno()
        if fd >= 0:
            if self._writing or self._connecting:
                self.loop.remove_writer(fd)
            if self._reading:
                self.loop.remove_reader(fd)
        self._writing = self._reading = self._connecting = False
        sock.close()

    def _failed(self, reason: str) -> None:
        if reason != self.error:
            log.warning("syslog %s: %s (retrying in %.1fs)", self.dest, reason, self._backoff)
        self.error = reason
        self._drop_socket()
        if self._partial is not None:  # resend the whole message on the next connection
            self._queue.appendleft(self._partial_msg)
            self._partial = None
        if self._closed or self._timer is not None:
            return
        self._timer = self.loop.call_later(self._backoff, self._connect)
        self._backoff = min(BACKOFF_MAX, self._backoff * 2)

    # ------------------------------------------------------------------ sending

    def _flush(self) -> None:
        sock = self._sock
        if sock is None or not self.connected:
            return
        q = self._queue
        stream = self.kind == "tcp"
        while True:
            if self._partial is None:
                if not q:
                    break
                self._partial_msg = q.popleft()
                self._partial = memoryview(self._partial_msg)
            try:
                n = sock.send(self._partial)
            except (BlockingIOError, InterruptedError):
                if not self._writing:
                    self._writing = True
                    self.loop.add_writer(sock.fileno(), self._flush)
                return
            except ConnectionRefusedError:
                # UDP: the receiver is not there (ICMP port unreachable); the datagram is lost.
                self._partial = None
                self.dropped += 1
                self._refused_at = self.loop.time()
                continue
            except OSError as exc:
                if not stream and exc.errno in (errno.EMSGSIZE, errno.ENOBUFS, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    self._partial = None
                    self.dropped += 1
                    self.error = f"cannot send to {self.dest}: {exc.strerror or exc}"
                    continue
                self._failed(f"cannot send to {self.dest}: {exc.strerror or exc}")
                return
            if stream and n < len(self._partial):
                self._partial = self._partial[n:]
                continue
            self._partial = None
            self.sent += 1
        if self._writing:
            self._writing = False
            self.loop.remove_writer(sock.fileno())

    # ------------------------------------------------------------------ status

    def status(self) -> Dict[str, Any]:
        error = self.error
        if error is None and self._refused_at is not None and self.loop.time() - self._refused_at < REFUSED_WINDOW:
            error = f"{self.dest} refuses messages (is the receiver down?)"
        return {
            "dest": self.dest,
            "connected": self.connected,
            "queued": len(self._queue) + (1 if self._partial is not None else 0),
            "sent": self.sent,
            "dropped": self.dropped,
            "error": error,
        }

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._drop_socket()

"""Shared helpers for the proxy integration tests (no tests here).

* `UPSTREAM_SRC`: a small threaded HTTP/1.1 + WebSocket + TCP-echo server run
  as its own process (so tests can kill it), identified by NAME.
* `Upstreams`: start/kill/cleanup such processes on allocated loopback ports.
* `raw()`, `Raw`: speak bytes to the proxy and read responses precisely.
* `WsClient`: a minimal WebSocket client.
* `make_certs()`: a CA, a server certificate and client certificates (openssl CLI).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import socket
import struct
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import pytest

from alter.proxy import PortAllocator, Upstream
from alter.proxy.standalone import StandaloneProxy
from tests.helpers import wait_for

UPSTREAM_SRC = r"""
import base64, hashlib, json, os, socket, sys, threading, time
NAME = os.environ.get("NAME", "u")
PORT = int(os.environ["PORT"])
MODE = os.environ.get("MODE", "http")
IDLE = float(os.environ.get("IDLE_TIMEOUT", "0") or 0)
PATTERN = bytes(range(256)) * 256

def readline(f):
    line = f.readline(65537)
    if not line.endswith(b"\r\n"):
        raise EOFError
    return line[:-2]

def read_body(f, headers):
    h = {k.lower(): v for k, v in headers}
    if h.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(readline(f).split(b";")[0], 16)
            if size == 0:
                while readline(f):
                    pass
                return
            left = size
            while left:
                piece = f.read(min(left, 1 << 16))
                if not piece:
                    raise EOFError
                left -= len(piece)
                yield piece
            readline(f)
    n = int(h.get("content-length", "0") or 0)
    while n:
        piece = f.read(min(n, 1 << 16))
        if not piece:
            raise EOFError
        n -= len(piece)
        yield piece

def send(conn, status, body=b"", headers=(), close=False):
    head = "HTTP/1.1 %d X\r\nX-Upstream: %s\r\nContent-Length: %d\r\n" % (status, NAME, len(body))
    for k, v in headers:
        head += "%s: %s\r\n" % (k, v)
    head += "Connection: %s\r\n\r\n" % ("close" if close else "keep-alive")
    conn.sendall(head.encode() + body)

def ws(conn, f, headers):
    key = dict((k.lower(), v) for k, v in headers)["sec-websocket-key"]
    acc = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: %s\r\nX-Upstream: %s\r\n\r\n" % (acc, NAME)).encode())
    while True:
        hdr = f.read(2)
        if len(hdr) < 2:
            return
        op, ln = hdr[0] & 15, hdr[1] & 127
        if ln == 126:
            ln = int.from_bytes(f.read(2), "big")
        elif ln == 127:
            ln = int.from_bytes(f.read(8), "big")
        mask = f.read(4) if hdr[1] & 128 else b"\0\0\0\0"
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(f.read(ln)))
        if op == 8:
            conn.sendall(b"\x88\x00")
            return
        out = (NAME + ":").encode() + data
        n = len(out)
        lenb = bytes([n]) if n < 126 else (b"\x7e" + n.to_bytes(2, "big"))
        conn.sendall(bytes([0x80 | op]) + lenb + out)

def handle(conn):
    f = conn.makefile("rb")
    if IDLE:
        conn.settimeout(IDLE)
    served = 0
    try:
        while True:
            try:
                line = readline(f)
            except (EOFError, OSError):
                return
            method, target, _ = line.decode().split(" ", 2)
            headers = []
            while True:
                l = readline(f)
                if not l:
                    break
                k, v = l.decode("latin-1").split(":", 1)
                headers.append((k, v.strip()))
            conn.settimeout(None)
            h = {k.lower(): v for k, v in headers}
            path, _, query = target.partition("?")
            q = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            if path == "/ws" and h.get("upgrade", "").lower() == "websocket":
                ws(conn, f, headers)
                return
            if path == "/die":
                os._exit(3)
            served += 1
            if path == "/flaky" and served > 1:
                return  # a keep-alive connection that dies under the next request, unanswered
            if path == "/garbage":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc")
                return
            if h.get("expect", "").lower() == "100-continue" and path != "/no-continue":
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            digest = hashlib.sha256()
            n = 0
            for piece in read_body(f, headers):
                digest.update(piece)
                n += len(piece)
            if path == "/slow":
                time.sleep(int(q.get("ms", "1000")) / 1000)
            if method == "HEAD":
                conn.sendall(("HTTP/1.1 200 OK\r\nX-Upstream: %s\r\nContent-Length: %s\r\n\r\n"
                              % (NAME, q.get("size", "0"))).encode())
                continue
            if path == "/download":
                size = int(q.get("size", "0"))
                if q.get("chunked"):
                    conn.sendall(("HTTP/1.1 200 OK\r\nX-Upstream: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % NAME).encode())
                    left = size
                    while left:
                        piece = PATTERN[: min(left, len(PATTERN))]
                        conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                        left -= len(piece)
                    conn.sendall(b"0\r\nX-Trailer: done\r\n\r\n")
                else:
                    conn.sendall(("HTTP/1.1 200 OK\r\nX-Upstream: %s\r\nContent-Length: %d\r\n\r\n" % (NAME, size)).encode())
                    left = size
                    while left:
                        piece = PATTERN[: min(left, len(PATTERN))]
                        conn.sendall(piece)
                        left -= len(piece)
                continue
            if path == "/chunked":
                conn.sendall(("HTTP/1.1 200 OK\r\nX-Upstream: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-T: 1\r\n\r\n" % NAME).encode())
                continue
            if path == "/partial":
                conn.sendall(("HTTP/1.1 200 OK\r\nX-Upstream: %s\r\nContent-Length: 100\r\n\r\nabc" % NAME).encode())
                os._exit(4)
            if path == "/status":
                send(conn, int(q.get("code", "200")), b"status\n")
                continue
            body = json.dumps({"name": NAME, "method": method, "target": target, "headers": headers,
                               "bytes": n, "sha256": digest.hexdigest(), "version": line.decode().rsplit("/", 1)[1]}).encode()
            close = path == "/close" or h.get("connection", "").lower() == "close"
            send(conn, 200, body + b"\n", [("Content-Type", "application/json")], close=close)
            if close:
                return
            if IDLE:
                conn.settimeout(IDLE)
    except (OSError, EOFError, ValueError):
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass

def echo(conn):
    try:
        greeting = os.environ.get("GREETING")
        if greeting:
            conn.sendall(greeting.encode())
        while True:
            data = conn.recv(65536)
            if not data:
                conn.shutdown(socket.SHUT_WR)
                return
            conn.sendall(data)
    except OSError:
        pass
    finally:
        conn.close()

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", PORT))
srv.listen(1024)
while True:
    c, _ = srv.accept()
    threading.Thread(target=echo if MODE == "tcp" else handle, args=(c,), daemon=True).start()
"""

_ports = PortAllocator(cooldown=5.0)


def free_port() -> int:
    return _ports.allocate("test")


def wait_port(port: int, timeout: float = 10.0) -> None:
    def ok() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    wait_for(ok, timeout, what=f"port {port} accepting")


class Upstreams:
    """Upstream server processes started by one test."""

    def __init__(self) -> None:
        self.procs: List[subprocess.Popen] = []
        self.ports: List[int] = []

    def start(self, name: str, mode: str = "http", **env: str) -> int:
        port = free_port()
        full = dict(os.environ, PORT=str(port), NAME=name, MODE=mode, **env)
        p = subprocess.Popen([sys.executable, "-c", UPSTREAM_SRC], env=full)
        self.procs.append(p)
        self.ports.append(port)
        wait_port(port)
        return port

    def start_node(self, name: str) -> int:
        port = free_port()
        src = (
            "require('http').createServer((q,s)=>{s.writeHead(200,{'Content-Type':'text/plain','X-Upstream':"
            f"'{name}'}});s.end('hello world\\n')}}).listen({port},'127.0.0.1')"
        )
        p = subprocess.Popen(["node", "-e", src])
        self.procs.append(p)
        self.ports.append(port)
        wait_port(port)
        return port

    def kill(self, i: int) -> None:
        self.procs[i].kill()
        self.procs[i].wait(5)

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass


def upstream_list(ports: List[int]) -> List[Upstream]:
    return [Upstream(i, "127.0.0.1", p) for i, p in enumerate(ports)]


def start_proxy(processes: int = 2) -> StandaloneProxy:
    proxy = StandaloneProxy(processes=processes)
    proxy.wait_processes()
    return proxy


@pytest.fixture(scope="module", name="proxy")
def module_proxy():
    """`proxy`: one StandaloneProxy with 2 processes per test module (each test adds its own worker)."""
    p = start_proxy(2)
    yield p
    p.close()


@pytest.fixture(name="ups")
def fresh_upstreams():
    """`ups`: upstream processes, killed after the test."""
    u = Upstreams()
    yield u
    u.close()


_names = itertools.count()


def serve(
    proxy: StandaloneProxy,
    ports: List[int],
    scheme: str = "http",
    vanguard: Optional[dict] = None,
    options: Optional[dict] = None,
    host: str = "127.0.0.1",
    **tls: Any,
) -> Tuple[str, int]:
    """Configure a fresh worker with one listener in front of `ports`; returns (worker name, listener port)."""
    name = f"w{next(_names)}"
    port = free_port()
    proxy.configure(name, [f"{scheme}://{host}:{port}"], vanguard, options, **tls)
    proxy.set_upstreams(name, upstream_list(ports))
    return name, port


# ----------------------------------------------------------------------------- raw HTTP


class Raw:
    """A raw client connection that reads exactly one response at a time."""

    def __init__(
        self, port: int, host: str = "127.0.0.1", timeout: float = 10.0, sock: Optional[socket.socket] = None
    ) -> None:
        self.sock = sock or socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def response(self, head_request: bool = False) -> Tuple[int, Dict[str, str], bytes]:
        """(status, lowercased headers, body); skips 1xx interim responses."""
        while True:
            while b"\r\n\r\n" not in self.buf:
                if not self._fill():
                    raise EOFError(f"connection closed; got {self.buf[:200]!r}")
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers: Dict[str, str] = {}
            for line in lines[1:]:
                k, v = line.split(":", 1)
                k = k.strip().lower()
                headers[k] = headers[k] + ", " + v.strip() if k in headers else v.strip()
            if 100 <= status < 200 and status != 101:
                continue
            break
        if head_request or status in (204, 304, 101):
            return status, headers, b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while b"\r\n\r\n" not in b"\r\n" + self.buf:
                        self._fill()
                    _, self.buf = (b"\r\n" + self.buf).split(b"\r\n\r\n", 1)
                    return status, headers, body
                while len(self.buf) < size + 2:
                    self._fill()
                body += self.buf[:size]
                self.buf = self.buf[size + 2 :]
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(self.buf) < n:
                if not self._fill():
                    raise EOFError("body truncated")
            body, self.buf = self.buf[:n], self.buf[n:]
            return status, headers, body
        while self._fill():
            pass
        body, self.buf = self.buf, b""
        return status, headers, body

    def closed(self, timeout: float = 5.0) -> bool:
        """True when the server closed the connection (EOF or reset) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()


def raw(port: int, data: bytes, timeout: float = 10.0) -> Tuple[int, Dict[str, str], bytes]:
    c = Raw(port, timeout=timeout)
    try:
        c.send(data)
        return c.response(head_request=data.startswith(b"HEAD "))
    finally:
        c.close()


def get(port: int, path: str = "/", headers: str = "", host: str = "x") -> Tuple[int, Dict[str, str], bytes]:
    return raw(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode())


# ----------------------------------------------------------------------------- WebSocket


class WsClient:
    def __init__(self, port: int, path: str = "/ws", sock: Optional[socket.socket] = None, host: str = "x") -> None:
        self.raw = Raw(port, sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        self.raw.send(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()  # fmt: skip
        )
        self.status, self.headers, _ = self.raw.response()
        expected = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        ).decode()
        self.accepted = self.status == 101 and self.headers.get("sec-websocket-accept") == expected

    def send_text(self, text: str) -> None:
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        lenb = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
        self.raw.send(b"\x81" + lenb + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv_text(self) -> str:
        while len(self.raw.buf) < 2:
            self.raw._fill()
        n = self.raw.buf[1] & 127
        off = 2
        if n == 126:
            while len(self.raw.buf) < 4:
                self.raw._fill()
            n = struct.unpack(">H", self.raw.buf[2:4])[0]
            off = 4
        while len(self.raw.buf) < off + n:
            self.raw._fill()
        data = self.raw.buf[off : off + n]
        self.raw.buf = self.raw.buf[off + n :]
        return data.decode()

    def close(self) -> None:
        try:
            self.raw.send(b"\x88\x80" + os.urandom(4))
        except OSError:
            pass
        self.raw.close()


# ----------------------------------------------------------------------------- certificates


def make_certs(directory: str) -> Dict[str, str]:
    """A CA, a server cert for localhost/127.0.0.1 and a client cert, all signed by the CA, plus a
    client cert from an unrelated CA.  Returns paths."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    p = {name: os.path.join(directory, name) for name in (
        "ca.key", "ca.pem", "server.key", "server.csr", "server.pem", "client.key", "client.csr", "client.pem",
        "evil-ca.key", "evil-ca.pem", "evil.key", "evil.csr", "evil.pem", "ext.cnf")}  # fmt: skip
    with open(p["ext.cnf"], "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for ca in ("ca", "evil-ca"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=apm test {ca}",
            "-keyout", p[f"{ca}.key"], "-out", p[f"{ca}.pem"])  # fmt: skip
    for name, ca, cn in (("server", "ca", "localhost"), ("client", "ca", "client"), ("evil", "evil-ca", "evil")):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={cn}",
            "-keyout",
            p[f"{name}.key"],
            "-out",
            p[f"{name}.csr"],
        )
        args = ["x509", "-req", "-in", p[f"{name}.csr"], "-CA", p[f"{ca}.pem"], "-CAkey", p[f"{ca}.key"],
                "-CAcreateserial", "-days", "2", "-out", p[f"{name}.pem"]]  # fmt: skip
        if name == "server":
            args += ["-extfile", p["ext.cnf"]]
        run(*args)
    return p


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def monotonic() -> float:
    return time.monotonic()

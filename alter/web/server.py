"""The HTTP server: threads, TLS, security headers, static files, API dispatch.

`GuiHTTPServer` is a ThreadingHTTPServer with its own accept loop (woken by a
pipe, so an idle GUI costs no CPU and stops at once), a cap on concurrent
connections, and the TLS handshake done in each connection's thread (a
slow client never stalls the accept loop).

Every response carries the security headers (CSP `default-src 'self'`,
frame-ancestors 'none', nosniff, no referrer) and never any CORS header.
API answers are JSON (`{"error": {...}}` on failure, status from the error
class); static files come from the zipapp (alter/web/assets.py): under
`/a/<content hash>/` cacheable forever, elsewhere (index.html) `no-cache`.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import selectors
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

from alter.errors import ApmError, NotFound, UsageError
from alter.web import routes
from alter.web.assets import IMMUTABLE, REVALIDATE
from alter.web.errors import MethodNotAllowed, PayloadTooLarge, TooManyRequests, error_body
from alter.web.message import JSON_TYPE, Call, Response, Streamed, check_length, json_bytes, parse_json_body

log = logging.getLogger("apm.web")

MAX_CONNECTIONS = 256
READ_TIMEOUT = 30.0
STREAM_WRITE_TIMEOUT = 30.0
TLS_HANDSHAKE_TIMEOUT = 10.0
DISCARD_MAX = 16 * 1024 * 1024  # a too-large body is read and dropped up to this, so the 413 reaches the client

CSP = (
    "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'; "
    "img-src 'self' data:"
)
SECURITY_HEADERS: List[Tuple[str, str]] = [
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
]
CONTENT_TYPES: Dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".map": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".webp": "image/webp",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".txt": "text/plain; charset=utf-8",
    ".webmanifest": "application/manifest+json",
}
LOOPBACK_HOSTS = ("localhost", "localhost.")


def content_type(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    return CONTENT_TYPES.get(ext, "application/octet-stream")


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host.lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host(value: str) -> str:
    """Host header -> host without port ("[::1]:80" -> "::1")."""
    value = value.strip()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


# ---------------------------------------------------------------------------------------------- server


class GuiHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: Tuple[str, int], service: Any, tls: Optional[ssl.SSLContext]) -> None:
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.service = service
        self.tls = tls
        self._active = 0
        self._count_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stopping = False
        self._stopped = threading.Event()
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
            try:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:
                pass
        super().server_bind()
        self.socket.set_inheritable(False)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    # ---------------------------------------------------------------- accept loop

    def serve(self) -> None:
        """Accept until `stop()`; each connection gets its own thread."""
        sel = selectors.DefaultSelector()
        sel.register(self.socket, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stopping:
                for key, _ in sel.select():
                    if key.fd == self._wake_r or self._stopping:
                        return
                    self._accept_one()
        except Exception:
            log.exception("the GUI server's accept loop failed")
        finally:
            sel.close()
            self._stopped.set()

    def _accept_one(self) -> None:
        try:
            request, client_address = self.get_request()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                log.error("GUI: cannot accept a connection: %s", exc.strerror)
            return
        try:
            self.process_request(request, client_address)
        except Exception:
            log.exception("GUI: cannot start a connection thread")
            self.shutdown_request(request)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._count_lock:
            if self._active >= MAX_CONNECTIONS:
                self.shutdown_request(request)
                return
            self._active += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            with self._count_lock:
                self._active -= 1
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._count_lock:
                self._active -= 1

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:
            try:
                request.settimeout(TLS_HANDSHAKE_TIMEOUT)
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                log.debug("GUI: TLS handshake with %s failed: %s", client_address[0], exc)
                return
        self.RequestHandlerClass(request, client_address, self)  # type: ignore[arg-type]

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("GUI: connection from %s ended with an error", client_address[0], exc_info=True)

    def stop(self) -> None:
        self._stopping = True
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass
        self._stopped.wait(5.0)
        self.server_close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


# ---------------------------------------------------------------------------------------------- handler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "apm"
    sys_version = ""
    timeout = READ_TIMEOUT
    server: GuiHTTPServer

    # ---------------------------------------------------------------- plumbing

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass  # access lines go through log_request (no query strings, no headers)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        method = getattr(self, "command", "-")
        path = urlsplit(getattr(self, "path", "") or "").path
        log.debug("GUI %s %s %s %s", self.client_address[0], method, path[:200], code)

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """Errors found by http.server itself (bad request line, headers too long...): JSON too."""
        self.close_connection = True
        err = UsageError(f"{code} {message or self.responses.get(code, ('',))[0]}")
        err.http_status = code
        try:
            self._send(Response.json(error_body(err), status=code))
        except OSError:
            pass

    def end_headers_with(self, headers: List[Tuple[str, str]]) -> None:
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def _send(self, resp: Response, cookies: Optional[List[str]] = None) -> None:
        self.send_response(resp.status)
        headers = list(resp.headers)
        if resp.status != 304:
            headers.append(("Content-Type", resp.content_type))
            headers.append(("Content-Length", str(len(resp.body))))
        if not any(h[0] == "Cache-Control" for h in headers):
            headers.append(("Cache-Control", "no-store"))
        for cookie in cookies or []:
            headers.append(("Set-Cookie", cookie))
        if self.close_connection:
            headers.append(("Connection", "close"))
        self.end_headers_with(headers)
        if self.command != "HEAD" and resp.status not in (204, 304):
            self.wfile.write(resp.body)

    def _send_error(self, err: ApmError) -> None:
        headers: List[Tuple[str, str]] = []
        if isinstance(err, TooManyRequests):
            headers.append(("Retry-After", str(err.retry_after)))
        if isinstance(err, MethodNotAllowed):
            headers.append(("Allow", err.allowed))
        self._send(Response.json(error_body(err), status=err.http_status, headers=headers))

    # used by Streamed responses ------------------------------------------------

    def begin_stream(self, status: int, ctype: str, headers: List[Tuple[str, str]], length: Optional[int]) -> None:
        self.send_response(status)
        extra = list(headers) + [("Content-Type", ctype), ("Cache-Control", "no-store")]
        if length is not None:
            extra.append(("Content-Length", str(length)))
        else:
            self.close_connection = True
            extra.append(("Connection", "close"))
        self.end_headers_with(extra)

    def stream_timeout(self) -> None:
        self.connection.settimeout(STREAM_WRITE_TIMEOUT)

    def write_flush(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    # ---------------------------------------------------------------- dispatch

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        # No CORS, ever: a preflight gets a plain 405 without Access-Control-* headers.
        self._dispatch()

    def _dispatch(self) -> None:
        service = self.server.service
        try:
            raw = self._read_body()
        except ApmError as err:
            self.close_connection = True
            if isinstance(err, PayloadTooLarge):
                self._discard_body()
            self._send_error(err)
            return
        path = urlsplit(self.path).path or "/"
        try:
            service.check_host(self.headers.get("Host", ""))
            if path == "/api" or path.startswith("/api/"):
                self._api(path, raw)
            elif self.command in ("GET", "HEAD"):
                self._static(path)
            else:
                raise MethodNotAllowed(f"{self.command} is not allowed on {path}", "GET, HEAD")
        except ApmError as err:
            self._send_error(err)
        except (BrokenPipeError, ConnectionResetError, socket.timeout, ssl.SSLError):
            self.close_connection = True
        except Exception:
            log.exception("GUI: internal error on %s %s", self.command, path[:200])
            self.close_connection = True
            try:
                self._send_error(ApmError("internal error in the GUI server", hint="the daemon log has the details"))
            except OSError:
                pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise UsageError("chunked request bodies are not supported", hint="send a Content-Length")
        length = check_length(self.headers.get("Content-Length"))
        return self.rfile.read(length) if length else b""

    def _discard_body(self) -> None:
        """Read (and drop) a too-large body up to DISCARD_MAX, so the client gets to read our 413."""
        try:
            left = min(int(self.headers.get("Content-Length") or 0), DISCARD_MAX)
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        except (OSError, ValueError):
            pass

    def _api(self, path: str, raw: bytes) -> None:
        service = self.server.service
        route, params = routes.match(self.command, path)
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        ctype = self.headers.get("Content-Type", "")
        call = Call(
            service,
            self.command,
            path,
            params,
            query,
            self.headers,  # type: ignore[arg-type]
            self.client_address[0],
            lambda: parse_json_body(raw, ctype),
        )
        service.guard(call, route)
        result = route.handler(call)
        if isinstance(result, Streamed):
            self.close_connection = True  # whatever happens, nothing else goes on this connection
            try:
                result.run(self)
            except (OSError, ssl.SSLError):
                pass  # the client went away
            except Exception:
                log.exception("GUI: streaming %s failed", path[:200])
            return
        resp = result if isinstance(result, Response) else Response.json(result)
        self._send(resp, call.set_cookies)

    def _static(self, path: str) -> None:
        assets = self.server.service.assets
        rel = unquote(path).lstrip("/")
        if any(part in ("..", ".") for part in rel.replace("\\", "/").split("/")) or "\0" in rel:
            raise NotFound(f"no file {path[:100]!r}", hint="the GUI's files are served from /")
        hashed = assets.prefixed(rel)  # /a/<tag>/<file>: this build's files, cacheable forever
        if hashed is not None:
            data, etag = assets.get(hashed)
            self._send_static(hashed, data, etag, IMMUTABLE)
            return
        if rel == "" or rel.endswith("/"):
            rel += "index.html"
        try:
            data, etag = assets.get(rel)
        except NotFound:
            last = rel.rsplit("/", 1)[-1]
            if "." in last:
                raise
            rel = "index.html"  # a client-side route: the page decides
            data, etag = assets.get(rel)
        self._send_static(rel, data, etag, REVALIDATE)

    def _send_static(self, rel: str, data: bytes, etag: str, cache: str) -> None:
        headers = [("ETag", etag), ("Cache-Control", cache)]
        if self.headers.get("If-None-Match") == etag:
            self._send(Response(304, b"", content_type(rel), headers))
            return
        self._send(Response(200, data, content_type(rel), headers))


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    from alter.errors import ConfigError

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"GUI TLS: {exc.filename or cert} does not exist", hint="check gui_tls_cert and gui_tls_key"
        ) from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"GUI TLS: cannot load the certificate {cert!r} with the key {key!r}: {exc}",
            hint="gui_tls_cert must be a PEM certificate (chain) and gui_tls_key its PEM private key",
        ) from None
    return ctx


__all__ = ["JSON_TYPE", "GuiHTTPServer", "Handler", "PayloadTooLarge", "is_loopback", "json_bytes", "tls_context"]

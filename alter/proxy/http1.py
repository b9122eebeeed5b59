"""HTTP/1.1 message heads and the chunked codec, strict enough to refuse smuggling.

The proxy never buffers bodies: it parses a head, rewrites it, then streams the
body through while *counting* it (`Content-Length`) or *scanning* it
(`ChunkedScanner`), so it always knows where one message ends and the next
begins on a keep-alive connection.

Request heads are refused (`HttpError`, status in `.status`) when any of these
holds -- each one is a known request-smuggling or desync vector:

* a request line that is not `METHOD SP target SP HTTP/x.y CRLF` (400), an
  HTTP version other than 1.0/1.1 (505), a target with bytes outside 0x21-0x7e
  (400), a target longer than MAX_LINE (414);
* a bare LF, a header name that is not a token, whitespace before the colon,
  obs-fold (a line starting with SP/HTAB), control characters in a value (400);
* Content-Length and Transfer-Encoding together, Content-Length twice (even
  with equal values) or as a list, a Content-Length that is not plain digits,
  Transfer-Encoding on HTTP/1.0 (400); any coding but a single `chunked` (501);
* no Host, or two Host headers, on HTTP/1.1 (400); `Expect` other than
  100-continue (417);
* more than MAX_HEADERS headers or a head over MAX_HEAD bytes (431).

Bodies are framed by Content-Length or by the chunked coding (chunked.py,
re-exported here).
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from alter.proxy.chunked import ChunkedScanner as ChunkedScanner  # re-exported
from alter.proxy.chunked import ChunkError as ChunkError
from alter.proxy.chunked import encode_chunk as encode_chunk
from alter.proxy.chunked import scan_chunked as scan_chunked

MAX_HEAD = 32 * 1024
MAX_LINE = 8 * 1024
MAX_HEADERS = 100

_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/(\d)\.(\d)\r\n")
STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-9]\d\d)(?:[ \t][^\r\n]*)?\r\n")
HEADER_BLOCK = re.compile(rb"(?:" + _TOKEN + rb":[\t \x21-\x7e\x80-\xff]*\r\n)*")
# The whole valid request head in one C call (request line + header lines); on a mismatch the slower
# checks below say exactly what is wrong.
REQUEST_HEAD = re.compile(
    rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/1\.([01])\r\n(?:" + _TOKEN + rb":[\t \x21-\x7e\x80-\xff]*\r\n)*"
)
# The common request head, for the fast path (fast.py), in one C call over the whole read: HTTP/1.1, an
# origin-form target, exactly one Host and no other header REQ_INTEREST picks out -- the heads
# parse_request returns from its common-case branch -- then the blank line.  Strictly narrower than
# REQUEST_HEAD (same token and value classes): anything it does not match goes through parse_request.
# Groups: method, target, Host value.
_INTEREST_NAMES = (  # REQ_INTEREST's names but host
    b"content-length", b"transfer-encoding", b"connection", b"upgrade", b"expect", b"x-forwarded-for",
    b"x-real-ip", b"x-forwarded-proto", b"forwarded", b"keep-alive", b"proxy-connection", b"te", b"http2-settings",
)  # fmt: skip


def _ci_trie(words: List[bytes]) -> bytes:
    """A regex matching any of `words` case-insensitively, as a trie of [xX] classes: sre skips a
    branch whose first class does not match without trying it, where (?i:a|b|...) tries every one."""
    first: Dict[bytes, List[bytes]] = {}
    for w in words:
        first.setdefault(w[:1], []).append(w[1:])
    alts = []
    for c, rests in sorted(first.items()):
        cls = b"[" + c.lower() + c.upper() + b"]" if c.isalpha() else re.escape(c)
        alts.append(cls + _ci_trie(rests) if rests != [b""] else cls)
    return alts[0] if len(alts) == 1 else b"(?:" + b"|".join(alts) + b")"


_PLAIN_LINE = (
    rb"(?!" + _ci_trie([n + b":" for n in _INTEREST_NAMES + (b"host",)]) + rb")" + _TOKEN
    + rb":[\t \x21-\x7e\x80-\xff]*\r\n"
)  # fmt: skip
FAST_HEAD = re.compile(
    rb"(" + _TOKEN + rb") (/[\x21-\x7e]*) HTTP/1\.1\r\n(?:" + _PLAIN_LINE + rb")*"
    rb"[Hh][Oo][Ss][Tt]:([\t \x21-\x7e\x80-\xff]*)\r\n(?:" + _PLAIN_LINE + rb")*\r\n"
)
BARE_LF = re.compile(rb"(?<!\r)\n")  # a bare LF anywhere (head not complete yet)
REQ_INTEREST = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection|upgrade|expect|host|x-forwarded-for|x-real-ip|"
    rb"x-forwarded-proto|forwarded|keep-alive|proxy-connection|te|http2-settings):[\t ]*([^\r]*)",
    re.I,
)
RESP_INTEREST = re.compile(rb"\r\n(content-length|transfer-encoding|connection|upgrade):[\t ]*([^\r]*)", re.I)
DIGITS = re.compile(rb"\d{1,18}")

HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade", b"http2-settings"))
FORWARDING = frozenset((b"x-forwarded-for", b"x-real-ip", b"x-forwarded-proto", b"forwarded"))
IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"))

REASONS = {
    100: "Continue",
    101: "Switching Protocols",
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    414: "URI Too Long",
    417: "Expectation Failed",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}


class HttpError(Exception):
    """A request the proxy answers itself with `status` (and then closes the connection)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def simple_response(status: int, body: str, close: bool = True, extra: str = "", head_only: bool = False) -> bytes:
    """A complete small response the proxy answers itself (errors, Vanguard blocks)."""
    data = body.encode("utf-8", "replace")
    if data and not data.endswith(b"\n"):
        data += b"\n"
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(data)}\r\n"
        f"{extra}{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n"
    ).encode("latin-1")
    return head if head_only else head + data


class Request:
    """A parsed request head.  Header values are bytes with surrounding whitespace removed.

    Defaults live on the class and a parse sets only what differs: a request is
    parsed per request, so this is on the hot path.
    """

    method: bytes = b""
    target: bytes = b""
    version: int = 1  # minor version: 0 or 1
    line_end: int = 0  # index just past the request line's CRLF
    end: int = 0  # index of the CRLFCRLF ending the head
    clen: int = 0  # body length (0 when chunked or no body)
    chunked: bool = False
    keep_alive: bool = True
    upgrade: bytes = b""  # lowercased Upgrade protocol when this is an upgrade request
    expect: bool = False
    host: Optional[bytes] = None
    xff: Optional[bytes] = None
    xrealip: Optional[bytes] = None
    xfproto: Optional[bytes] = None
    forwarded: Optional[bytes] = None
    rewrite: bool = False  # head carries hop-by-hop/forwarding headers that must be removed
    drop: List[bytes] = []  # extra header names listed in Connection (shared default: never mutated)


def parse_request(buf: bytes, end: int) -> Request:
    """Parse the head `buf[:end+4]` (end = index of CRLFCRLF).  Raises HttpError."""
    stop = end + 4
    if stop > MAX_HEAD:
        raise HttpError(431, f"request head is larger than {MAX_HEAD} bytes")
    m = REQUEST_HEAD.fullmatch(buf, 0, end + 2)
    if m is None:
        _diagnose(buf, end)
        raise HttpError(400, "malformed request head")
    method, target, minor = m.groups()
    line_end = m.end(3) + 2  # just past the request line's CRLF
    if line_end > MAX_LINE:
        raise HttpError(414, f"request line is longer than {MAX_LINE} bytes")
    # A header line takes at least 4 bytes ("a:" CRLF): a short head cannot hold too many.
    if stop - line_end > 4 * MAX_HEADERS and buf.count(b"\r\n", line_end, stop) - 1 > MAX_HEADERS:
        raise HttpError(431, f"more than {MAX_HEADERS} header fields")
    req = Request()
    req.method = method
    req.target = target
    req.line_end = line_end
    req.end = end
    if target[0] != 47:  # not "/"
        if target == b"*":
            if method != b"OPTIONS":
                raise HttpError(400, "request target * is only valid for OPTIONS")
        elif method != b"CONNECT" and not target[:8].lower().startswith((b"http://", b"https://")):
            raise HttpError(400, "malformed request target")
    items = REQ_INTEREST.findall(buf, line_end - 2, end + 2)
    if minor == b"1":
        if len(items) == 1 and items[0][0].lower() == b"host":  # the common case
            req.host = items[0][1].rstrip(b" \t")
            return req
    else:
        req.version = 0
        req.keep_alive = False
    _headers(req, items)
    return req


def _diagnose(buf: bytes, end: int) -> None:
    """Raise the precise HttpError for a head REQUEST_HEAD did not match (or return: generic 400)."""
    stop = end + 4
    if buf.count(b"\n", 0, stop) != buf.count(b"\r\n", 0, stop):
        raise HttpError(400, "bare LF in request head")
    m = REQUEST_LINE.match(buf)
    if m is None:
        line = buf[: buf.find(b"\r\n")]
        if len(line) > MAX_LINE:
            raise HttpError(414, f"request line is longer than {MAX_LINE} bytes")
        raise HttpError(400, "malformed request line")
    major, minor = m.group(3), m.group(4)
    if major != b"1" or minor not in (b"0", b"1"):
        raise HttpError(505, "HTTP version %s.%s is not supported" % (major.decode(), minor.decode()))  # noqa: UP031
    if HEADER_BLOCK.fullmatch(buf, m.end(), end + 2) is None:
        raise HttpError(
            400, "malformed header line (invalid name, whitespace before colon, obs-fold or control character)"
        )


def _headers(req: Request, items: List[Tuple[bytes, bytes]]) -> None:
    clen: Optional[bytes] = None
    te: Optional[bytes] = None
    keep_alive = req.keep_alive
    hosts = 0
    conn_upgrade = False
    upgrade = b""
    drop: List[bytes] = []
    for name, value in items:
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"content-length":
            if clen is not None:
                raise HttpError(400, "Content-Length appears more than once")
            if DIGITS.fullmatch(value) is None:
                raise HttpError(400, f"Content-Length {value.decode('latin-1')!r} is not a plain decimal number")
            clen = value
        elif name == b"transfer-encoding":
            if te is not None:
                raise HttpError(400, "Transfer-Encoding appears more than once")
            te = value.lower()
        elif name == b"host":
            hosts += 1
            req.host = value
        elif name == b"connection":
            req.rewrite = True
            for tok in value.lower().split(b","):
                tok = tok.strip(b" \t")
                if tok == b"close":
                    keep_alive = False
                elif tok == b"keep-alive":
                    keep_alive = True
                elif tok == b"upgrade":
                    conn_upgrade = True
                elif tok:
                    drop.append(tok)
        elif name == b"upgrade":
            req.rewrite = True
            upgrade = value.lower()
        elif name == b"expect":
            if value.lower() != b"100-continue":
                raise HttpError(417, f"Expect {value.decode('latin-1')!r} is not supported")
            req.expect = True
        elif name == b"x-forwarded-for":
            req.rewrite = True
            req.xff = value if req.xff is None else req.xff + b", " + value
        elif name == b"x-real-ip":
            req.rewrite = True
            req.xrealip = value
        elif name == b"x-forwarded-proto":
            req.rewrite = True
            req.xfproto = value
        elif name == b"forwarded":
            req.rewrite = True
            req.forwarded = value if req.forwarded is None else req.forwarded + b", " + value
        else:  # keep-alive, proxy-connection, te, http2-settings: hop-by-hop
            req.rewrite = True
    if drop:
        req.drop = drop
    # An upgrade needs both `Connection: upgrade` and an `Upgrade` value.
    if conn_upgrade and upgrade:
        req.upgrade = upgrade
    if te is not None:
        if req.version == 0:
            raise HttpError(400, "Transfer-Encoding is not allowed in HTTP/1.0")
        if clen is not None:
            raise HttpError(400, "both Content-Length and Transfer-Encoding are present")
        if te != b"chunked":
            if b"chunked" in [c.strip(b" \t") for c in te.split(b",")]:
                raise HttpError(400, f"Transfer-Encoding {te.decode('latin-1')!r}: chunked must be the only coding")
            raise HttpError(501, f"Transfer-Encoding {te.decode('latin-1')!r} is not supported")
        req.chunked = True
    elif clen is not None:
        req.clen = int(clen)
    if req.version == 1 and hosts != 1:
        raise HttpError(
            400, "HTTP/1.1 request needs exactly one Host header" if hosts == 0 else "Host appears more than once"
        )
    req.keep_alive = keep_alive


class Response:
    """A parsed response head (from an upstream); class defaults, like Request."""

    status: int = 0
    version: int = 1
    clen: int = -1  # -1: no Content-Length
    chunked: bool = False
    close: bool = False  # the upstream will close (or must be closed) after this response
    body: bool = True  # False for HEAD answers, 1xx, 204, 304
    drop: List[bytes] = []
    upgrade: bool = False


class BadResponse(ValueError):
    """An upstream sent a head the proxy cannot relay safely (answer 502)."""


_CANON = {
    b"Content-Length": b"content-length",
    b"Transfer-Encoding": b"transfer-encoding",
    b"Connection": b"connection",
}


def parse_response(buf: bytes, end: int, head_request: bool) -> Response:
    """Parse an upstream's head.  Lenient where only the upstream's own framing is at stake, strict
    on what could desync the proxy or a client: bare CR/LF, conflicting lengths."""
    stop = end + 4
    if stop > MAX_HEAD:
        raise BadResponse(f"response head is larger than {MAX_HEAD} bytes")
    crlf = buf.count(b"\r\n", 0, stop)
    if buf.count(b"\n", 0, stop) != crlf or buf.count(b"\r", 0, stop) != crlf:
        raise BadResponse("bare CR or LF in response head")
    m = STATUS_LINE.match(buf)
    if m is None:
        raise BadResponse("malformed status line")
    resp = Response()
    status = resp.status = int(m.group(2))
    keep_alive = m.group(1) == b"1"
    if not keep_alive:
        resp.version = 0
    clen: Optional[bytes] = None
    te: Optional[bytes] = None
    drop: List[bytes] = []
    for name, value in RESP_INTEREST.findall(buf, m.end() - 2, end + 2):
        name = _CANON.get(name) or name.lower()
        value = value.rstrip(b" \t")
        if name == b"content-length":
            if DIGITS.fullmatch(value) is None or (clen is not None and clen != value):
                raise BadResponse("invalid or conflicting Content-Length")
            clen = value
        elif name == b"transfer-encoding":
            te = value.lower() if te is None else te + b"," + value.lower()
        elif name == b"connection":
            if value == b"keep-alive" or value == b"Keep-Alive":
                keep_alive = True
                continue
            value = value.lower()
            if value == b"keep-alive":
                keep_alive = True
                continue
            for tok in value.split(b","):
                tok = tok.strip(b" \t")
                if tok == b"close":
                    keep_alive = False
                elif tok == b"keep-alive":
                    keep_alive = True
                elif tok and tok != b"upgrade":
                    drop.append(tok)
        elif name == b"upgrade":
            resp.upgrade = True
    if drop:
        resp.drop = drop
    if status < 200 or status == 204 or status == 304 or head_request:
        resp.body = False
    elif te is not None:
        if clen is not None:
            raise BadResponse("both Content-Length and Transfer-Encoding are present")
        codings = [c.strip(b" \t") for c in te.split(b",")]
        if codings[-1] == b"chunked":
            if codings.count(b"chunked") != 1:
                raise BadResponse("chunked applied more than once")
            resp.chunked = True
        else:
            keep_alive = False  # close-delimited
    elif clen is not None:
        resp.clen = int(clen)
    else:
        keep_alive = False  # body ends when the upstream closes
    if not keep_alive:
        resp.close = True
    return resp


# Response head rewriting: drop hop-by-hop headers (and any the Connection header names).
RESP_HOP = re.compile(rb"\r\n(?:connection|keep-alive|proxy-connection|te|upgrade):[^\r]*", re.I)
_REQ_HOP = re.compile(
    rb"\r\n(?:connection|keep-alive|proxy-connection|te|upgrade|http2-settings|x-forwarded-for|x-real-ip|"
    rb"x-forwarded-proto|forwarded):[^\r]*",
    re.I,
)


def strip_headers(head: bytes, names: List[bytes], base: re.Pattern[bytes]) -> bytes:
    """Remove header lines: `base` (a compiled hop-by-hop pattern) plus any extra `names`."""
    head = base.sub(b"", head)
    if names:
        rx = re.compile(b"\\r\\n(?:" + b"|".join(re.escape(n) for n in names) + b"):[^\\r]*", re.I)
        head = rx.sub(b"", head)
    return head


def strip_response_hop(head: bytes, extra: List[bytes]) -> bytes:
    return strip_headers(head, extra, RESP_HOP)


def strip_request_hop(head: bytes, extra: List[bytes]) -> bytes:
    return strip_headers(head, extra, _REQ_HOP)


_NAME_LINE = re.compile(rb"(\r\n[^:\r]+:)")


def lowercase_names(head: bytes) -> bytes:
    parts = _NAME_LINE.split(head)  # text, CRLF name colon, text, ...: no Python callback per header
    parts[1::2] = [p.lower() for p in parts[1::2]]
    return b"".join(parts)


def header_pattern(name: str) -> re.Pattern[bytes]:
    return re.compile(b"\\r\\n" + re.escape(name.encode("latin-1")) + b":[^\\r]*", re.I)

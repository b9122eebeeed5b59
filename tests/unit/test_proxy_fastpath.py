"""The fast path (alter/proxy/fast.py) against the general path: byte-identical on a table of exchanges.

Each case runs the same client reads and upstream reads through two connections driven by fake sockets:
the real HttpConn (fast path first) and a subclass wired to the general path only.  Everything observable
must be equal: the bytes each upstream receives, the bytes the client receives, status counters, request
counts, pool contents, Vanguard counters and log lines, the connection's state.  Cases marked `fast`
must actually take the fast path on their second round (the first fills the response-head cache); the
others (smuggling attempts, bodies, pipelining, partial reads ...) must not take it at all.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Optional, Tuple

import pytest

from alter.proxy import http1
from alter.proxy.httpconn import HttpConn
from alter.proxy.reactor import IN, SMALL_READ
from alter.proxy.relay import Relay
from alter.proxy.site import Site
from alter.proxy.testing import FakeFds, FakeListener, FakeProc
from alter.proxy.upstream import UpstreamConn
from alter.proxy.vanguard import Rules, Vanguard

POOLED = 3  # idle connections per target (enough that no case opens a real socket)


class FakeSock:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.inbox: List[bytes] = []
        self.out = b""
        self.shut = False

    def fileno(self) -> int:
        return self.fd

    def recv(self, n: int, flags: int = 0) -> bytes:
        if flags:  # MSG_PEEK on an idle pooled connection: still open
            raise BlockingIOError
        if self.inbox:
            data = self.inbox.pop(0)
            if len(data) > n:  # like a socket: at most n bytes, the rest stays queued
                self.inbox.insert(0, data[n:])
                data = data[:n]
            return data
        raise BlockingIOError

    def send(self, data: bytes) -> int:
        self.out += data
        return len(data)

    def shutdown(self, how: int) -> None:
        self.shut = True

    def close(self) -> None:
        pass


CALLS: List[str] = []


class Fast(HttpConn):
    """HttpConn as shipped; records when the general path's entry points run."""

    __slots__ = ()

    def process(self) -> None:
        CALLS.append("process")
        super().process()

    def resp_head(self, data: bytes) -> None:
        CALLS.append("resp_head")
        super().resp_head(data)


class General(HttpConn):
    """The general path only: the handlers the fast path falls back to."""

    __slots__ = ()
    on_event = HttpConn.event
    up_readable = Relay.up_readable


def exchange(cls: type, reads: List[bytes], responses: List[bytes], options: Dict[str, Any],
             vanguard: Optional[Dict[str, Any]], rounds: int) -> Dict[str, Any]:  # fmt: skip
    proc = FakeProc()
    site = Site(proc, "api")  # type: ignore[arg-type]
    site.apply_options(options)
    if vanguard:
        site.vanguard = Vanguard("api", Rules(vanguard))
    site.balancer.update([{"index": 0, "host": "127.0.0.1", "port": 1}, {"index": 1, "host": "127.0.0.1", "port": 2}])
    ups: List[UpstreamConn] = []
    for target in site.balancer.live:
        for _ in range(POOLED):
            up = UpstreamConn.__new__(UpstreamConn)
            up.reactor, up.target, up.owner, up.out, up.reused = proc.reactor, target, None, b"", False
            up.closed = up.connecting = False
            up.rsize = SMALL_READ
            up.fd = 100 + len(ups)
            up.sock = FakeSock(up.fd)  # type: ignore[assignment]
            up.mask = IN
            up.idle_since = proc.reactor.now
            proc.reactor.add(up.fd, IN, up.on_event)
            target.idle.append(up)
            ups.append(up)
    client = FakeSock(10)
    lst = FakeListener(site)
    conn = cls(proc, lst, client, (4, 0x7F000001), "127.0.0.1")
    handlers = proc.reactor.handlers

    def deliver(sock: FakeSock, fd: int) -> None:
        """IN events while bytes wait and each read takes some, as level-triggered epoll would."""
        left = -1
        while sock.inbox and len(b"".join(sock.inbox)) != left and fd in handlers:
            left = len(b"".join(sock.inbox))
            handlers[fd](IN)

    with FakeFds(client, *[u.sock for u in ups]):  # the fast path reads and writes by fd
        for _ in range(rounds):
            for data in reads:
                client.inbox.append(data)
                deliver(client, 10)
            for data in responses:
                up = conn.up
                if up is None:
                    break
                up.sock.inbox.append(data)
                deliver(up.sock, up.fd)  # type: ignore[arg-type]
            proc.reactor.now += 0.01
    vg = site.vanguard
    return {
        "client": client.out,
        "shut": client.shut,
        "upstreams": [u.sock.out for u in ups],
        "closed": [u.closed for u in ups],
        "idle": [[u.fd for u in t.idle] for t in site.balancer.live],
        "targets": [(t.requests, t.inflight, t.failures) for t in site.balancer.live],
        "status": dict(site.status),
        "requests": site.requests,
        "upstream_errors": site.upstream_errors,
        "state": conn.state,
        "ka": conn.ka,
        "cbuf": conn.cbuf,
        "deadline": conn.deadline - proc.reactor.now,
        "conn_closed": lst.closed,
        "vanguard": dict(vg.counters) if vg is not None else None,
        "logs": proc.logs,
    }


GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
NODE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Sat, 21 Nov 2026 16:45:49 GMT\r\n"
    b"Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"c\r\nhello world\n\r\n0\r\n\r\n"
)
CL = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n"
TRACE = {"trace_header": "x-request-id", "lowercase_hdrs": True}
BAN = {"ban_path": ["*.php", "/.git*"], "ban_method": ["TRACE"]}


def h(*lines: str, body: bytes = b"") -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# (id, client reads per round, upstream reads per round, options, vanguard, fast)
# fast: True = rounds 2 and 3 take the fast path end to end, False = the general path runs, None = no claim
CASES: List[Tuple[str, List[bytes], List[bytes], Dict[str, Any], Optional[Dict[str, Any]], Optional[bool]]] = [
    ("node-chunked", [GET], [NODE], {}, None, True),
    ("content-length", [GET], [CL], {}, None, True),
    (
        "odd-names",
        [h("DELETE /a/b?c=1&d HTTP/1.1", "hOsT:x.test ", "TEx: 1", "X-Real-Ipx: 2", "Hosts: 3")],
        [CL],
        {},
        None,
        True,
    ),
    ("no-content-204", [GET], [b"HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n"], {}, None, True),
    ("not-modified-304", [GET], [b"HTTP/1.1 304 Not Modified\r\nETag: 1\r\n\r\n"], {}, None, True),
    ("empty-cl", [GET], [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"], {}, None, True),
    (
        "multi-chunk",
        [GET],
        [h("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", body=b"1\r\na\r\n2\r\nbc\r\n0\r\n\r\n")],
        {},
        None,
        True,
    ),
    (
        "chunk-leading-zeros",
        [GET],
        [h("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", body=b"002\r\nbc\r\n0\r\n\r\n")],
        {},
        None,
        True,
    ),
    ("trace-lowercase", [GET], [NODE], TRACE, None, True),
    ("trace-replaces-client-id", [h("GET / HTTP/1.1", "Host: a", "X-Request-Id: evil")], [CL], TRACE, None, True),
    ("vanguard-pass", [GET], [CL], {}, BAN, True),
    ("vanguard-ban-path", [h("GET /x/../.git/config HTTP/1.1", "Host: a")], [CL], {}, BAN, True),
    ("vanguard-ban-method", [h("TRACE /x HTTP/1.1", "Host: a")], [CL], {}, BAN, True),
    ("upstream-extra-bytes", [GET], [CL + b"junk"], {}, None, True),  # relayed, the connection is not pooled
    (
        "upstream-says-close",
        [GET],
        [h("HTTP/1.1 200 OK", "Connection: close", "Content-Length: 2", body=b"ok")],
        {},
        None,
        True,
    ),
    ("keep-alive-0", [GET], [CL], {"keep_alive": 0}, None, None),
    # request side: never the fast path
    ("pipelined", [GET + GET], [CL, CL], {}, None, False),
    ("split-head", [GET[:20], GET[20:]], [CL], {}, None, False),
    ("leading-crlf", [b"\r\n" + GET], [CL], {}, None, False),
    ("post-body", [h("POST /f HTTP/1.1", "Host: a", "Content-Length: 3", body=b"abc")], [CL], {}, None, False),
    ("post-cl-0", [h("POST /f HTTP/1.1", "Host: a", "Content-Length: 0")], [CL], {}, None, False),
    (
        "chunked-body",
        [h("POST /f HTTP/1.1", "Host: a", "Transfer-Encoding: chunked", body=b"3\r\nabc\r\n0\r\n\r\n")],
        [CL],
        {},
        None,
        False,
    ),
    (
        "cl-and-te",
        [h("POST / HTTP/1.1", "Host: a", "Content-Length: 3", "Transfer-Encoding: chunked")],
        [CL],
        {},
        None,
        False,
    ),
    ("cl-twice", [h("GET / HTTP/1.1", "Host: a", "Content-Length: 0", "content-length: 0")], [CL], {}, None, False),
    ("cl-list", [h("GET / HTTP/1.1", "Host: a", "Content-Length: 0, 0")], [CL], {}, None, False),
    ("te-gzip", [h("GET / HTTP/1.1", "Host: a", "Transfer-Encoding: gzip")], [CL], {}, None, False),
    (
        "te-upper",
        [h("GET / HTTP/1.1", "Host: a", "TRANSFER-ENCODING: chunked", body=b"0\r\n\r\n")],
        [CL],
        {},
        None,
        False,
    ),
    ("host-twice", [h("GET / HTTP/1.1", "Host: a", "host: b")], [CL], {}, None, False),
    ("no-host", [h("GET / HTTP/1.1", "Accept: */*")], [CL], {}, None, False),
    ("obs-fold", [h("GET / HTTP/1.1", "Host: a", "X: 1", " folded")], [CL], {}, None, False),
    ("space-before-colon", [h("GET / HTTP/1.1", "Host : a")], [CL], {}, None, False),
    ("bare-lf", [b"GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n"], [CL], {}, None, False),
    ("bare-cr", [b"GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n"], [CL], {}, None, False),
    ("ctl-in-value", [h("GET / HTTP/1.1", "Host: a", "X: a\x01b")], [CL], {}, None, False),
    ("del-in-value", [h("GET / HTTP/1.1", "Host: a", "X: a\x7fb")], [CL], {}, None, False),
    ("bad-name", [h("GET / HTTP/1.1", "Host: a", "X(y): 1")], [CL], {}, None, False),
    ("target-space", [b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"], [CL], {}, None, False),
    ("http10", [h("GET / HTTP/1.0")], [CL], {}, None, False),
    ("http10-ka", [h("GET / HTTP/1.0", "Connection: keep-alive")], [NODE], {}, None, False),
    ("http12", [h("GET / HTTP/1.2", "Host: a")], [CL], {}, None, False),
    ("absolute-form", [h("GET http://a.test/x HTTP/1.1", "Host: a.test")], [CL], {}, None, False),
    ("options-star", [h("OPTIONS * HTTP/1.1", "Host: a")], [CL], {}, None, False),
    ("connect", [h("CONNECT / HTTP/1.1", "Host: a")], [CL], {}, None, False),
    ("xff", [h("GET / HTTP/1.1", "Host: a", "X-Forwarded-For: 203.0.113.7")], [CL], {}, None, False),
    ("x-real-ip", [h("GET / HTTP/1.1", "Host: a", "X-Real-IP: 203.0.113.7")], [CL], {}, None, False),
    (
        "forwarded",
        [h("GET / HTTP/1.1", "Host: a", "Forwarded: for=1.2.3.4", "X-Forwarded-Proto: https")],
        [CL],
        {},
        None,
        False,
    ),
    ("connection-close", [h("GET / HTTP/1.1", "Host: a", "Connection: close")], [CL], {}, None, False),
    (
        "hop-by-hop",
        [h("GET / HTTP/1.1", "Host: a", "Keep-Alive: 5", "TE: trailers", "Proxy-Connection: x")],
        [CL],
        {},
        None,
        False,
    ),
    ("expect", [h("GET / HTTP/1.1", "Host: a", "Expect: 100-continue")], [CL], {}, None, False),
    ("expect-bad", [h("GET / HTTP/1.1", "Host: a", "Expect: x")], [CL], {}, None, False),
    ("many-headers", [h("GET / HTTP/1.1", "Host: a", *[f"X-{i}: {i}" for i in range(101)])], [CL], {}, None, False),
    ("long-line", [h("GET /" + "a" * 9000 + " HTTP/1.1", "Host: a")], [CL], {}, None, False),
    ("big-head", [h("GET / HTTP/1.1", "Host: a", "Cookie: " + "c" * 20000)], [CL], {}, None, False),
    ("huge-head", [h("GET / HTTP/1.1", "Host: a", "Cookie: " + "c" * 40000)], [CL], {}, None, False),
    (
        "head-method",
        [h("HEAD / HTTP/1.1", "Host: a")],
        [b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"],
        {},
        None,
        False,
    ),
]
# response side: the request is fast, the response must go the general way (the request's own fast path
# still runs on every round)
RESPONSES: List[Tuple[str, List[bytes]]] = [
    ("split-response", [CL[:30], CL[30:]]),
    ("head-then-body", [CL[: CL.find(b"\r\n\r\n") + 4], b"hello world\n"]),
    ("body-short", [CL[:-3], CL[-3:]]),
    ("close-delimited", [b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody", b""]),
    ("interim-100", [b"HTTP/1.1 100 Continue\r\n\r\n" + CL]),
    ("chunk-ext", [h("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", body=b"2;x=1\r\nab\r\n0\r\n\r\n")]),
    ("chunk-trailer", [h("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", body=b"2\r\nab\r\n0\r\nT: 1\r\n\r\n")]),
    ("chunk-bad-size", [h("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", body=b"+2\r\nab\r\n0\r\n\r\n")]),
    ("chunk-wrong-length", [h("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", body=b"3\r\nab\r\n0\r\n\r\n")]),
    ("chunk-zero-first!", [h("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", body=b"0\r\n\r\n")]),
    ("cl-and-te", [h("HTTP/1.1 200 OK", "Content-Length: 2", "Transfer-Encoding: chunked", body=b"ok")]),
    ("bare-lf-response", [b"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok"]),
    ("http10-response!", [b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"]),
]
# (a name ending in "!": the fast path takes it all the same -- complete, known framing)
CASES += [(f"resp-{n.rstrip('!')}", [GET], reads, {}, None, n.endswith("!")) for n, reads in RESPONSES]


@pytest.mark.parametrize("name, reads, responses, options, vanguard, fast", CASES, ids=[c[0] for c in CASES])
def test_fast_and_general_paths_are_identical(
    name: str, reads: List[bytes], responses: List[bytes], options: Dict[str, Any], vanguard: Any, fast: Optional[bool]
) -> None:
    general = exchange(General, reads, responses, options, vanguard, rounds=3)
    CALLS.clear()
    first = exchange(Fast, reads, responses, options, vanguard, rounds=1)
    CALLS.clear()
    got = exchange(Fast, reads, responses, options, vanguard, rounds=3)
    assert got == general
    assert first["client"]  # every case answers something
    if fast:  # round 1 fills the response-head cache; rounds 2 and 3 are fast from end to end
        assert CALLS in ([], ["resp_head"]), CALLS
    elif fast is False:  # the general path ran again after round 1, or round 1 ended the connection
        assert CALLS not in ([], ["resp_head"]) or got["state"] in (5, 6), CALLS


def test_fast_path_forwarded_head_and_pool() -> None:
    """What the instance receives on the fast path, spelled out (not only "same as the general path")."""
    got = exchange(Fast, [GET], [NODE], {}, None, rounds=2)
    first, second = [out for out in got["upstreams"] if out]  # round-robin: one request per target
    want = (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\nX-Forwarded-For: 127.0.0.1"
        b"\r\nX-Real-IP: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nForwarded: for=127.0.0.1;proto=http\r\n\r\n"
    )
    assert first == second == want
    assert got["client"].count(b"HTTP/1.1 200 OK\r\n") == 2
    assert b"Keep-Alive" not in got["client"] and b"Connection" not in got["client"]
    assert got["status"] == {200: 2} and got["requests"] == 2
    assert got["idle"] == [[100, 101, 102], [103, 104, 105]]  # both connections back in their pools (LIFO)
    assert got["targets"] == [(1, 0, 0), (1, 0, 0)]


_NAMES = ["Host", "host", "HOST", "Hosts", "X", "Accept", "Content-Length", "content-length", "Transfer-Encoding",
          "TE", "te", "Tea", "Connection", "Upgrade", "Expect", "X-Forwarded-For", "X-Real-IP", "Forwarded",
          "Keep-Alive", "Proxy-Connection", "HTTP2-Settings", "X-Forwarded-Proto", "Bad Name", "", "A(b)"]  # fmt: skip
_VALUES = ["a", "", " 1 ", "0", "1, 2", "chunked", "close", "x\x01y", "\t", "a\rb", "a\nb", "\xe9"]


def test_fast_head_only_matches_what_parse_request_treats_as_the_common_case() -> None:
    """FAST_HEAD is strictly narrower than parse_request: whatever it matches parses to a plain request
    (one Host, nothing the proxy acts on), with the same method, target and Host."""
    rng = random.Random(7)
    matched = 0
    for _ in range(40000):
        lines = [rng.choice(["GET / HTTP/1.1", "GET /x?y HTTP/1.1", "get /a HTTP/1.0", "PUT * HTTP/1.1",
                             "DELETE http://a/ HTTP/1.1", "GET  / HTTP/1.1", "G@T / HTTP/1.1"])]  # fmt: skip
        for _ in range(rng.randint(0, 4)):
            lines.append(f"{rng.choice(_NAMES)}:{rng.choice(_VALUES)}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        m = http1.FAST_HEAD.fullmatch(raw)
        if m is None:
            continue
        matched += 1
        req = http1.parse_request(raw, len(raw) - 4)
        assert (req.method, req.target, req.host) == (m.group(1), m.group(2), m.group(3).strip(b" \t")), raw
        assert req.version == 1 and req.keep_alive and not req.rewrite and not req.chunked and not req.clen, raw
        assert req.xff is None and req.xrealip is None and not req.expect and not req.upgrade, raw
        assert req.line_end == m.end(2) + 11, raw
    assert matched > 100

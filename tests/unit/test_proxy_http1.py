"""HTTP/1.1 head parsing and the chunked codec (alter.proxy.http1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alter.proxy import http1
from alter.proxy.http1 import ChunkedScanner, ChunkError, HttpError, parse_request, parse_response, scan_chunked


def req(raw: bytes) -> http1.Request:
    end = raw.find(b"\r\n\r\n")
    assert end >= 0
    return parse_request(raw, end)


def status_of(raw: bytes) -> int:
    try:
        req(raw)
    except HttpError as exc:
        return exc.status
    return 200


def test_simple_get() -> None:
    r = req(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (r.method, r.target, r.version, r.host, r.keep_alive, r.clen, r.chunked) == (
        b"GET",
        b"/a?b=1",
        1,
        b"x",
        True,
        0,
        False,
    )
    assert not r.rewrite


def test_headers_and_framing() -> None:
    r = req(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\nConnection: close, X-Secret\r\n"
        b"X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\nExpect: 100-continue\r\n\r\n"
    )
    assert r.clen == 12 and not r.keep_alive and r.expect and r.rewrite
    assert r.drop == [b"x-secret"]
    assert r.xff == b"1.2.3.4, 5.6.7.8"


def test_chunked_and_upgrade() -> None:
    r = req(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n")
    assert r.chunked and r.clen == 0
    r = req(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n")
    assert r.upgrade == b"websocket"
    r = req(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")  # no Connection: upgrade
    assert r.upgrade == b""


def test_http10() -> None:
    r = req(b"GET / HTTP/1.0\r\n\r\n")
    assert r.version == 0 and not r.keep_alive and r.host is None
    r = req(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert r.keep_alive


@pytest.mark.parametrize(
    "raw, status",
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),  # CL + TE
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),  # duplicate CL
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n", 400),  # space before colon
        (b"GET / HTTP/1.1\r\nHost: x\r\n Transfer-Encoding: chunked\r\n\r\n", 400),  # obs-fold
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n\tb\r\n\r\n", 400),  # obs-fold
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: a\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),  # NUL in value
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400),  # bare CR
        (b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", 400),  # bare LF
        (b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505),
        (b"GET /  HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400),
        (b"G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET foo HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nExpect: something\r\n\r\n", 417),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 33000 + b"\r\n\r\n", 431),
        (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        (b"GET http://example.com/a HTTP/1.1\r\nHost: example.com\r\n\r\n", 200),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 007\r\n\r\n", 200),
    ],
)
def test_refused_heads(raw: bytes, status: int) -> None:
    assert status_of(raw) == status


def test_response_parse() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nabc"
    r = parse_response(raw, raw.find(b"\r\n\r\n"), False)
    assert (r.status, r.clen, r.chunked, r.close, r.body) == (200, 3, False, False, True)
    raw = b"HTTP/1.1 204 No Content\r\n\r\n"
    assert not parse_response(raw, raw.find(b"\r\n\r\n"), False).body
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
    assert not parse_response(raw, raw.find(b"\r\n\r\n"), True).body  # answer to HEAD
    raw = b"HTTP/1.1 200 OK\r\n\r\n"
    assert parse_response(raw, raw.find(b"\r\n\r\n"), False).close  # close-delimited
    raw = b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"
    assert parse_response(raw, raw.find(b"\r\n\r\n"), False).close
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    assert parse_response(raw, raw.find(b"\r\n\r\n"), False).chunked
    raw = b"HTTP/1.1 200 OK\r\nConnection: close, X-A\r\nContent-Length: 0\r\n\r\n"
    r = parse_response(raw, raw.find(b"\r\n\r\n"), False)
    assert r.close and r.drop == [b"x-a"]


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\nContent-Length: 3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\rContent-Length: 3\r\n\r\n",
        b"HTTX/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
    ],
)
def test_bad_responses(raw: bytes) -> None:
    with pytest.raises(http1.BadResponse):
        parse_response(raw, raw.find(b"\r\n\r\n"), False)


def test_strip_response_hop() -> None:
    head = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-A\r\nKeep-Alive: timeout=5\r\nX-A: 1\r\nX-B: 2"
    assert http1.strip_response_hop(head, [b"x-a"]) == b"HTTP/1.1 200 OK\r\nX-B: 2"


def test_strip_request_and_lowercase() -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Real-IP: 6.6.6.6\r\nTE: trailers\r\nFoo-Bar: 1"
    assert http1.strip_request_hop(head, []) == b"GET / HTTP/1.1\r\nHost: x\r\nFoo-Bar: 1"
    assert http1.lowercase_names(b"GET / HTTP/1.1\r\nFoo-Bar: A-B") == b"GET / HTTP/1.1\r\nfoo-bar: A-B"


def test_simple_response() -> None:
    raw = http1.simple_response(503, "nope")
    assert raw.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert raw.endswith(b"\r\n\r\nnope\n") and b"Content-Length: 5\r\n" in raw and b"Connection: close" in raw


# --------------------------------------------------------------------------- chunked

GOOD = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-T: 1\r\n\r\n"


def test_chunked_scanner_whole() -> None:
    s = ChunkedScanner(decode=True)
    assert s.feed(GOOD + b"NEXT") == len(GOOD)
    assert b"".join(s.out) == b"hello, world" and s.done


@given(st.lists(st.integers(min_value=1, max_value=len(GOOD) - 1), max_size=8))
@settings(max_examples=200, deadline=None)
def test_chunked_scanner_any_split(cuts: list) -> None:
    points = sorted(set(cuts))
    pieces = [GOOD[a:b] for a, b in zip([0, *points], [*points, len(GOOD)])]
    s = ChunkedScanner(decode=True)
    ends = [s.feed(p) for p in pieces]
    assert ends[:-1] == [-1] * (len(pieces) - 1) and ends[-1] == len(pieces[-1])
    assert b"".join(s.out) == b"hello, world"


@given(st.lists(st.binary(min_size=1, max_size=300), max_size=6), st.integers(min_value=1, max_value=50))
@settings(max_examples=100, deadline=None)
def test_chunked_roundtrip(chunks: list, step: int) -> None:
    wire = b"".join(http1.encode_chunk(c) for c in chunks) + b"0\r\n\r\n"
    s = ChunkedScanner(decode=True)
    end = -1
    for i in range(0, len(wire), step):
        end = s.feed(wire[i : i + step])
    assert end >= 0 and b"".join(s.out) == b"".join(chunks)
    assert scan_chunked(wire, 0) == len(wire)


@pytest.mark.parametrize(
    "wire",
    [
        b"5\r\nhelloXX0\r\n\r\n",  # data not followed by CRLF
        b"x\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",  # bare LF
        b"11111111111111111\r\n",  # 17 hex digits
        b"5\r\nhello\r\n0\r\nBad Trailer: x\r\n\r\n",
        b"5\r\nhello\r\n0\r\nX: y\n\r\n",
    ],
)
def test_chunked_errors(wire: bytes) -> None:
    with pytest.raises(ChunkError):
        ChunkedScanner().feed(wire)


def test_scan_chunked_fast_path_declines_unusual() -> None:
    assert scan_chunked(GOOD, 0) == -1  # extensions and trailers: the scanner decides
    assert scan_chunked(b"5\r\nhello\r\n0\r\n\r\n", 0) == 15
    assert scan_chunked(b"5\r\nhello\r\n", 0) == -1  # incomplete
    assert scan_chunked(b"5\r\nhelloXX0\r\n\r\n", 0) == -1

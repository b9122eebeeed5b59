"""The chunked transfer coding: scanned in place (never copied), strictly.

Chunk sizes must be 1-16 hex digits with nothing around them but an optional
`;extension`; a chunk's data must be followed by exactly CRLF; trailers must
be valid header lines.  Anything else is a `ChunkError` (400 on a request; on
a response the connection is dropped).
"""

from __future__ import annotations

import re
from typing import List

MAX_CHUNK_LINE = 4096
MAX_TRAILER = 16 * 1024

_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
HEADER_LINE = re.compile(_TOKEN + rb":[\t \x21-\x7e\x80-\xff]*\r\n")
CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[\t \x21-\x7e\x80-\xff]*)?\r\n")


class ChunkError(ValueError):
    """Malformed chunked framing."""


SIZE, DATA, DATA_CR, TRAILER, DONE = range(5)


class ChunkedScanner:
    """Tracks chunked framing over a byte stream without copying it.

    `feed(data, pos)` consumes `data[pos:]` and returns the index just past the
    end of the message (the last CRLF of the trailer section) or -1 when the
    whole input was consumed and the message continues.  With `decode=True`
    the chunk payloads are appended to `self.out` (used to de-chunk a response
    for an HTTP/1.0 client).
    """

    __slots__ = ("state", "remaining", "line", "trailer", "decode", "out")

    def __init__(self, decode: bool = False) -> None:
        self.state = SIZE
        self.remaining = 0
        self.line = b""
        self.trailer = 0
        self.decode = decode
        self.out: List[bytes] = []

    @property
    def done(self) -> bool:
        return self.state == DONE

    def feed(self, data: bytes, pos: int = 0) -> int:
        n = len(data)
        while pos < n:
            state = self.state
            if state == DATA:
                take = min(self.remaining, n - pos)
                if self.decode:
                    self.out.append(data[pos : pos + take])
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = DATA_CR
                    self.remaining = 2
                continue
            if state == DATA_CR:
                expected = b"\r\n"[2 - self.remaining :]
                got = data[pos : pos + self.remaining]
                if expected[: len(got)] != got:
                    raise ChunkError("chunk data is not followed by CRLF")
                pos += len(got)
                self.remaining -= len(got)
                if self.remaining == 0:
                    self.state = SIZE
                continue
            if state == DONE:
                return pos
            # SIZE or TRAILER: line oriented
            nl = data.find(b"\n", pos)
            if nl < 0:
                self.line += data[pos:]
                limit = MAX_CHUNK_LINE if state == SIZE else MAX_TRAILER
                if len(self.line) > limit:
                    raise ChunkError("chunk size line or trailer too long")
                return -1
            line = self.line + data[pos : nl + 1]
            self.line = b""
            pos = nl + 1
            if state == SIZE:
                m = CHUNK_SIZE.fullmatch(line)
                if m is None:
                    raise ChunkError(f"invalid chunk size line {line[:40]!r}")
                size = int(m.group(1), 16)
                if size == 0:
                    self.state = TRAILER
                else:
                    self.state = DATA
                    self.remaining = size
            else:
                self.trailer += len(line)
                if self.trailer > MAX_TRAILER:
                    raise ChunkError("trailer section too large")
                if line == b"\r\n":
                    self.state = DONE
                    return pos
                if HEADER_LINE.fullmatch(line) is None:
                    raise ChunkError("invalid trailer line")
        return -1 if self.state != DONE else pos


def encode_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


_FAST_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})\r\n")


def scan_chunked(data: bytes, pos: int) -> int:
    """Fast path: index just past a complete chunked body starting at `pos` that uses no chunk
    extensions and no trailers; -1 when incomplete or unusual (then ChunkedScanner decides)."""
    n = len(data)
    match = _FAST_SIZE.match
    while pos < n:
        m = match(data, pos)
        if m is None:
            return -1
        size = int(m.group(1), 16)
        pos = m.end()
        if not size:
            return pos + 2 if data[pos : pos + 2] == b"\r\n" else -1
        pos += size
        if data[pos : pos + 7] == b"\r\n0\r\n\r\n":  # CRLF, then the last chunk: done
            return pos + 7
        if data[pos : pos + 2] != b"\r\n":
            return -1
        pos += 2
    return -1

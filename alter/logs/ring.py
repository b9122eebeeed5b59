"""In-memory ring buffer of a worker's recent lines (live views, `apm log` replay).

Kept cheap: the ring stores whole *blocks* as they arrived (one entry per read
chunk, already split into whole lines by the assembler) and only splits them
into line dicts when someone reads.  It keeps at least the last `max_lines`
lines (default 5,000, all streams together), except that it never holds more
than about `max_bytes` (default 4 MiB) — with very long lines the byte cap wins.

`append_parts` takes a block in the pipeline's zero-copy form (`lead + data[:end]`,
see `LineAssembler.take`) and keeps it that way until someone reads: the hot path
copies nothing for the ring.  A block that would pin much more of `data` than it
uses is copied right away, so memory stays within about twice `max_bytes`.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple, Union

RING_LINES = 5000
RING_BYTES = 4 * 1024 * 1024

Parts = Tuple[bytes, bytes, int]  # (lead, data, end): the block is lead + data[:end]
# (ts, stream, index, block of whole lines, line count, first line is a continuation)
Entry = Tuple[float, str, int, bytes, int, bool]
_Stored = Tuple[float, str, int, Union[bytes, Parts], int, bool, int]  # ... + the block's size


def join_parts(lead: bytes, data: bytes, end: int) -> bytes:
    """`lead + data[:end]` with one copy (none when `data` is the whole block)."""
    if not lead and end == len(data):
        return data
    return b"".join((lead, memoryview(data)[:end]))


def _entry(stored: _Stored) -> Entry:
    ts, stream, index, block, nlines, cont, _ = stored
    if isinstance(block, tuple):
        block = join_parts(*block)
    return ts, stream, index, block, nlines, cont


def line_dict(worker: str, ts: float, index: int, stream: str, text: str, cont: bool = False) -> Dict[str, Any]:
    d: Dict[str, Any] = {"ts": ts, "worker": worker, "index": index, "stream": stream, "text": text}
    if cont:
        d["cont"] = True
    return d


def block_dicts(worker: str, entry: Entry, last: Optional[int] = None) -> List[Dict[str, Any]]:
    """Split one entry into line dicts (only its `last` lines when given)."""
    ts, stream, index, block, nlines, cont = entry
    body = block[:-1] if block.endswith(b"\n") else block
    if last is not None and last < nlines:
        parts = body.rsplit(b"\n", last)[-last:] if last > 0 else []
        cont = False
    else:
        parts = body.split(b"\n")
    out = [line_dict(worker, ts, index, stream, p.decode("utf-8", "replace")) for p in parts]
    if cont and out:
        out[0]["cont"] = True
    return out


class LineRing:
    __slots__ = ("worker", "max_lines", "max_bytes", "_entries", "lines", "bytes")

    def __init__(self, worker: str, max_lines: int = RING_LINES, max_bytes: int = RING_BYTES) -> None:
        self.worker = worker
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._entries: Deque[_Stored] = deque()
        self.lines = 0
        self.bytes = 0

    def append(self, ts: float, stream: str, index: int, block: bytes, nlines: int, cont: bool = False) -> None:
        if len(block) > self.max_bytes:
            start = block.find(b"\n", len(block) - self.max_bytes) + 1
            block = block[start:]
            nlines = block.count(b"\n")
            cont = False
            if not block:
                return
        self._add((ts, stream, index, block, nlines, cont, len(block)))

    def append_parts(
        self, ts: float, stream: str, index: int, lead: bytes, data: bytes, end: int, nlines: int, cont: bool = False
    ) -> None:
        """Append the block `lead + data[:end]` (whole lines) without copying it when that is safe."""
        size = len(lead) + end
        if size > self.max_bytes or end < len(data) >> 1:
            self.append(ts, stream, index, join_parts(lead, data, end), nlines, cont)
        elif not lead and end == len(data):
            self._add((ts, stream, index, data, nlines, cont, size))
        else:
            self._add((ts, stream, index, (lead, data, end), nlines, cont, size))

    def _add(self, stored: _Stored) -> None:
        entries = self._entries
        entries.append(stored)
        self.lines += stored[4]
        self.bytes += stored[6]
        while len(entries) > 1 and (self.lines - entries[0][4] >= self.max_lines or self.bytes > self.max_bytes):
            old = entries.popleft()
            self.lines -= old[4]
            self.bytes -= old[6]

    def tail(self, n: int = 200, stream: Optional[str] = None, index: Optional[int] = None) -> List[Dict[str, Any]]:
        """The last `n` lines (oldest first), optionally of one stream and/or instance."""
        if n <= 0:
            return []
        chunks: List[List[Dict[str, Any]]] = []
        need = n
        for entry in reversed(self._entries):
            if stream is not None and entry[1] != stream:
                continue
            if index is not None and entry[2] != index:
                continue
            got = block_dicts(self.worker, _entry(entry), need if entry[4] > need else None)
            chunks.append(got)
            need -= len(got)
            if need <= 0:
                break
        out: List[Dict[str, Any]] = []
        for got in reversed(chunks):
            out.extend(got)
        return out[-n:]

    def clear(self) -> None:
        self._entries.clear()
        self.lines = 0
        self.bytes = 0

    def __len__(self) -> int:
        return self.lines

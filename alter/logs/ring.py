"""In-memory ring buffer of a worker's recent lines (live views, `apm log` replay).

Kept cheap: the ring stores whole *blocks* as they arrived (one entry per read
chunk, already split into whole lines by the assembler) and only splits them
into line dicts when someone reads.  It keeps at least the last `max_lines`
lines (default 5,000, all streams together), except that it never holds more
than about `max_bytes` (default 4 MiB) — with very long lines the byte cap wins.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

RING_LINES = 5000
RING_BYTES = 4 * 1024 * 1024

# (ts, stream, index, block of whole lines, line count, first line is a continuation)
Entry = Tuple[float, str, int, bytes, int, bool]


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
        self._entries: Deque[Entry] = deque()
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
        entries = self._entries
        entries.append((ts, stream, index, block, nlines, cont))
        self.lines += nlines
        self.bytes += len(block)
        while len(entries) > 1 and (self.lines - entries[0][4] >= self.max_lines or self.bytes > self.max_bytes):
            old = entries.popleft()
            self.lines -= old[4]
            self.bytes -= len(old[3])

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
            got = block_dicts(self.worker, entry, need if entry[4] > need else None)
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

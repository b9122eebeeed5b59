"""Line assembly across reads, without touching every line in Python.

`LineAssembler.feed(data)` returns *blocks*: byte strings made of whole lines,
each ending with b"\\n", plus a flag saying whether the block's FIRST line is
the continuation of a line that was too long.  The common case (lines shorter
than the limit) costs one `rfind`, at most one concatenation with the pending
partial line, and a stride check that looks at the block once per LINE_MAX
bytes — never once per line.

Long lines: a line longer than `limit` bytes (default LINE_MAX = 64 KiB,
newline not counted) is cut into pieces of at most `limit` bytes.  A cut never
splits a UTF-8 character when the text is valid UTF-8 (it backs off up to 3
bytes).  Every piece after the first is a *continuation* (flag True).  The
result does not depend on how the input was chunked.

`close()` returns the partial last line (with a b"\\n" added), if any.

`take(data)` is the zero-copy form of `feed` for the hot path: when the chunk
completes at least one line and no line involved is longer than the limit, it
returns `(lead, end, cont)` meaning "the whole lines are `lead + data[:end]`"
(`lead` is the pending partial line from earlier reads) without building that
block; otherwise it returns None and changes nothing (call `feed`).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

LINE_MAX = 64 * 1024

Block = Tuple[bytes, bool]  # (whole lines ending with b"\n", first line is a continuation)


def cut_point(data: bytes, limit: int) -> int:
    """Where to cut `data` (longer than `limit`) so a UTF-8 character stays whole."""
    cut = limit
    floor = max(1, limit - 3)
    while cut > floor and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    if (data[cut] & 0xC0) == 0x80:  # not valid UTF-8 here anyway: cut at the limit
        return limit
    return cut


class LineAssembler:
    __slots__ = ("limit", "_pending", "_cont")

    def __init__(self, limit: int = LINE_MAX) -> None:
        if limit < 4:
            raise ValueError("line limit must be at least 4 bytes")
        self.limit = limit
        self._pending = b""
        self._cont = False  # the pending bytes continue a line that was cut

    @property
    def pending(self) -> int:
        """Bytes held back waiting for their newline."""
        return len(self._pending)

    def feed(self, data: bytes) -> List[Block]:
        if not data:
            return []
        idx = data.rfind(b"\n")
        if idx < 0:
            self._pending += data
            if len(self._pending) > self.limit:
                return self._cut_pending()
            return []
        if self._pending:
            block = self._pending + data[: idx + 1]
        elif idx == len(data) - 1:
            block = data
        else:
            block = data[: idx + 1]
        self._pending = data[idx + 1 :]
        cont = self._cont
        self._cont = False
        if len(block) > self.limit + 1 and not self._all_short(block):
            out = self._split_long(block, cont)
        else:
            out = [(block, cont)]
        if len(self._pending) > self.limit:
            out.extend(self._cut_pending())
        return out

    def take(self, data: bytes) -> Optional[Tuple[bytes, int, bool]]:
        idx = data.rfind(b"\n")
        if idx < 0:
            return None
        limit = self.limit
        lead = self._pending
        if len(data) - idx - 1 > limit:  # the new partial line is already too long
            return None
        if idx > limit:  # a line may be too long: look once per `limit` bytes
            first = data.find(b"\n")
            if len(lead) + first > limit or not self._all_short(data, first + 1, idx + 1):
                return None
        elif len(lead) + idx > limit:  # (lead + data[:idx] holds every line: only the first can be long)
            if len(lead) + data.find(b"\n") > limit:
                return None
        self._pending = data[idx + 1 :]
        cont = self._cont
        self._cont = False
        return lead, idx + 1, cont

    def close(self) -> List[Block]:
        """End of stream: the partial last line, newline-terminated."""
        if not self._pending:
            return []
        block = (self._pending + b"\n", self._cont)
        self._pending = b""
        self._cont = False
        return [block]

    # ------------------------------------------------------------------ long lines

    def _all_short(self, block: bytes, pos: int = 0, n: int = -1) -> bool:
        """No line in `block[pos:n]` (whole lines) exceeds the limit: one rfind per `limit` bytes."""
        if n < 0:
            n = len(block)
        step = self.limit + 1
        while n - pos > step:
            last = block.rfind(b"\n", pos, pos + step)
            if last < 0:
                return False
            pos = last + 1
        return True

    def _pieces(self, line: bytes) -> Tuple[List[bytes], bytes]:
        """Cut `line` until the rest fits the limit; return (pieces, rest)."""
        pieces = []
        while len(line) > self.limit:
            cut = cut_point(line, self.limit)
            pieces.append(line[:cut] + b"\n")
            line = line[cut:]
        return pieces, line

    def _cut_pending(self) -> List[Block]:
        pieces, rest = self._pieces(self._pending)
        out: List[Block] = []
        for piece in pieces:
            out.append((piece, self._cont))
            self._cont = True
        self._pending = rest
        return out

    def _split_long(self, block: bytes, cont: bool) -> List[Block]:
        out: List[Block] = []
        pos = start = 0
        n, step = len(block), self.limit + 1
        while pos < n:
            last = block.rfind(b"\n", pos, pos + step)
            if last >= 0:  # every line between pos and last fits
                pos = last + 1
                continue
            # The line starting at `pos` is longer than the limit.
            if pos > start:
                out.append((block[start:pos], cont if start == 0 else False))
            end = block.find(b"\n", pos)
            pieces, rest = self._pieces(block[pos:end])
            first = cont if pos == 0 else False
            for piece in pieces:
                out.append((piece, first))
                first = True
            out.append((rest + b"\n", True))
            pos = start = end + 1
        if start < n:
            out.append((block[start:], cont if start == 0 else False))
        return out

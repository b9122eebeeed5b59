"""`apm grep` and `apm log` replay over log files: fast on big files.

`grep()` reads each file in large binary chunks (CHUNK = 4 MiB) and runs one
compiled MULTILINE bytes regex over the chunk; line boundaries are found only
around matches (`rfind`/`find` of b"\\n"), and line numbers by `bytes.count`.
Files are searched in the order given — `WorkerLog.files()` lists them oldest
first, so matches come out in time order.  One match per line (like grep);
`context` lines before/after each match (overlapping contexts are repeated).
`ignore_case` folds ASCII letters only (the regex runs on bytes).  With
`strip=True` the pattern runs on the text without ANSI escapes (what a reader
sees: `api | GET` matches although colours sit between the words) and lines
come back stripped; that costs one regex pass per chunk on coloured files.

`tail_files()` reads the last n lines across files by seeking from the end.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, Iterator, List, Optional, Pattern, Sequence, Union

from alter.errors import UsageError
from alter.logs.colors import strip_ansi

CHUNK = 4 * 1024 * 1024
TAIL_BLOCK = 64 * 1024
MAX_LINE = 1024 * 1024  # a "line" with no newline for this long is treated as ended (binary files)


def compile_pattern(pattern: Union[str, bytes], ignore_case: bool = False) -> Pattern[bytes]:
    raw = pattern.encode("utf-8") if isinstance(pattern, str) else pattern
    try:
        return re.compile(raw, re.MULTILINE | (re.IGNORECASE if ignore_case else 0))
    except re.error as exc:
        raise UsageError(
            f"invalid regular expression {pattern!r}: {exc}", hint="use Python regex syntax, e.g. 'ERROR|WARN'"
        ) from None


def _text(line: bytes) -> str:
    return line.rstrip(b"\r").decode("utf-8", "replace")


def _lines_before(buf: bytes, start: int, count: int) -> List[bytes]:
    """Up to `count` whole lines ending just before offset `start` (a line start)."""
    out: List[bytes] = []
    while len(out) < count and start > 0:
        nl = start - 1  # the newline ending the previous line
        prev = buf.rfind(b"\n", 0, nl) + 1
        out.append(buf[prev:nl])
        start = prev
    out.reverse()
    return out


def _lines_after(buf: bytes, end: int, count: int, eof: bool) -> tuple[List[bytes], bool]:
    """Up to `count` lines after the newline at `end`; (lines, all available?).

    At end of file an unterminated last line counts, and fewer lines is complete too.
    """
    out: List[bytes] = []
    pos = end + 1
    while len(out) < count and pos < len(buf):
        nl = buf.find(b"\n", pos)
        if nl < 0:
            if not eof:
                return out, False
            out.append(buf[pos:])
            break
        out.append(buf[pos:nl])
        pos = nl + 1
    return out, eof or len(out) == count


def _chunks(f: Any, size: int, strip: bool) -> Iterator[bytes]:
    """File content in big pieces; with `strip`, ANSI-stripped, cut at newlines (escapes never span one)."""
    tail = b""
    while True:
        data = f.read(size)
        if not data:
            if tail:
                yield strip_ansi(tail)
            return
        if not strip:
            yield data
            continue
        data = tail + data
        nl = data.rfind(b"\n")
        if nl < 0 and len(data) < MAX_LINE:
            tail = data
            continue
        cut = nl + 1 if nl >= 0 else len(data)
        tail = data[cut:]
        yield strip_ansi(data[:cut])


def grep_file(
    path: str,
    regex: Pattern[bytes],
    context: int = 0,
    max_matches: Optional[int] = None,
    chunk: int = CHUNK,
    strip: bool = False,
    fold: bool = False,
) -> Iterator[Dict[str, Any]]:
    """Matches in one file: {"file", "line_no" (1-based), "line", "before", "after"}.

    `fold`: run `regex` over an ASCII-lowercased copy of each chunk (the fast case-insensitive
    search for a literal pattern; lines are still reported as written).
    """
    found = 0
    try:
        f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the `with f:` below
    except OSError:
        return
    with f:
        pieces = _chunks(f, chunk, strip)
        buf = sbuf = b""
        ln_pos, ln_no = 0, 1  # line number of the line starting at buf[ln_pos] (counted incrementally)
        keep_from = 0  # offset in buf from which context must be kept
        search_at = 0
        eof = False
        while not eof or search_at < len(buf):
            if not eof:
                data = next(pieces, None)
                if data is None:
                    eof = True
                    data = b""
                # Drop what no later match can need, keep the rest (context and a partial line).
                if keep_from:
                    if keep_from >= ln_pos:
                        ln_no += buf.count(b"\n", ln_pos, keep_from)
                        ln_pos = 0
                    else:
                        ln_pos -= keep_from
                    buf = buf[keep_from:]
                    search_at -= keep_from
                    keep_from = 0
                buf += data
                sbuf = buf.lower() if fold else buf
            if eof:
                limit = len(buf)
            else:
                limit = buf.rfind(b"\n") + 1  # search whole lines only
                if limit <= search_at:
                    if len(buf) - search_at < MAX_LINE:
                        continue
                    limit = len(buf)
            deferred = False
            while search_at < limit:
                m = regex.search(sbuf, search_at, limit)
                if m is None or m.start() >= limit:
                    search_at = limit
                    break
                line_start = buf.rfind(b"\n", 0, m.start()) + 1
                line_end = buf.find(b"\n", m.start(), limit)
                if line_end < 0:
                    line_end = limit
                after: List[bytes] = []
                if context:
                    after, complete = _lines_after(buf, line_end, context, eof)
                    if not complete:
                        # The after-context is in the next chunk: resume at this line then.
                        search_at = line_start
                        deferred = True
                        break
                before = _lines_before(buf, line_start, context) if context else []
                ln_no += buf.count(b"\n", ln_pos, line_start)
                ln_pos = line_start
                yield {
                    "file": path,
                    "line_no": ln_no,
                    "line": _text(buf[line_start:line_end]),
                    "before": [_text(b) for b in before],
                    "after": [_text(a) for a in after],
                }
                found += 1
                if max_matches is not None and found >= max_matches:
                    return
                search_at = line_end + 1
            if eof and not deferred:
                break
            # Keep `context` lines before the next search position, forget the rest.
            start = min(search_at, len(buf))
            for _ in range(context):
                if start <= 0:
                    break
                start = buf.rfind(b"\n", 0, start - 1) + 1
            keep_from = start


def grep(
    files: Sequence[str],
    pattern: Union[str, bytes],
    ignore_case: bool = False,
    context: int = 0,
    max_matches: Optional[int] = 1000,
    strip: bool = False,
    chunk: int = CHUNK,
) -> Iterator[Dict[str, Any]]:
    """Matches across `files` in the order given (oldest first), at most `max_matches` (None: all).

    `chunk`: bytes read and searched at once (the daemon uses 1 MiB: one regex call on a chunk
    holds the GIL, and its event loop must stay responsive while a grep runs in a thread).

    `strip`: match (and return) the text without ANSI escapes, i.e. what a reader sees; slower
    on files full of colour (a regex pass per chunk), the same speed on files written with
    strip_ansi.  Without it the pattern runs on the raw bytes and lines come back as written.
    """
    raw = pattern.encode("utf-8") if isinstance(pattern, str) else pattern
    fold = ignore_case and not any(c in raw for c in b".^$*+?{}[]\\|()")
    # A literal searched case-insensitively: lowercase the text instead (sre has no fast
    # path for IGNORECASE), keeping the literal-prefix search at full speed.
    regex = re.compile(re.escape(raw.lower()), re.MULTILINE) if fold else compile_pattern(pattern, ignore_case)
    left = max_matches
    for path in files:
        for match in grep_file(path, regex, context, left, chunk=chunk, strip=strip, fold=fold):
            yield match
            if left is not None:
                left -= 1
                if left <= 0:
                    return


def _tail_one(path: str, n: int) -> List[bytes]:
    """The last `n` lines of one file (without newlines), reading backwards in blocks."""
    try:
        f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the `with f:` below
    except OSError:
        return []
    with f:
        size = os.fstat(f.fileno()).st_size
        pos = size
        data = b""
        while pos > 0:
            step = min(TAIL_BLOCK, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
            body = data[:-1] if data.endswith(b"\n") else data
            if body.count(b"\n") >= n:
                break
        if not data:
            return []
        body = data[:-1] if data.endswith(b"\n") else data
        lines = body.split(b"\n")
        if pos > 0:
            lines = lines[1:]  # the first piece may be a partial line
        return lines[-n:] if n else []


def tail_files(files: Sequence[str], n: int) -> List[str]:
    """The last `n` lines across `files` (oldest file first), oldest line first."""
    if n <= 0:
        return []
    out: List[bytes] = []
    for path in reversed(list(files)):
        need = n - len(out)
        if need <= 0:
            break
        out = _tail_one(path, need) + out
    return [_text(line) for line in out[-n:]]

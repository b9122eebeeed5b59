"""`apm grep` and `apm log` replay over log files: fast on big files.

The search itself is alter/grepcore.py (a stdlib-only leaf, so the CLI can search files it can
read without importing this package): a literal prefilter derived from the pattern, `readinto`
chunks, line boundaries and numbers only around hits, colour codes stripped only where they could
change the result.  Semantics: a line matches when the pattern matches in that line alone (like
grep); files are searched in the order given (`WorkerLog.files()`: oldest first); `context`
lines before/after each match (overlapping contexts are repeated); `ignore_case` folds ASCII
letters; with `strip=True` the pattern runs on the text without ANSI escapes and lines come
back stripped.

`tail_files()` reads the last n lines across files by seeking from the end.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Optional, Pattern, Sequence, Union

from alter import grepcore
from alter.grepcore import CHUNK, Matcher

TAIL_BLOCK = 64 * 1024


def compile_pattern(pattern: Union[str, bytes], ignore_case: bool = False) -> Pattern[bytes]:
    """The bytes regex of `pattern`; a UsageError quoting it when it is not valid."""
    return grepcore.compile_pattern(pattern, ignore_case)


def _text(line: bytes) -> str:
    return line.rstrip(b"\r").decode("utf-8", "replace")


def grep_file(
    path: str,
    matcher: Matcher,
    context: int = 0,
    max_matches: Optional[int] = None,
    chunk: int = CHUNK,
    heads: Optional[Sequence[bytes]] = None,
) -> Iterator[Dict[str, Any]]:
    """Matches in one file: {"file", "line_no" (1-based), "line", "before", "after"}."""
    for no, line, before, after in grepcore.search_file(path, matcher, context, max_matches, heads, chunk):
        yield {
            "file": path,
            "line_no": no,
            "line": grepcore.display(line, matcher.strip),
            "before": [grepcore.display(b, matcher.strip) for b in before],
            "after": [grepcore.display(a, matcher.strip) for a in after],
        }


def grep(
    files: Sequence[str],
    pattern: Union[str, bytes],
    ignore_case: bool = False,
    context: int = 0,
    max_matches: Optional[int] = 1000,
    strip: bool = False,
    chunk: int = CHUNK,
) -> Iterator[Dict[str, Any]]:
    """Matches across `files` in order, at most `max_matches` (None: all)."""
    matcher = Matcher(pattern, ignore_case, strip)
    left = max_matches
    for path in files:
        for match in grep_file(path, matcher, context, left, chunk=chunk):
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

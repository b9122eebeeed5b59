"""`apm log` replay: the last lines of a worker's log files, parsed back into line dicts.

The files are the history (they outlive daemon restarts; the ring buffer only
holds what this daemon saw).  `snapshot()` runs on the loop: it opens every
file of the worker and records its size, so the helper thread that reads them
later sees exactly the lines written before the live subscription started —
rotation meanwhile renames files but the open descriptors keep pointing at
the right content; nothing is read twice or missed.

`read_set()` (helper thread) walks one destination's files backwards from
those sizes, newest line first, parsing each line into
`(ts, stream, index, cont, head, text)`:

    <timestamp> <prefix>[#N] <marker> <text>          (docs/logs.md, "Line layout")

The marker (` | `, ` ! `, ` * `, ` + `, possibly wrapped in colour escapes) is
the first one on the line; before it, `#N` is the instance and the rest minus
the prefix is the timestamp, parsed back with the worker's `log_time_format`
(a regex built from its tokens; fields the format lacks come from the file's
modification time).  A line that does not parse keeps its neighbour's time.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Pattern, Set, Tuple

from alter.logs.colors import render, strip_ansi
from alter.logs.timefmt import parse as parse_time_format

BLOCK = 256 * 1024
MAX_LINE = 4 * 1024 * 1024  # a "line" with no newline for this long is cut (binary junk)
MAX_FILES = 256  # per destination: more files than this are not replayed (oldest dropped)
TS_EVERY = 32  # with `since`, check the time of every 32nd rejected line (files are in time order)

MARKER_RE = re.compile(rb" ((?:\x1b\[[0-9;]*m)*)([|!*+])((?:\x1b\[[0-9;]*m)*) ")
INDEX_RE = re.compile(r"#(\d+)$")
MARKERS = {b"|": "out", b"!": "err", b"*": "apm"}
ERR_COLOR = b"38;5;196"

# (ts, stream, index, cont, head, text); ts None = unknown (takes a neighbour's)
Parsed = Tuple[Optional[float], str, int, bool, bytes, bytes]
Line = Tuple[float, str, int, bool, bytes, bytes]  # a replayed line: its time is always known


class TimeParser:
    """`log_time_format` -> a parser of the rendered timestamps (seconds since the epoch)."""

    _FIELDS = {"Y": r"(\d{4})", "y": r"(\d{2})", "m": r"(\d{2})", "d": r"(\d{2})", "H": r"(\d{2})", "M": r"(\d{2})"}

    def __init__(self, fmt: str) -> None:
        pattern: List[str] = []
        self.fields: List[str] = []
        for kind, value in parse_time_format(fmt, color=False):
            if kind == "text":
                pattern.append(re.escape(value))
            elif kind == "usec":
                pattern.append(r"(\d{6})")
                self.fields.append("f")
            elif value == "T":
                pattern.append(r"(\d{2}):(\d{2}):(\d{2})")
                self.fields.extend(("H", "M", "S"))
            elif value == "S":
                pattern.append(r"(\d{2})")
                self.fields.append("S")
            elif value in self._FIELDS:
                pattern.append(self._FIELDS[value])
                self.fields.append(value)
            else:  # %a %b %j %z ...: skipped (their information comes from elsewhere or is lost)
                pattern.append(r"(.*?)")
                self.fields.append("")
        self.regex: Pattern[str] = re.compile("".join(pattern) + r"\s*")
        self.empty = not self.fields and not "".join(pattern)
        self.has_date = "d" in self.fields
        self.resolution = 1e-6 if "f" in self.fields else 1.0
        self._seconds: Dict[Tuple[int, ...], float] = {}

    def __call__(self, stamp: str, ref: float) -> Optional[float]:
        """Epoch seconds of a rendered stamp; `ref` (the file's mtime) fills date fields the format lacks."""
        if not self.fields:
            return None
        m = self.regex.fullmatch(stamp)
        if m is None:
            return None
        vals = {k: v for k, v in zip(self.fields, m.groups()) if k}
        if not self.has_date or not ("Y" in vals or "y" in vals):
            tm = time.localtime(ref)
            year, month, day = tm.tm_year, tm.tm_mon, tm.tm_mday
        else:
            year, month, day = 0, 1, 1
        try:
            if "Y" in vals:
                year = int(vals["Y"])
            elif "y" in vals:
                year = 2000 + int(vals["y"])
            month = int(vals.get("m", month))
            day = int(vals.get("d", day))
            key = (year, month, day, int(vals.get("H", 0)), int(vals.get("M", 0)), int(vals.get("S", 0)))
            base = self._seconds.get(key)
            if base is None:
                if len(self._seconds) > 4096:
                    self._seconds.clear()
                base = self._seconds[key] = time.mktime((*key, 0, 0, -1))
        except (ValueError, OverflowError):
            return None
        ts = base + int(vals["f"]) / 1e6 if "f" in vals else base
        if not self.has_date and ts > ref + 60:
            ts -= 86400  # a time-only format: the line is from the day before the file's last write
        return ts


class LineParser:
    """Parses written lines of one worker back into (ts, stream, index, cont, head, text)."""

    def __init__(self, name: str, prefix: Optional[str], time_format: str) -> None:
        self.prefix = render(prefix or name, color=False)
        self.time = TimeParser(time_format)

    def parse(self, line: bytes, ref: float) -> Parsed:
        m = MARKER_RE.search(line)
        if m is None:
            return None, "out", 0, False, b"", line
        marker = m.group(2)
        cont = marker == b"+"
        if cont:
            stream = "err" if ERR_COLOR in m.group(1) else "out"
        else:
            stream = MARKERS[marker]
        before = strip_ansi(line[: m.start()]).decode("utf-8", "replace")
        index = 0
        im = INDEX_RE.search(before)
        if im is not None:
            index = int(im.group(1))
            before = before[: im.start()]
        elif stream != "apm":
            index = 1  # a single-instance worker: its prefix carries no #N
        prefix = self.prefix
        if prefix and before.endswith(prefix) and (len(before) == len(prefix) or before[-len(prefix) - 1] == " "):
            stamp = before[: -len(prefix)]
        else:  # written under another name or prefix: the prefix is the last word
            stamp = before.rpartition(" ")[0]
        ts = self.time(stamp.strip(" "), ref) if stamp else None
        return ts, stream, index, cont, line[: m.end()], line[m.end() :]


class Source:
    """One destination (the `log` file, or a separate `err_log`) as opened on the loop."""

    __slots__ = ("path", "streams", "files")

    def __init__(self, path: str, streams: Set[str], files: List[Tuple[int, int, float]]) -> None:
        self.path = path
        self.streams = streams  # streams written there: {"out", "apm"}, {"err"} or all three
        self.files = files  # (fd, size, mtime) oldest first

    def close(self) -> None:
        for fd, _, _ in self.files:
            try:
                os.close(fd)
            except OSError:
                pass
        self.files = []


def snapshot(wl: Any) -> List[Source]:
    """Open every file of a WorkerLog (loop thread): what the replay will read, frozen now."""
    sources: List[Source] = []
    sets = wl.file_sets() if hasattr(wl, "file_sets") else []
    for path, files in sets:
        streams: Set[str] = set()
        if path == wl.out_path:
            streams |= {"out", "apm"}
        if path == wl.err_path:
            streams.add("err")
        opened: List[Tuple[int, int, float]] = []
        for name in files[-MAX_FILES:]:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                st = os.fstat(fd)
            except OSError:
                os.close(fd)
                continue
            opened.append((fd, st.st_size, st.st_mtime))
        sources.append(Source(path, streams, opened))
    return sources


def lines_backwards(fd: int, size: int) -> Iterator[bytes]:
    """The lines of the first `size` bytes of a file, last line first (without newlines)."""
    pos = size
    rest = b""
    first = True
    while pos > 0:
        step = min(BLOCK, pos)
        pos -= step
        data = os.pread(fd, step, pos) + rest
        parts = data.split(b"\n")
        rest = parts[0]
        tail = parts[1:]
        if first and tail and tail[-1] == b"":
            tail.pop()  # the newline ending the file
        first = False
        yield from reversed(tail)
        if len(rest) > MAX_LINE:
            yield rest
            rest = b""
    if rest:
        yield rest


def read_set(
    source: Source,
    parser: LineParser,
    want: Callable[[str, int], bool],
    n: int,
    since: Optional[float],
    cancelled: Callable[[], bool],
) -> Tuple[List[Line], Optional[float], bool]:
    """The last `n` wanted lines of one destination, oldest first.

    Returns (lines, time of the newest line in the files whatever its stream, any line at all?).
    """
    picked: List[Line] = []
    newest: Optional[float] = None
    seen = False
    checked = 0
    for fd, size, mtime in reversed(source.files):
        ts_next = mtime  # lines that do not parse take the time of the line after them
        for raw in lines_backwards(fd, size):
            if cancelled():
                return [], newest, seen
            ts, stream, index, cont, head, text = parser.parse(raw, mtime)
            if ts is None:
                ts = ts_next
            else:
                ts_next = ts
            if not seen:
                seen = True
                newest = ts
            if not want(stream, index):
                checked += 1
                if since is not None and checked % TS_EVERY == 0 and ts < since:
                    break
                continue
            if since is not None and ts < since:
                picked.reverse()
                return picked, newest, seen
            picked.append((ts, stream, index, cont, head, text))
            if len(picked) >= n:
                picked.reverse()
                return picked, newest, seen
        else:
            continue
        break  # `since` reached inside this file: older files are older still
    picked.reverse()
    return picked, newest, seen

"""`log_time_format`: strftime tokens + `%F` microseconds + `çN-` colours, precompiled.

The format is parsed once into literal text and tokens.  Everything that only
depends on the second (date, time, colours) is rendered once per second and
kept as byte pieces around the `%F` slots, so formatting a timestamp is one
`b"%06d" % usec` and one `bytes.join` — the per-chunk cost of the pipeline.

Tokens handled natively: %Y %y %m %d %H %M %S %T %F (microseconds, 6 digits)
and %% (a literal %).  Any other `%x` is passed to `time.strftime` for that
second (%a, %b, %j, %z, %Z ...); an unknown one stays as written.  Times are
local (the host's timezone).
"""

from __future__ import annotations

import time
from typing import Callable, List, Tuple

from alter.logs.colors import render

_NATIVE = {
    "Y": lambda tm: f"{tm.tm_year:04d}",
    "y": lambda tm: f"{tm.tm_year % 100:02d}",
    "m": lambda tm: f"{tm.tm_mon:02d}",
    "d": lambda tm: f"{tm.tm_mday:02d}",
    "H": lambda tm: f"{tm.tm_hour:02d}",
    "M": lambda tm: f"{tm.tm_min:02d}",
    "S": lambda tm: f"{tm.tm_sec:02d}",
    "T": lambda tm: f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}",
}

Token = Tuple[str, str]  # ("text", literal) | ("tok", letter) | ("usec", "")


def parse(fmt: str, color: bool = True) -> List[Token]:
    """Split a format into literal text (colours already rendered) and tokens."""
    fmt = render(fmt, color)
    tokens: List[Token] = []
    text: List[str] = []
    i, n = 0, len(fmt)
    while i < n:
        ch = fmt[i]
        if ch == "%" and i + 1 < n:
            nxt = fmt[i + 1]
            i += 2
            if nxt == "%":
                text.append("%")
                continue
            if text:
                tokens.append(("text", "".join(text)))
                text = []
            tokens.append(("usec", "") if nxt == "F" else ("tok", nxt))
            continue
        text.append(ch)
        i += 1
    if text:
        tokens.append(("text", "".join(text)))
    return tokens


def _strftime_token(letter: str, tm: time.struct_time) -> str:
    fn = _NATIVE.get(letter)
    if fn is not None:
        return fn(tm)
    try:
        out = time.strftime("%" + letter, tm)
    except (ValueError, UnicodeError):
        return "%" + letter
    return out if out else ("" if letter in "zZ" else "%" + letter)


class TimeFormat:
    """A compiled `log_time_format`; `format(ts)` returns the rendered bytes."""

    __slots__ = ("fmt", "color", "_tokens", "_localtime", "_sec", "_pieces", "_static", "_slots")

    def __init__(
        self, fmt: str, color: bool = True, localtime: Callable[[float], time.struct_time] = time.localtime
    ) -> None:
        self.fmt = fmt
        self.color = color
        self._tokens = parse(fmt, color)
        self._localtime = localtime
        self._slots = sum(1 for kind, _ in self._tokens if kind == "usec")
        self._sec = -1
        self._pieces: List[bytes] = []
        self._static = b""

    @property
    def empty(self) -> bool:
        return not self._tokens

    def _compile_second(self, sec: int) -> None:
        tm = self._localtime(sec)
        pieces: List[bytes] = []
        cur: List[str] = []
        for kind, value in self._tokens:
            if kind == "text":
                cur.append(value)
            elif kind == "tok":
                cur.append(_strftime_token(value, tm))
            else:
                pieces.append("".join(cur).encode("utf-8", "replace"))
                cur = []
        pieces.append("".join(cur).encode("utf-8", "replace"))
        self._pieces = pieces
        self._static = pieces[0] if len(pieces) == 1 else b""
        self._sec = sec

    def format(self, ts: float) -> bytes:
        sec = int(ts)
        if sec != self._sec:
            self._compile_second(sec)
        if not self._slots:
            return self._static
        usec = int((ts - sec) * 1_000_000 + 0.5)
        if usec > 999_999:
            usec = 999_999
        return (b"%06d" % usec).join(self._pieces)

    def format_text(self, ts: float) -> str:
        return self.format(ts).decode("utf-8", "replace")

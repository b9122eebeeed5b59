"""apm's `çN-` colour syntax and ANSI escape stripping.

The syntax (apm manual, "Color syntax"), `ç` being U+00E7:

    çN-           ESC[38;5;Nm            foreground N (0-255)
    çN,BG-        ESC[38;5;N;48;5;BGm    foreground N, background BG
    çN,BG,ATTR-   ESC[38;5;N;48;5;BG;ATTRm   ... plus one SGR attribute (1 bold, 2 dim, 4, 9 ...)
    çR-           ESC[0m                 reset

Anything that does not parse (`façade`, `ç300-`) is left as written.
`strip_ansi()` removes CSI (colours, cursor moves), OSC (titles, hyperlinks,
terminated by BEL or ST, or cut at the end of the line), DCS/SOS/PM/APC strings
and two-byte ESC sequences, from bytes, with one regex pass.
"""

from __future__ import annotations

import re
from typing import Match

_COLOR_RE = re.compile(r"ç(?:([Rr])|(\d{1,3})(?:,(\d{1,3}))?(?:,(\d{1,3}))?)-")

RESET = "\033[0m"

# ESC followed by: CSI params/intermediates/final | OSC ... (BEL | ST | end of line) |
# DCS/SOS/PM/APC ... ST | nF escapes | any other two-byte Fe/Fp/Fs escape.
_ANSI_PATTERN = (
    r"\x1b(?:"
    r"\[[0-?]*[ -/]*[@-~]?"
    r"|\][^\x07\x1b\n]*(?:\x07|\x1b\\)?"
    r"|[PX^_][^\x1b\n]*(?:\x1b\\)?"
    r"|[ -/]+[0-~]?"
    r"|[0-~]"
    r")?"
)
ANSI_BYTES_RE = re.compile(_ANSI_PATTERN.encode())
ANSI_TEXT_RE = re.compile(_ANSI_PATTERN)


def _sgr(m: Match[str]) -> str:
    if m.group(1):
        return RESET
    fg, bg, attr = m.group(2), m.group(3), m.group(4)
    if int(fg) > 255 or (bg is not None and int(bg) > 255):
        return m.group(0)
    code = f"\033[38;5;{int(fg)}"
    if bg is not None:
        code += f";48;5;{int(bg)}"
        if attr is not None:
            code += f";{int(attr)}"
    elif attr is not None:  # `çN,,A-` cannot happen: the regex needs BG before ATTR
        return m.group(0)
    return code + "m"


def _blank(m: Match[str]) -> str:
    rendered = _sgr(m)
    return m.group(0) if rendered == m.group(0) else ""


def render(text: str, color: bool = True) -> str:
    """Turn `çN-` escapes into ANSI SGR sequences (or drop them when `color` is False)."""
    if "ç" not in text:
        return text
    return _COLOR_RE.sub(_sgr if color else _blank, text)


def has_escapes(text: str) -> bool:
    """True when `text` holds at least one valid `çN-` / `çR-` escape."""
    return any(_sgr(m) != m.group(0) for m in _COLOR_RE.finditer(text))


# Plain colour sequences (SGR) only: by far the most common escapes (apm's own heads, coloured output).
_SGR_BYTES_RE = re.compile(rb"\x1b\[[0-9;]*m")


def strip_ansi(data: bytes) -> bytes:
    """Remove every ANSI escape sequence from a chunk of output.

    Fast path: `split` on plain SGR colour sequences and join (several times faster than `sub`
    on coloured files).  When no ESC is left, every escape was a complete SGR and the result is
    exactly what the full regex gives; otherwise the full regex runs on the original data.
    """
    if b"\x1b" not in data:
        return data
    fast = b"".join(_SGR_BYTES_RE.split(data))
    if b"\x1b" not in fast:
        return fast
    return ANSI_BYTES_RE.sub(b"", data)


def strip_ansi_text(text: str) -> str:
    if "\x1b" not in text:
        return text
    return ANSI_TEXT_RE.sub("", text)

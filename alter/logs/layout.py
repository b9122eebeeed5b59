"""The fixed part of a written log line: `<timestamp> <prefix> <marker> <text>`.

    2026-11-21 14:05:09.123456 api#2 | listening on :3000        stdout
    2026-11-21 14:05:09.123460 api#2 ! Error: ECONNREFUSED        stderr (red `!`)
    2026-11-21 14:05:09.200000 api#2 * started pid 4242           apm's own lines
    2026-11-21 14:05:09.300000 api#2 + ...rest of a >64 KiB line  continuation piece

The prefix is the worker name (or the `prefix` option, çN- colours allowed),
with `#N` appended for multi-instance workers (N = 1-based instance index).
A prefix without colour escapes is drawn in the instance's colour (PALETTE,
indexed by instance); a prefix with its own escapes keeps them and only `#N`
takes the instance colour.  With `strip_ansi` every colour is dropped.  With
an empty `log_time_format` the line starts at the prefix.

Only the part after the timestamp is built here, once per stream writer; the
timestamp comes from `TimeFormat` per read chunk.
"""

from __future__ import annotations

from typing import Optional, Tuple

from alter.logs.colors import has_escapes, render

PALETTE = (51, 82, 214, 165, 39, 208, 118, 213, 45, 220, 141, 121)
MARKERS = {"out": "|", "err": "!", "apm": "*"}
MARKER_COLORS = {"out": 244, "err": 196, "apm": 214}
CONT_MARKER = "+"


def instance_color(index: int) -> int:
    return PALETTE[(max(index, 1) - 1) % len(PALETTE)]


def prefix_source(worker: str, prefix: Optional[str], index: int, instances: int) -> str:
    """The prefix in çN- syntax (not rendered yet)."""
    base = prefix if prefix else worker
    color = instance_color(index)
    suffix = f"#{index}" if instances > 1 and index > 0 else ""
    if has_escapes(base):
        return base + (f"ç{color}-{suffix}çR-" if suffix else "")
    return f"ç{color}-{base}{suffix}çR-"


def tails(
    worker: str, prefix: Optional[str], index: int, instances: int, stream: str, timestamp: bool, color: bool
) -> Tuple[bytes, bytes]:
    """(tail, continuation tail): the bytes written after the timestamp, before the text."""
    lead = " " if timestamp else ""
    pre = prefix_source(worker, prefix, index, instances)
    mcolor = MARKER_COLORS.get(stream, 244)
    marker = MARKERS.get(stream, "|")
    normal = render(f"{lead}{pre} ç{mcolor}-{marker}çR- ", color)
    cont = render(f"{lead}{pre} ç{mcolor}-{CONT_MARKER}çR- ", color)
    return normal.encode("utf-8", "replace"), cont.encode("utf-8", "replace")

"""Names of rotated and dated log files, and listing them oldest first.

For a current file `out.log`:

    out.log.1 ... out.log.N            size rotations of today (1 = newest)
    out.log.2026-11-21                 what out.log held on 2026-11-21 (daily rollover)
    out.log.2026-11-21.1 ... .N        that day's size rotations (1 = newest of them)
    out.log.2026-11-21_2[.k]           a second archive for the same day (clock moved back,
                                       daemon restarted with an old file...), never overwritten

Oldest-to-newest order: dated groups by (date, _seq), inside a group `.N` down
to `.1` then the unnumbered file; then today's `out.log.N` ... `out.log.1`;
then `out.log` itself.
"""

from __future__ import annotations

import datetime
import os
import re
import time
from typing import List, NamedTuple, Optional, Pattern


class Archive(NamedTuple):
    path: str
    date: str  # "" for today's numbered rotations
    seq: int
    number: int  # 0 for the unnumbered file of a day


def _pattern(base: str) -> Pattern[str]:
    return re.compile(
        "^" + re.escape(base) + r"\.(?:(?P<date>\d{4}-\d{2}-\d{2})(?:_(?P<seq>\d+))?(?:\.(?P<k>\d+))?|(?P<n>\d+))$"
    )


def scan(path: str) -> List[Archive]:
    """Every rotated/dated file of `path`, oldest first (the current file not included)."""
    folder, base = os.path.split(os.path.abspath(path))
    rx = _pattern(base)
    found: List[Archive] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    for name in names:
        m = rx.match(name)
        if not m:
            continue
        full = os.path.join(folder, name)
        if m.group("n") is not None:
            found.append(Archive(full, "", 0, int(m.group("n"))))
        else:
            found.append(Archive(full, m.group("date"), int(m.group("seq") or 1), int(m.group("k") or 0)))
    found.sort(key=sort_key)
    return found


def sort_key(a: Archive) -> tuple:
    # Dated archives first (by date, seq), today's numbered ones last; inside a group
    # higher numbers are older and the unnumbered file (0) is the newest.
    return (a.date == "", a.date, a.seq, -a.number if a.number else 0)


def numbered(path: str, k: int) -> str:
    return f"{path}.{k}"


def dated(path: str, date: str, seq: int = 1, k: int = 0) -> str:
    name = f"{path}.{date}" + (f"_{seq}" if seq > 1 else "")
    return f"{name}.{k}" if k else name


def free_seq(path: str, date: str, existing: List[Archive]) -> int:
    used = {a.seq for a in existing if a.date == date}
    seq = 1
    while seq in used or os.path.lexists(dated(path, date, seq)):
        seq += 1
    return seq


def day_label(ts: float) -> str:
    lt = time.localtime(ts)
    return f"{lt.tm_year:04d}-{lt.tm_mon:02d}-{lt.tm_mday:02d}"


def day_bounds(ts: float) -> tuple[float, float]:
    """(local midnight starting the day of `ts`, the next local midnight)."""
    lt = time.localtime(ts)
    start = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 0, 0, 0, 0, 0, -1))
    end = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday + 1, 0, 0, 0, 0, 0, -1))
    return start, end


def retention_cutoff(ts: float, days: int) -> Optional[str]:
    """Dated archives with a date before this label are expired (None: keep forever)."""
    if days <= 0:
        return None
    lt = time.localtime(ts)
    return (datetime.date(lt.tm_year, lt.tm_mon, lt.tm_mday) - datetime.timedelta(days=days)).isoformat()


def expired(archives: List[Archive], ts: float, days: int) -> List[Archive]:
    cutoff = retention_cutoff(ts, days)
    if cutoff is None:
        return []
    return [a for a in archives if a.date and a.date < cutoff]

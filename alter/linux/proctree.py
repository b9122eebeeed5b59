"""Finding an instance's descendants through /proc: by environment marker and process group.

Used when cgroups are not available, and as a belt-and-braces sweep on stop:
a daemonizing program (double fork + setsid) leaves its process group, but
keeps the APM_INSTANCE=... variable the engine put in its environment.
"""

from __future__ import annotations

import os
from typing import Dict, Iterator, List, Optional, Set, Tuple

MARKER = b"APM_INSTANCE="


def _pids() -> Iterator[int]:
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if name.isdigit():
            yield int(name)


def stat_fields(pid: int) -> Optional[Tuple[str, int, int]]:
    """(state letter, ppid, pgid) of a process, or None when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm may contain spaces and parentheses: fields start after the last ')'
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        return rest[0].decode(), int(rest[1]), int(rest[2])
    except (IndexError, ValueError):
        return None


def is_alive(pid: int) -> bool:
    fields = stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def has_marker(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data.startswith(needle) or (b"\0" + needle) in data


def markers_of(pid: int) -> List[str]:
    """Every APM_INSTANCE value in a process's environment ([] when unreadable or absent)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return []
    out: List[str] = []
    at = 0 if data.startswith(MARKER) else data.find(b"\0" + MARKER) + 1  # 0: none (or at the very start)
    if at == 0 and not data.startswith(MARKER):
        return out
    while True:
        value_at = at + len(MARKER)
        end = data.find(b"\0", value_at)
        if end < 0:
            break  # not NUL-terminated: has_marker() would not match it either
        out.append(data[value_at:end].decode("utf-8", "surrogateescape"))
        at = data.find(b"\0" + MARKER, end) + 1
        if at == 0:
            break
    return out


class Snapshot:
    """One pass over /proc answering scan() for any number of (marker, pgid) pairs.

    scan() reads every process's stat and environ; stopping N instances at once with it costs N full
    passes (1000 instances: ~25 s of CPU).  `find()` gives what scan() would have given at the time
    of the snapshot.
    """

    def __init__(self, only_uid: Optional[int], exclude: Set[int]) -> None:
        self.by_marker: Dict[str, Set[int]] = {}
        self.by_pgid: Dict[int, Set[int]] = {}
        for pid in _pids():
            if pid in exclude:
                continue
            if only_uid is not None:
                try:
                    if os.stat(f"/proc/{pid}").st_uid != only_uid:
                        continue
                except OSError:
                    continue
            fields = stat_fields(pid)
            if fields is None or fields[0] in ("Z", "X"):
                continue
            self.by_pgid.setdefault(fields[2], set()).add(pid)
            for marker in markers_of(pid):
                self.by_marker.setdefault(marker, set()).add(pid)

    def find(self, marker: str, pgid: Optional[int]) -> Set[int]:
        found = set(self.by_marker.get(marker, ()))
        if pgid is not None:
            found |= self.by_pgid.get(pgid, set())
        return found


def scan(marker: str, pgid: Optional[int], only_uid: Optional[int], exclude: Set[int]) -> Set[int]:
    """Live pids carrying `APM_INSTANCE=<marker>` or belonging to process group `pgid`."""
    needle = f"APM_INSTANCE={marker}\0".encode()
    found: Set[int] = set()
    for pid in _pids():
        if pid in exclude:
            continue
        if only_uid is not None:
            try:
                if os.stat(f"/proc/{pid}").st_uid != only_uid:
                    continue
            except OSError:
                continue
        fields = stat_fields(pid)
        if fields is None or fields[0] in ("Z", "X"):
            continue
        if (pgid is not None and fields[2] == pgid) or has_marker(pid, needle):
            found.add(pid)
    return found

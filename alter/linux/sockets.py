"""Which process holds which TCP socket, from /proc (this network namespace; root sees every process).

inodes = tcp_inodes(8080, LISTEN)          # the sockets listening on port 8080
for pid, fd, inode in socket_fds(pids, inodes): ...
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator, Set, Tuple

LISTEN, ESTABLISHED = "0A", "01"  # /proc/net/tcp state codes


def tcp_inodes(port: int, state: str) -> Set[str]:
    """Inodes of the TCP sockets (IPv4 and IPv6) in `state` whose local port is `port`."""
    found: Set[str] = set()
    suffix = f":{port:04X}"
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 9 and fields[3] == state and fields[1].endswith(suffix):
                        found.add(fields[9])
        except OSError:
            continue
    return found


def socket_fds(pids: Iterable[int], inodes: Set[str]) -> Iterator[Tuple[int, int, str]]:
    """(pid, fd, inode) for every fd of these processes that is one of the socket inodes."""
    for pid in pids:
        base = f"/proc/{pid}/fd"
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(f"{base}/{name}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                yield pid, int(name), target[8:-1]

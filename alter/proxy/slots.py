"""max_conns across proxy processes: per-process counters in one shared memfd.

Row r (one per listener that has max_conns) holds one 8-byte counter per proxy
process.  A process admits a connection under an fcntl record lock on the
row: sum the row, compare with the limit, bump its own counter -- exact
across processes, and only paid on accept/close, never per request.  The
manager zeroes a process's column when it dies and a row when a listener
goes away.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct

ROWS = 1024
_Q = struct.Struct("q")


class ConnSlots:
    def __init__(self, fd: int, count: int, index: int) -> None:
        self.fd = fd
        self.count = count
        self.index = index
        self.row_size = 8 * count
        self.map = mmap.mmap(fd, ROWS * self.row_size)

    @staticmethod
    def create(count: int) -> int:
        """A new zeroed memfd sized for `count` processes (manager side); returns the fd."""
        fd = os.memfd_create("apm-proxy-conns", os.MFD_CLOEXEC) if hasattr(os, "memfd_create") else _tmpfile()
        os.ftruncate(fd, ROWS * 8 * count)
        return fd

    def _cell(self, row: int, proc: int) -> int:
        return row * self.row_size + proc * 8

    def acquire(self, row: int, limit: int) -> bool:
        if row < 0 or row >= ROWS:
            return True
        start = row * self.row_size
        fcntl.lockf(self.fd, fcntl.LOCK_EX, self.row_size, start)
        try:
            total = sum(_Q.unpack_from(self.map, start + 8 * i)[0] for i in range(self.count))
            if total >= limit:
                return False
            cell = self._cell(row, self.index)
            _Q.pack_into(self.map, cell, _Q.unpack_from(self.map, cell)[0] + 1)
            return True
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, self.row_size, start)

    def release(self, row: int) -> None:
        if row < 0 or row >= ROWS:
            return
        start = row * self.row_size
        cell = self._cell(row, self.index)
        fcntl.lockf(self.fd, fcntl.LOCK_EX, self.row_size, start)
        try:
            _Q.pack_into(self.map, cell, max(0, _Q.unpack_from(self.map, cell)[0] - 1))
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, self.row_size, start)

    def total(self, row: int) -> int:
        start = row * self.row_size
        return sum(_Q.unpack_from(self.map, start + 8 * i)[0] for i in range(self.count))

    def clear(self, row: int = -1, proc: int = -1) -> None:
        """Zero a row (listener gone), a column (process died), or both."""
        for r in range(ROWS) if row < 0 else (row,):
            for p in range(self.count) if proc < 0 else (proc,):
                _Q.pack_into(self.map, self._cell(r, p), 0)

    def close(self) -> None:
        self.map.close()


def _tmpfile() -> int:  # pragma: no cover - memfd_create exists on every supported Linux/Python
    import tempfile

    fd, path = tempfile.mkstemp(prefix="apm-proxy-conns-")
    os.unlink(path)
    return fd

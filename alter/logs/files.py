"""One log file on disk: append, size rotation, daily rollover, retention, failures.

Writes are whole read chunks (many complete lines) handed to one `os.writev`
on an O_APPEND descriptor — no Python file object, no per-line buffering.
A big write (>= BEHIND_MIN bytes) is handed to the file's writer thread and the
loop goes on reading and formatting the next chunk while the kernel copies this
one (`os.writev` releases the GIL): at most ONE write is in flight per file, the
next write, a rotation's close, a flush, a retry and the timer all wait for it
first, so order, sizes and failure handling are exactly those of a synchronous
write, only reported one write later.  Small writes (a few lines) are done on
the loop directly: a thread hand-off would cost more than it saves.
Rotation happens between lines, so a line is written whole to exactly one
file: when a chunk would push the file past `max_size`, the lines that fit go
to the current file, it is renamed, a new one is opened and the rest follows
(repeatedly if the chunk is bigger than max_size).  Only a single line longer
than `max_size` makes a file exceed it (that line gets a file of its own).

Failures (ENOSPC, EDQUOT, EIO, a path that became unwritable) never raise:
the file enters a failed state, the chunk is counted as lost (a short write is
truncated back to the last whole line, so the file never holds half a line),
`on_error` is called once, and every RETRY seconds the file is reopened if
needed and a notice line ("log writing resumed: N lines (M bytes) lost ...")
is written; when that succeeds the file is healthy again and `on_resume` runs.

A housekeeping tick (every RETRY seconds) also notices when the file was
deleted or replaced behind our back (reopens it), and performs the daily
rollover of an idle file at midnight.  File names: see `archive.py`.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

from alter.logs import archive

log = logging.getLogger("apm.logs")

RETRY = 5.0
FILE_MODE = 0o640
DIR_MODE = 0o750
_FULL = (errno.ENOSPC, errno.EDQUOT)
BEHIND_MIN = 32 * 1024  # writes at least this big go to the writer thread
BEHIND_IDLE = 10.0  # an idle writer thread ends after this many seconds (started again when needed)


def write_all(fd: int, parts: Sequence[Any], nbytes: int, base: int) -> Tuple[int, int]:
    """Append `parts` (whole lines, `nbytes` in all) to `fd`, whose file is `base` bytes long.

    Returns (bytes that stay in the file, errno or 0).  A write cut short by an error is
    truncated back to its last whole line, so the file never holds half a line.
    """
    try:
        n = os.writev(fd, parts)
    except OSError as exc:
        return 0, exc.errno or errno.EIO
    if n >= nbytes:
        return n, 0
    data = b"".join(parts)
    view = memoryview(data)
    try:
        while n < len(data):
            k = os.write(fd, view[n:])
            if k <= 0:
                raise OSError(errno.EIO, "short write")
            n += k
    except OSError as exc:
        keep = data.rfind(b"\n", 0, n) + 1  # whole lines that made it
        if keep < n:
            try:
                os.ftruncate(fd, base + keep)
            except OSError:
                keep = n  # could not cut: the partial line stays, counted as written
        return keep, exc.errno or errno.EIO
    return n, 0


class WriteBehind:
    """One write in flight on a thread of its own; `wait()` returns its outcome."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cv = threading.Condition()
        self._job: Optional[Tuple[int, Sequence[Any], int, int]] = None
        self._outcome: Optional[Tuple[int, int]] = None
        self._thread: Optional[threading.Thread] = None
        self._stop = False

    @property
    def busy(self) -> bool:
        return self._job is not None or self._outcome is not None

    def submit(self, fd: int, parts: Sequence[Any], nbytes: int, base: int) -> None:
        """Start a write; the previous one must have been collected with wait()."""
        with self._cv:
            assert self._job is None and self._outcome is None, "wait() first"
            self._job = (fd, parts, nbytes, base)
            self._stop = False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="apm-log-writer", daemon=True)
                self._thread.start()
            self._cv.notify_all()

    def wait(self) -> Optional[Tuple[int, int]]:
        """Block until no write is in flight; (kept bytes, errno) of the finished one, None if none."""
        with self._cv:
            while self._job is not None:
                self._cv.wait()
            outcome, self._outcome = self._outcome, None
            return outcome

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()

    def _run(self) -> None:
        cv = self._cv
        with cv:
            while True:
                while self._job is None:
                    if self._stop or (not cv.wait(BEHIND_IDLE) and self._job is None):
                        self._thread = None
                        return
                fd, parts, nbytes, base = self._job
                cv.release()
                try:
                    outcome = write_all(fd, parts, nbytes, base)
                except BaseException as exc:  # never leave the loop waiting forever
                    outcome = (0, getattr(exc, "errno", 0) or errno.EIO)
                finally:
                    cv.acquire()
                self._outcome = outcome
                self._job = None
                cv.notify_all()


@dataclass(frozen=True)
class Policy:
    max_size: int = 10 * 1024 * 1024  # 0 = never rotate by size
    max_files: int = 5
    daily: bool = True
    retention_days: int = 30  # 0 = keep dated archives forever


def describe_error(path: str, err: int, since: float) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
    if err in _FULL:
        return f"disk full writing {path} (since {when})"
    return f"cannot write {path}: {os.strerror(err) if err else 'unknown error'} (since {when})"


class LogFile:
    def __init__(
        self,
        loop: Any,
        path: str,
        policy: Policy,
        wall: Callable[[], float] = time.time,
        on_error: Optional[Callable[[LogFile], None]] = None,
        on_resume: Optional[Callable[[LogFile, str], None]] = None,
        notice: Optional[Callable[[str], bytes]] = None,
    ) -> None:
        self.loop = loop
        self.path = os.path.abspath(path)
        self.policy = policy
        self.wall = wall
        self.on_error = on_error
        self.on_resume = on_resume
        self.notice = notice or (lambda text: ("apm: " + text + "\n").encode())
        self.fd = -1
        self._ident = (0, 0)
        self.size = 0
        self.error: Optional[str] = None
        self.errno = 0
        self.failed_since: Optional[float] = None
        self.lost_lines = 0  # in the current failure episode
        self.lost_bytes = 0
        self.dropped_lines = 0  # lifetime totals
        self.dropped_bytes = 0
        self.written_bytes = 0
        self.rotations = 0
        self.rollovers = 0
        self._day_start = 0.0
        self._next_midnight = 0.0
        self._label = ""
        self._timer: Any = None
        self._closed = False
        self._behind: Optional[WriteBehind] = None
        self._inflight: Tuple[Sequence[Any], int, int] = ((), 0, 0)  # (parts, nbytes, nlines) being written

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Open (creating folders), roll over a file left from an earlier day, sweep old archives."""
        now = self.wall()
        self._set_day(now)
        if self._reopen():
            try:
                st = os.fstat(self.fd)
                if self.policy.daily and st.st_size > 0 and st.st_mtime < self._day_start:
                    self._rollover(archive.day_label(st.st_mtime))
            except OSError as exc:
                self._fail(exc.errno or 0)
        self._sweep(now)
        self._schedule()

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._close_fd()
        if self._behind is not None:
            self._behind.stop()

    def set_policy(self, policy: Policy) -> None:
        self.policy = policy

    def _close_fd(self) -> None:
        self.settle()
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1

    def _reopen(self) -> bool:
        """(Re)open the current file; on failure enter the failed state.  True if open."""
        self._close_fd()
        try:
            folder = os.path.dirname(self.path)
            if not os.path.lexists(folder):  # (a file in the way fails below, with ENOTDIR)
                os.makedirs(folder, DIR_MODE, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
            st = os.fstat(fd)
        except OSError as exc:
            self._fail(exc.errno or 0)
            return False
        self.fd = fd
        self.size = st.st_size
        self._ident = (st.st_dev, st.st_ino)
        return True

    def _schedule(self) -> None:
        if not self._closed and self.loop is not None:
            # On a RETRY-second grid of the loop's clock, not RETRY after this file's own start: every file
            # then ticks in the same loop iteration, so an idle daemon with 200 workers wakes once per RETRY
            # instead of ~40 times a second (0.7% of a core -> 0.03%).
            self._timer = self.loop.call_at((self.loop.time() // RETRY + 1) * RETRY, self._tick)

    # ------------------------------------------------------------------ writing

    def write(self, parts: Sequence[Any], nbytes: int, nlines: int, now: float) -> bool:
        """Append whole lines (`parts` joined); True if they all reached the file."""
        if now >= self._next_midnight:
            self._day_changed(now)
        max_size = self.policy.max_size
        if max_size and self.size + nbytes > max_size:
            self.settle()  # decide on the real size, not one that counts a failing write in flight
        if self.failed_since is not None or self.fd < 0:
            self._drop(nlines, nbytes)
            return False
        if max_size and self.size + nbytes > max_size:
            return self._write_rotating(b"".join(parts), max_size)
        return self._write_parts(parts, nbytes, nlines)

    def _write_rotating(self, data: bytes, max_size: int) -> bool:
        """Fill the current file up to max_size with whole lines, rotate, go on with the rest.

        Only runs when a rotation is due, so the join/rfind/count here are rare.
        A single line longer than max_size is written whole into a file of its own.
        """
        pos, end = 0, len(data)
        while pos < end:
            if self.failed_since is not None or self.fd < 0:
                self._drop(data.count(b"\n", pos), end - pos)
                return False
            if self.size + (end - pos) <= max_size:
                return self._write_parts((data[pos:],), end - pos, data.count(b"\n", pos))
            room = max_size - self.size
            cut = data.rfind(b"\n", pos, pos + room) + 1 if room > 0 else 0
            if cut <= pos:  # not even one line fits
                if self.size > 0:
                    self.rotate()
                    continue
                cut = data.find(b"\n", pos) + 1 or end
            piece = data[pos:cut]
            if not self._write_parts((piece,), len(piece), piece.count(b"\n")):
                self._drop(data.count(b"\n", cut), end - cut)
                return False
            pos = cut
            if pos < end:
                self.rotate()
        return True

    def _write_parts(self, parts: Sequence[Any], nbytes: int, nlines: int) -> bool:
        if not self.settle():  # the write in flight failed: this one cannot go either
            self._drop(nlines, nbytes)
            return False
        if nbytes >= BEHIND_MIN and self.fd >= 0:
            if self._behind is None:
                self._behind = WriteBehind(self.path)
            self._behind.submit(self.fd, parts, nbytes, self.size)
            self._inflight = (parts, nbytes, nlines)
            self.size += nbytes  # as if done; settle() corrects it if the write fails
            self.written_bytes += nbytes
            return True
        kept, err = write_all(self.fd, parts, nbytes, self.size)
        self.size += kept
        self.written_bytes += kept
        if err:
            self._lost(parts, kept, nbytes, nlines, err)
            return False
        return True

    def settle(self) -> bool:
        """Wait for the write in flight (if any) and account for it; False if the file is failed now."""
        behind = self._behind
        if behind is not None and behind.busy:
            outcome = behind.wait()
            parts, nbytes, nlines = self._inflight
            self._inflight = ((), 0, 0)
            if outcome is not None and outcome[1]:
                kept, err = outcome
                self.size -= nbytes - kept
                self.written_bytes -= nbytes - kept
                self._lost(parts, kept, nbytes, nlines, err)
        return self.failed_since is None

    def _lost(self, parts: Sequence[Any], kept: int, nbytes: int, nlines: int, err: int) -> None:
        kept_lines = b"".join(parts).count(b"\n", 0, kept) if kept else 0
        self._drop(nlines - kept_lines, nbytes - kept)
        self._fail(err)

    def _drop(self, nlines: int, nbytes: int) -> None:
        self.lost_lines += nlines
        self.lost_bytes += nbytes
        self.dropped_lines += nlines
        self.dropped_bytes += nbytes

    def _fail(self, err: int) -> None:
        first = self.failed_since is None
        if first:
            self.failed_since = self.wall()
        if first or err != self.errno:
            self.errno = err
            assert self.failed_since is not None
            self.error = describe_error(self.path, err, self.failed_since)
        if first:
            log.warning("log file %s: %s", self.path, self.error)
            if self.on_error is not None:
                self.on_error(self)

    # ------------------------------------------------------------------ housekeeping

    def _tick(self) -> None:
        self._timer = None
        if self._closed:
            return
        try:
            self.settle()
            now = self.wall()
            if now >= self._next_midnight:
                self._day_changed(now)
            if self.failed_since is not None:
                self.retry()
            elif self.fd >= 0 and not self._same_file():
                log.info("log file %s was moved or deleted: reopening", self.path)
                self._reopen()
        finally:
            self._schedule()

    def _same_file(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._ident

    def retry(self) -> bool:
        """Try to write again; on success log what was lost and clear the error."""
        self.settle()
        if self.failed_since is None:
            return True
        if (self.fd < 0 or not self._same_file()) and not self._reopen():
            return False
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.failed_since))
        reason = "disk full" if self.errno in _FULL else (os.strerror(self.errno) if self.errno else "write error")
        text = f"log writing resumed: {self.lost_lines} lines ({self.lost_bytes} bytes) lost since {since} ({reason})"
        line = self.notice(text)
        try:
            n = os.write(self.fd, line)
        except OSError as exc:
            self._fail(exc.errno or 0)
            return False
        if n < len(line):
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                self.size += n
            return False
        self.size += n
        self.written_bytes += n
        self.failed_since = None
        self.error = None
        self.errno = 0
        self.lost_lines = self.lost_bytes = 0
        log.warning("log file %s: %s", self.path, text)
        if self.on_resume is not None:
            self.on_resume(self, text)
        return True

    # ------------------------------------------------------------------ rotation

    def rotate(self) -> None:
        """Size rotation: out.log -> out.log.1 -> ... -> out.log.<max_files> (dropped after)."""
        keep = max(1, self.policy.max_files)
        todays = [a for a in archive.scan(self.path) if not a.date]
        for a in todays:
            if a.number >= keep:
                self._unlink(a.path)
        for a in sorted((a for a in todays if a.number < keep), key=lambda a: -a.number):
            self._rename(a.path, archive.numbered(self.path, a.number + 1))
        self._rename(self.path, archive.numbered(self.path, 1))
        self.rotations += 1
        self._reopen()

    def _day_changed(self, now: float) -> None:
        label = self._label
        self._set_day(now)
        if self.policy.daily and (self.size > 0 or any(not a.date for a in archive.scan(self.path))):
            self._rollover(label)
        self._sweep(now)

    def _rollover(self, label: str) -> None:
        """Move the current file and today's numbered rotations into dated archives."""
        existing = archive.scan(self.path)
        seq = archive.free_seq(self.path, label, existing)
        for a in existing:
            if not a.date:
                self._rename(a.path, archive.dated(self.path, label, seq, a.number))
        self._rename(self.path, archive.dated(self.path, label, seq))
        self.rollovers += 1
        if self.failed_since is None or self.fd >= 0:
            self._reopen()

    def _sweep(self, now: float) -> None:
        for a in archive.expired(archive.scan(self.path), now, self.policy.retention_days):
            self._unlink(a.path)

    def _set_day(self, now: float) -> None:
        self._day_start, self._next_midnight = archive.day_bounds(now)
        self._label = archive.day_label(now)

    def _rename(self, src: str, dst: str) -> None:
        try:
            os.rename(src, dst)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("log rotation: cannot rename %s to %s: %s", src, dst, exc.strerror)

    def _unlink(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("log rotation: cannot delete %s: %s", path, exc.strerror)

    # ------------------------------------------------------------------ inspection

    def files(self) -> List[str]:
        """Archives oldest first, then the current file (if it exists)."""
        out = [a.path for a in archive.scan(self.path)]
        if os.path.exists(self.path):
            out.append(self.path)
        return out

    def clear(self) -> None:
        """`apm flush`: empty the current file, delete every rotated and dated one."""
        self.settle()
        for a in archive.scan(self.path):
            self._unlink(a.path)
        try:
            if self.fd >= 0:
                os.ftruncate(self.fd, 0)
            elif os.path.exists(self.path):
                os.truncate(self.path, 0)
            self.size = 0
        except OSError as exc:
            log.warning("log flush: cannot truncate %s: %s", self.path, exc.strerror)

"""inotify(7) through ctypes, and a debounced watcher of config files.

    watcher = FileWatcher(loop, on_change, debounce=0.3)
    watcher.set_paths(files=["/etc/apm/apm.conf"], dirs=["/etc/apm/apm.conf.d"])
    ...                              # on_change({"/etc/apm/apm.conf"}) ~300 ms after an edit
    watcher.close()

Files are watched through their DIRECTORY, never by their own inode: editors
that save by writing a temp file and renaming it over the original (vim,
sed -i, `write_atomic`) replace the inode, which would silently end a watch on
the file itself.  A directory watch sees the `IN_MOVED_TO` of the new file and
keeps working.  `IN_MODIFY` is not asked for (a log file written in the same
directory would wake the loop on every line): `IN_CLOSE_WRITE` marks the end of
an in-place write.  `dirs` are watched for any new, changed or removed entry
(drop-in directories of `include dir/*.conf;`).

The fd is non-blocking and read from the loop (`loop.add_reader`); callbacks
run on the loop thread.  `loop` is anything with `add_reader`, `remove_reader`
and `call_later` (alter.daemon.loop.EventLoop): this module stays a leaf.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import logging
import os
import struct
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

log = logging.getLogger("apm.inotify")

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = getattr(os, "O_CLOEXEC", 0o2000000)

DIR_MASK = (
    IN_CLOSE_WRITE
    | IN_MOVED_TO
    | IN_MOVED_FROM
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
    | IN_EXCL_UNLINK
)
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len
READ_SIZE = 64 * 1024
DEBOUNCE = 0.3  # seconds of quiet before on_change runs
MAX_DELAY = 2.0  # ...but never later than this after the first event of a burst


@dataclass(frozen=True)
class Event:
    wd: int
    mask: int
    cookie: int
    name: str  # entry name inside the watched directory ("" for events on the directory itself)


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_init1.restype = ctypes.c_int
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    libc.inotify_add_watch.restype = ctypes.c_int
    libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.inotify_rm_watch.restype = ctypes.c_int
    return libc


def _oserror(what: str, path: str = "") -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}", path or None)


def parse_events(data: bytes) -> List[Event]:
    """Split a read() of an inotify fd into events."""
    events: List[Event] = []
    pos = 0
    while pos + _HEADER.size <= len(data):
        wd, mask, cookie, length = _HEADER.unpack_from(data, pos)
        pos += _HEADER.size
        raw = data[pos : pos + length]
        pos += length
        name = os.fsdecode(raw.split(b"\0", 1)[0])
        events.append(Event(wd, mask, cookie, name))
    return events


class Inotify:
    """One inotify instance: a non-blocking, close-on-exec fd."""

    def __init__(self) -> None:
        fd = _libc().inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise _oserror("inotify_init1")
        self.fd: int = fd

    def fileno(self) -> int:
        return self.fd

    def add_watch(self, path: str, mask: int) -> int:
        wd = _libc().inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            raise _oserror("inotify_add_watch", path)
        return int(wd)

    def rm_watch(self, wd: int) -> None:
        if _libc().inotify_rm_watch(self.fd, wd) < 0:
            err = ctypes.get_errno()
            if err != errno.EINVAL:  # already gone (directory deleted): fine
                raise OSError(err, f"inotify_rm_watch: {os.strerror(err)}")

    def read(self) -> List[Event]:
        """Every event queued now ([] when none)."""
        out: List[Event] = []
        while True:
            try:
                data = os.read(self.fd, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return out
            if not data:
                return out
            out.extend(parse_events(data))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FileWatcher:
    """Watch files (through their directories) and whole directories; report changes debounced.

    `on_change(paths)` gets the set of watched paths that changed: a watched
    file's path, or a watched directory's path when anything inside it did.
    A queue overflow reports every watched path.
    """

    def __init__(
        self,
        loop: Any,
        on_change: Callable[[Set[str]], None],
        debounce: float = DEBOUNCE,
        max_delay: float = MAX_DELAY,
    ) -> None:
        self.loop = loop
        self.on_change = on_change
        self.debounce = debounce
        self.max_delay = max_delay
        self.files: Set[str] = set()
        self.dirs: Set[str] = set()
        self._entries: Dict[Tuple[str, str], Set[str]] = {}  # (directory, entry name) -> watched files
        self._folders: Dict[str, Set[str]] = {}  # directory -> watched dirs it stands for (real path too)
        self._wds: Dict[int, str] = {}
        self._dir_wd: Dict[str, int] = {}
        self._pending: Set[str] = set()
        self._timer: Any = None
        self._first: Optional[float] = None
        self._ino: Optional[Inotify] = None

    # ------------------------------------------------------------------ setup

    def set_paths(self, files: Iterable[str] = (), dirs: Iterable[str] = ()) -> None:
        """Watch exactly these files and directories (adds and drops watches as needed)."""
        self.files = {os.path.abspath(f) for f in files}
        self.dirs = {os.path.abspath(d) for d in dirs}
        self._entries = {}
        self._folders = {}
        for path in self.files:
            for variant in {path, os.path.realpath(path)}:
                key = (os.path.dirname(variant), os.path.basename(variant))
                self._entries.setdefault(key, set()).add(path)
        for folder in self.dirs:
            for variant in {folder, os.path.realpath(folder)}:
                self._folders.setdefault(variant, set()).add(folder)
        wanted = {d for d, _ in self._entries} | set(self._folders)
        if not wanted:
            self._close_fd()
            return
        ino = self._open()
        for folder in list(self._dir_wd):
            if folder not in wanted:
                wd = self._dir_wd.pop(folder)
                self._wds.pop(wd, None)
                try:
                    ino.rm_watch(wd)
                except OSError:
                    pass
        self.rewatch()

    def rewatch(self) -> None:
        """(Re)add watches for directories that are missing one (a deleted folder may have come back)."""
        if self._ino is None:
            return
        for folder in sorted({d for d, _ in self._entries} | set(self._folders)):
            if folder in self._dir_wd:
                continue
            try:
                wd = self._ino.add_watch(folder, DIR_MASK)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                    log.warning("cannot watch %s: %s", folder, exc.strerror)
                continue
            old = self._wds.get(wd)
            if old is not None and old != folder:  # same inode under another name (symlinked folder)
                self._dir_wd.pop(old, None)
            self._wds[wd] = folder
            self._dir_wd[folder] = wd

    def watched_dirs(self) -> List[str]:
        return sorted(self._dir_wd)

    def _open(self) -> Inotify:
        if self._ino is None:
            self._ino = Inotify()
            self.loop.add_reader(self._ino.fileno(), self._readable)
        return self._ino

    def _close_fd(self) -> None:
        if self._ino is not None:
            self.loop.remove_reader(self._ino.fileno())
            self._ino.close()
            self._ino = None
        self._wds.clear()
        self._dir_wd.clear()

    def close(self) -> None:
        self._close_fd()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending.clear()

    # ------------------------------------------------------------------ events

    def _readable(self) -> None:
        if self._ino is None:
            return
        try:
            events = self._ino.read()
        except OSError as exc:
            log.warning("reading inotify events failed: %s", exc)
            return
        changed: Set[str] = set()
        lost = False
        for event in events:
            if event.mask & IN_Q_OVERFLOW:
                changed |= self.files | self.dirs
                continue
            folder = self._wds.get(event.wd)
            if folder is None:
                continue
            if event.mask & IN_IGNORED or (event.mask & (IN_DELETE_SELF | IN_MOVE_SELF) and not event.name):
                self._wds.pop(event.wd, None)
                if self._dir_wd.get(folder) == event.wd:
                    del self._dir_wd[folder]
                lost = True
                changed |= self._paths_in(folder, None)
                continue
            changed |= self._paths_in(folder, event.name)
        if lost:
            self.rewatch()
        if changed:
            self._queue(changed)

    def _paths_in(self, folder: str, name: Optional[str]) -> Set[str]:
        """The watched paths an event on `folder/name` concerns (name None: the folder itself went)."""
        out = set(self._folders.get(folder, ()))
        if name is None:
            for (where, _), paths in self._entries.items():
                if where == folder:
                    out |= paths
        else:
            out |= self._entries.get((folder, name), set())
        return out

    def _queue(self, paths: Set[str]) -> None:
        self._pending |= paths
        now = self.loop.time()
        if self._first is None:
            self._first = now
        delay = min(self.debounce, max(0.0, self._first + self.max_delay - now))
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._first = None
        paths, self._pending = self._pending, set()
        if paths:
            self.on_change(paths)

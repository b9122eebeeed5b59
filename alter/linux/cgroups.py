"""Per-instance cgroups: membership (find every descendant), memory limits, OOM counts.

Layout: `<daemon's own cgroup>/apm/<daemon-id>/<worker>.<index>`.  Nesting
under the daemon's own group respects whatever limits and delegation the init
system gave the daemon (systemd `Delegate=yes`); `<daemon-id>` (from the
socket name) keeps isolated daemons (tests) apart.

* cgroup v2 (unified `/sys/fs/cgroup`) is used when it offers the memory
  controller to us.  Enabling a controller for children needs a cgroup without
  processes, so the daemon moves itself into `<own>/daemon` first (what
  systemd documents for delegated services).  Without the memory controller,
  v2 groups still give reliable membership; memory limits are then refused.
* otherwise the v1 memory hierarchy at `/sys/fs/cgroup/memory`.
* otherwise nothing (the APM_INSTANCE marker scan still finds descendants).

The child joins its group itself, before exec (see linux/spawn.py), so no
grandchild can be forked outside it.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from dataclasses import dataclass
from typing import Dict, Optional, Set

log = logging.getLogger("apm.cgroups")

ROOT = "/sys/fs/cgroup"
_SAFE = re.compile(r"[^A-Za-z0-9_.@-]")


def safe_name(text: str) -> str:
    return _SAFE.sub("_", text) or "_"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)  # O_TRUNC: what `echo x > file` does
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def own_paths(proc_self_cgroup: str = "/proc/self/cgroup") -> Dict[str, str]:
    """controller -> path of this process ("" key for the v2 unified hierarchy)."""
    out: Dict[str, str] = {}
    try:
        text = _read(proc_self_cgroup)
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            out[controller] = path
    return out


@dataclass
class Cgroups:
    """One daemon's cgroup subtree."""

    version: int  # 1 or 2
    base: str  # absolute directory holding this daemon's instance groups
    memory: bool  # memory limits can be enforced

    # -------------------------------------------------------------- detection

    @classmethod
    def detect(cls, daemon_id: str, root: str = ROOT, proc_self_cgroup: str = "/proc/self/cgroup") -> Optional[Cgroups]:
        paths = own_paths(proc_self_cgroup)
        found = None
        if os.path.exists(os.path.join(root, "cgroup.controllers")):
            found = cls._detect_v2(daemon_id, root, paths.get("", "/"))
            if found is not None and not found.memory and os.path.isdir(os.path.join(root, "memory")):
                found = None  # odd mix: prefer a v1 memory hierarchy if there is one
        if found is None and os.path.exists(os.path.join(root, "memory", "cgroup.procs")):
            found = cls._detect_v1(daemon_id, os.path.join(root, "memory"), paths.get("memory", "/"))
        return found

    @classmethod
    def _detect_v1(cls, daemon_id: str, mount: str, own: str) -> Optional[Cgroups]:
        base = os.path.join(mount + own.rstrip("/"), "apm", safe_name(daemon_id))
        try:
            os.makedirs(base, exist_ok=True)
        except OSError as exc:
            log.info("cgroup v1 memory hierarchy not usable (%s): using the marker scan only", exc)
            return None
        return cls(1, base, True)

    @classmethod
    def _detect_v2(cls, daemon_id: str, root: str, own: str) -> Optional[Cgroups]:
        own_dir = root + own.rstrip("/") if own != "/" else root
        try:
            available = _read(os.path.join(own_dir, "cgroup.controllers")).split()
        except OSError:
            return None
        memory = "memory" in available and _enable_controller_v2(own_dir, root, "memory")
        apm_dir = os.path.join(own_dir, "apm")
        base = os.path.join(apm_dir, safe_name(daemon_id))
        try:
            os.makedirs(base, exist_ok=True)
            if memory:
                for folder in (apm_dir, base):
                    _add_controller(folder, "memory")
        except OSError as exc:
            if not os.path.isdir(base):
                log.info("cgroup v2 not writable (%s): using the marker scan only", exc)
                return None
            memory = False
        return cls(2, base, memory)

    # -------------------------------------------------------------- groups

    def path(self, group: str) -> str:
        return os.path.join(self.base, safe_name(group))

    def prepare(self, group: str, memory_limit: Optional[int]) -> str:
        """Create (or reuse) the group and set its memory limit (None: unlimited); returns its path."""
        path = self.path(group)
        os.makedirs(path, exist_ok=True)
        if self.memory:
            self.set_memory_limit(path, memory_limit)
        elif memory_limit:
            raise OSError(errno.ENOTSUP, "the memory controller is not available to this daemon")
        return path

    def set_memory_limit(self, path: str, limit: Optional[int]) -> None:
        if self.version == 2:
            _write(os.path.join(path, "memory.max"), str(limit) if limit else "max")
            if os.path.exists(os.path.join(path, "memory.swap.max")):
                _write(os.path.join(path, "memory.swap.max"), "0" if limit else "max")
            return
        value = str(limit) if limit else "-1"
        limit_file = os.path.join(path, "memory.limit_in_bytes")
        memsw = os.path.join(path, "memory.memsw.limit_in_bytes")
        has_memsw = os.path.exists(memsw)
        try:
            _write(limit_file, value)
            if has_memsw:
                _write(memsw, value)
        except OSError as exc:
            if exc.errno != errno.EINVAL or not has_memsw:
                raise
            _write(memsw, value)  # memsw must stay >= limit: raise it first
            _write(limit_file, value)

    def procs_file(self, path: str) -> str:
        return os.path.join(path, "cgroup.procs")

    def join_file(self, path: str) -> str:
        """The file a child writes "0" (itself) to, between fork and exec, to join the group at `path`.

        v1: `tasks`, which moves the calling thread -- the whole child, single-threaded at that point --
        without the kernel's global threadgroup lock, whose synchronize_rcu() otherwise costs every spawn
        an RCU grace period (measured 7.5 ms -> 0.1 ms; it was most of the restart latency).  v2 only
        accepts whole processes in domain groups: cgroup.procs.
        """
        return os.path.join(path, "tasks" if self.version == 1 else "cgroup.procs")

    def procs(self, path: str) -> Set[int]:
        try:
            text = _read(os.path.join(path, "cgroup.procs"))
        except OSError:
            return set()
        return {int(p) for p in text.split() if p.isdigit()}

    def oom_kills(self, path: str) -> int:
        """How many times the OOM killer fired in this group (v1 without oom_kill: failcnt hits)."""
        try:
            if self.version == 2:
                return _field(_read(os.path.join(path, "memory.events")), "oom_kill")
            count = _field(_read(os.path.join(path, "memory.oom_control")), "oom_kill", -1)
            if count >= 0:
                return count
            return int(_read(os.path.join(path, "memory.failcnt")).strip() or 0)
        except (OSError, ValueError):
            return 0

    def kill_all(self, path: str) -> bool:
        """v2 `cgroup.kill` (Linux 5.14+): SIGKILL every member atomically."""
        kill_file = os.path.join(path, "cgroup.kill")
        if self.version != 2 or not os.path.exists(kill_file):
            return False
        try:
            _write(kill_file, "1")
        except OSError:
            return False
        return True

    def remove(self, path: str) -> bool:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                log.warning("cannot remove cgroup %s: %s", path, exc)
            return False
        return True

    def cleanup(self) -> None:
        """Remove this daemon's empty groups (daemon exit)."""
        try:
            names = os.listdir(self.base)
        except OSError:
            return
        for name in names:
            full = os.path.join(self.base, name)
            if os.path.isdir(full):
                self.remove(full)
        if self.remove(self.base):
            self.remove(os.path.dirname(self.base))


def _field(text: str, key: str, default: int = 0) -> int:
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    return default


def _add_controller(folder: str, controller: str) -> None:
    current = _read(os.path.join(folder, "cgroup.subtree_control")).split()
    if controller not in current:
        _write(os.path.join(folder, "cgroup.subtree_control"), "+" + controller)


def _enable_controller_v2(own_dir: str, root: str, controller: str) -> bool:
    """Make `controller` available to our children, moving ourselves into a leaf if needed."""
    try:
        _add_controller(own_dir, controller)
        return True
    except OSError as exc:
        if exc.errno != errno.EBUSY or own_dir == root:
            log.info("cannot enable the %s controller in %s: %s", controller, own_dir, exc)
            return False
    # "no internal processes": the daemon itself must leave its group first.
    leaf = os.path.join(own_dir, "daemon")
    try:
        os.makedirs(leaf, exist_ok=True)
        _write(os.path.join(leaf, "cgroup.procs"), str(os.getpid()))
        _add_controller(own_dir, controller)
        return True
    except OSError as exc:
        log.info("cannot delegate the %s controller below %s: %s", controller, own_dir, exc)
        return False

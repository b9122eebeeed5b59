"""The OS interface of the engine (`ProcessOps`) and a fake of it for unit tests.

Every system call the state machines make goes through here: spawning,
signalling a process tree, asking what is still alive, user/exec lookups,
reading env files, the wall clock, CPU/memory samples.  The real thing is
`alter.linux.spawn.LinuxOps`; `FakeOps` records calls and lets tests decide
when and how fake processes exit.
"""

from __future__ import annotations

import os
import signal as _signal
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from alter.errors import NotFound, StartFailed

try:
    from typing import Protocol
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol  # type: ignore


@dataclass(frozen=True)
class UserInfo:
    name: str
    uid: int
    gid: int
    groups: Tuple[int, ...]
    home: str
    shell: str


@dataclass
class SpawnSpec:
    """Everything needed to start one attempt of one instance."""

    worker: str
    index: int  # 0-based
    argv: List[str]  # argv[0] is the resolved executable path
    cwd: str
    env: Dict[str, str]
    user: Optional[UserInfo]  # None: keep the daemon's credentials
    marker: str  # value of APM_INSTANCE, also used to find descendants
    memory_limit: Optional[int] = None
    group: str = ""  # cgroup leaf name, "<worker>.<index>"
    executable: str = ""  # resolved path of argv[0] (argv[0] itself stays as written)


@dataclass
class ProcessHandle:
    """What ops needs to find an attempt's whole process tree again."""

    pid: int
    pgid: int
    marker: str
    cgroup: Optional[str] = None  # absolute cgroup directory, when cgroups are used
    oom_base: int = 0  # the cgroup's oom-kill count at spawn time
    reaped: bool = False


@dataclass
class Spawned:
    pid: int
    stdout_fd: Optional[int]
    stderr_fd: Optional[int]
    handle: ProcessHandle


@dataclass(frozen=True)
class ExitStatus:
    code: Optional[int]  # exit code, or None when killed by a signal
    signal: Optional[int]  # signal number, or None
    oom: bool = False  # the kernel OOM killer fired in the instance's cgroup

    @property
    def signal_name(self) -> Optional[str]:
        return signal_name(self.signal) if self.signal is not None else None


ExitCallback = Callable[[ExitStatus], None]


def signal_name(signum: int) -> str:
    try:
        return _signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class ProcessOps(Protocol):
    """The OS as the engine sees it."""

    is_root: bool
    daemon_env: Dict[str, str]

    def wall(self) -> float:
        """time.time(), for display and persistence only."""

    def spawn(self, spec: SpawnSpec, on_exit: ExitCallback) -> Spawned:
        """Start the process; `on_exit` is called on the loop thread when its main pid is reaped.

        Raises StartFailed with a message naming the problem when it cannot start.
        """

    def kill_tree(self, handle: ProcessHandle, sig: int) -> int:
        """Send `sig` to the main pid's process group, cgroup and marked descendants; returns how many."""

    def signal(self, pid: int, sig: int) -> bool:
        """Send `sig` to one pid; False when it is gone."""

    def alive_pids(self, handle: ProcessHandle) -> Set[int]:
        """Pids of the tree that are still alive (zombies excluded, the unreaped main pid included)."""

    def release(self, handle: ProcessHandle) -> None:
        """The attempt is over and its tree is gone: drop its cgroup."""

    def lookup_user(self, name: str) -> UserInfo:
        """Resolve a user name (or numeric uid) with its groups; NotFound when unknown."""

    def current_user(self) -> UserInfo:
        """The daemon's own user."""

    def resolve_exec(self, exec_: str, user: UserInfo, cwd: str, search_path: str) -> str:
        """Absolute path of an executable the user may run; StartFailed naming the value if none."""

    def is_dir(self, path: str) -> bool:
        """Does this directory exist?"""

    def enter_problem(self, path: str, user: UserInfo) -> Optional[str]:
        """Why `user` may not enter directory `path` (e.g. "/root is drwx------ root:root"), or None."""

    def read_file(self, path: str) -> str:
        """Text of a small file (env_file); OSError when unreadable."""

    def usage(self, pid: int) -> Tuple[Optional[float], Optional[int]]:
        """(cpu percent of one core since the last call, RSS bytes) of a live pid."""

    def on_orphan(self, callback: Callable[[int], None]) -> None:
        """Call `callback(pid)` when a process that is no instance's main pid is reaped."""


# ---------------------------------------------------------------------------------------------- fake


@dataclass
class FakeProcess:
    pid: int
    spec: SpawnSpec
    on_exit: ExitCallback
    handle: ProcessHandle
    alive: bool = True
    ignores_term: bool = False
    leftovers: Set[int] = field(default_factory=set)  # extra tree members (daemonized grandchildren)
    leftovers_ignore_term: bool = False
    signals: List[int] = field(default_factory=list)
    out_w: Optional[int] = None
    err_w: Optional[int] = None


class FakeOps:
    """ProcessOps for unit tests: no processes, every call recorded.

    With `auto_exit`, a SIGTERM (unless the process `ignores_term`) or SIGKILL
    sent through `kill_tree` makes the fake exit on the next loop iteration,
    like a real program would.  Tests make processes exit on their own with
    `exit(pid, code=..., signal=...)`.  With `pipes`, each spawn gets real
    pipes: `write(pid, b"...", "err")` feeds the engine's readers.
    """

    def __init__(
        self,
        call_soon: Optional[Callable[..., Any]] = None,
        is_root: bool = True,
        clock: Optional[Callable[[], float]] = None,
        auto_exit: bool = True,
        pipes: bool = False,
    ) -> None:
        self.call_soon = call_soon
        self.is_root = is_root
        self.clock = clock
        self.auto_exit = auto_exit
        self.pipes = pipes
        self.daemon_env: Dict[str, str] = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": "/root",
            "SECRET_DAEMON_VAR": "leak",
        }
        self.users: Dict[str, UserInfo] = {
            "root": UserInfo("root", 0, 0, (0,), "/root", "/bin/bash"),
            "alice": UserInfo("alice", 1000, 1000, (1000, 27), "/home/alice", "/bin/sh"),
        }
        self.me = "root" if is_root else "alice"
        self.executables: Set[str] = {"/usr/bin/sleep", "/usr/bin/node", "/usr/bin/python3", "/bin/sh"}
        self.dirs: Set[str] = {"/", "/tmp", "/root", "/home/alice", "/srv/app"}
        self.closed_dirs: Dict[Tuple[str, str], str] = {}  # (path, user) -> why that user may not enter it
        self.files: Dict[str, str] = {}
        self.procs: Dict[int, FakeProcess] = {}
        self.calls: List[Tuple[Any, ...]] = []
        self.fail_next_spawn: Optional[str] = None
        self.ignore_term_next = False
        self._next_pid = 1000
        self._orphan_callbacks: List[Callable[[int], None]] = []

    # -------------------------------------------------------------- ProcessOps

    def wall(self) -> float:
        return 1_700_000_000.0 + (self.clock() if self.clock else 0.0)

    def spawn(self, spec: SpawnSpec, on_exit: ExitCallback) -> Spawned:
        self.calls.append(("spawn", spec.worker, spec.index))
        if self.fail_next_spawn:
            message, self.fail_next_spawn = self.fail_next_spawn, None
            raise StartFailed(message)
        self._next_pid += 1
        pid = self._next_pid
        handle = ProcessHandle(pid=pid, pgid=pid, marker=spec.marker, cgroup=f"/fake/{spec.group}")
        proc = FakeProcess(pid, spec, on_exit, handle, ignores_term=self.ignore_term_next)
        self.ignore_term_next = False
        out_r = err_r = None
        if self.pipes:
            out_r, proc.out_w = os.pipe2(os.O_CLOEXEC)
            err_r, proc.err_w = os.pipe2(os.O_CLOEXEC)
        self.procs[pid] = proc
        return Spawned(pid, out_r, err_r, handle)

    def kill_tree(self, handle: ProcessHandle, sig: int) -> int:
        self.calls.append(("kill_tree", handle.pid, sig))
        proc = self.procs.get(handle.pid)
        if proc is None:
            return 0
        proc.signals.append(sig)
        count = len(self.alive_pids(handle))
        if sig == _signal.SIGKILL or not proc.leftovers_ignore_term:
            self._later(self._drop_leftovers, proc)
        if (
            self.auto_exit
            and proc.alive
            and (sig == _signal.SIGKILL or (sig == _signal.SIGTERM and not proc.ignores_term))
        ):
            self._later(self._exit_if_alive, proc.pid, sig)
        return count

    def signal(self, pid: int, sig: int) -> bool:
        self.calls.append(("signal", pid, sig))
        proc = self.procs.get(pid)
        if proc is None or not proc.alive:
            return False
        proc.signals.append(sig)
        return True

    def alive_pids(self, handle: ProcessHandle) -> Set[int]:
        proc = self.procs.get(handle.pid)
        if proc is None:
            return set()
        return ({proc.pid} if proc.alive else set()) | set(proc.leftovers)

    def release(self, handle: ProcessHandle) -> None:
        self.calls.append(("release", handle.pid))

    def lookup_user(self, name: str) -> UserInfo:
        if name in self.users:
            return self.users[name]
        raise NotFound(f"no user named {name!r} on this system", hint="create it with useradd, or fix `user`")

    def current_user(self) -> UserInfo:
        return self.users[self.me]

    def resolve_exec(self, exec_: str, user: UserInfo, cwd: str, search_path: str) -> str:
        if "/" in exec_:
            path = exec_ if exec_.startswith("/") else os.path.normpath(os.path.join(cwd, exec_))
            if path in self.executables:
                return path
            raise StartFailed(f"executable {exec_!r} does not exist")
        for folder in search_path.split(":"):
            candidate = os.path.join(folder, exec_)
            if candidate in self.executables:
                return candidate
        raise StartFailed(f"executable {exec_!r} not found in PATH {search_path}")

    def is_dir(self, path: str) -> bool:
        return path in self.dirs

    def enter_problem(self, path: str, user: UserInfo) -> Optional[str]:
        return self.closed_dirs.get((path, user.name))

    def read_file(self, path: str) -> str:
        if path not in self.files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return self.files[path]

    def usage(self, pid: int) -> Tuple[Optional[float], Optional[int]]:
        proc = self.procs.get(pid)
        return (0.5, 1024 * 1024) if proc is not None and proc.alive else (None, None)

    def on_orphan(self, callback: Callable[[int], None]) -> None:
        self._orphan_callbacks.append(callback)

    # -------------------------------------------------------------- test controls

    def exit(
        self,
        pid: int,
        code: Optional[int] = 0,
        signal: Optional[int] = None,
        oom: bool = False,
        close_pipes: bool = True,
    ) -> None:
        """The fake process `pid` ends now (its main pid is 'reaped'); `close_pipes=False`: a grandchild holds them."""
        proc = self.procs[pid]
        if not proc.alive:
            raise AssertionError(f"fake pid {pid} already exited")
        proc.alive = False
        if close_pipes:
            self._close_pipes(proc)
        proc.handle.reaped = True
        proc.on_exit(ExitStatus(None if signal is not None else code, signal, oom))

    def kill_leftovers(self, pid: int) -> None:
        """The extra tree members of `pid` die (as if reaped orphans)."""
        proc = self.procs[pid]
        gone, proc.leftovers = proc.leftovers, set()
        for orphan in gone:
            for cb in list(self._orphan_callbacks):
                cb(orphan)

    def write(self, pid: int, data: bytes, stream: str = "out") -> None:
        proc = self.procs[pid]
        fd = proc.out_w if stream == "out" else proc.err_w
        assert fd is not None, "FakeOps(pipes=True) is needed to write output"
        os.write(fd, data)

    def close_pipes(self, pid: int) -> None:
        self._close_pipes(self.procs[pid])

    def alive(self) -> List[int]:
        return sorted(p.pid for p in self.procs.values() if p.alive)

    def spawns(self, worker: Optional[str] = None) -> List[Tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == "spawn" and (worker is None or c[1] == worker)]

    def close(self) -> None:
        for proc in self.procs.values():
            self._close_pipes(proc)

    def _close_pipes(self, proc: FakeProcess) -> None:
        for attr in ("out_w", "err_w"):
            fd = getattr(proc, attr)
            if fd is not None:
                os.close(fd)
                setattr(proc, attr, None)

    def _later(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.call_soon is not None:
            self.call_soon(fn, *args)
        else:
            fn(*args)

    def _exit_if_alive(self, pid: int, sig: int) -> None:
        proc = self.procs.get(pid)
        if proc is not None and proc.alive:
            self.exit(pid, signal=sig)

    def _drop_leftovers(self, proc: FakeProcess) -> None:
        if proc.leftovers:
            self.kill_leftovers(proc.pid)

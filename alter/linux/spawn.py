"""`LinuxOps`: the real ProcessOps -- spawn, reap, signal and find process trees.

Spawning (subprocess.Popen, from the loop thread only):
  * own session and process group (`start_new_session=True`), stdin /dev/null,
    stdout/stderr pipes whose read ends the engine owns (non-blocking), enlarged
    with F_SETPIPE_SZ (1 MiB for a root daemon, 256 KiB stdout-only otherwise, see
    `grow_pipe`) so a chatty child rarely blocks and each read returns more;
  * in the child, before exec, in this order: join the instance's cgroup (as
    root, so no grandchild can be forked outside it), reset ignored signals and
    the signal mask, drop to the target user (setgroups with the user's
    supplementary groups, setresgid, setresuid), PR_SET_PDEATHSIG=SIGKILL (after
    the credential change, which would clear it), and bail out if the daemon
    already died.  Popen's own `user=/group=/extra_groups=` are not used because
    Popen applies them *before* preexec_fn, which would leave the child unable
    to join a root-owned cgroup.

Reaping: SIGCHLD -> `reap()` -> `os.waitpid(-1, WNOHANG)` until nothing is
left, and the same every REAP_SWEEP seconds as a safety net.  A known pid's status goes to its instance (and its Popen object gets the
returncode, so subprocess's own cleanup never waits for it); any other pid is an
orphan that was reparented to the daemon (it is a child subreaper) and is
reported to `on_orphan` callbacks.  Daemon code must not wait for its own
helper processes with Popen.wait(): the reaper would take their status.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from alter.errors import StartFailed
from alter.linux import cgroups as cg
from alter.linux import prctl, proctree, users
from alter.linux.stats import StatsCache
from alter.supervise.ops import ExitCallback, ExitStatus, ProcessHandle, Spawned, SpawnSpec, UserInfo

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # (Python < 3.10 lacks the constants)
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
ROOT_PIPE_SIZE = 1 << 20  # the kernel's default /proc/sys/fs/pipe-max-size
USER_PIPE_SIZE = 256 << 10


def grow_pipe(fd: int, size: int) -> int:
    """Ask for a `size`-byte pipe buffer; the size the pipe has afterwards (0 if unknown).

    Pages are only used while output is waiting to be read.  A refusal (EPERM: over the
    user's pipe page budget, EINVAL: above pipe-max-size, old kernels) keeps the kernel's
    default 64 KiB silently: capture still works, the child just blocks sooner.
    """
    try:
        return fcntl.fcntl(fd, F_SETPIPE_SZ, size)
    except OSError:
        try:
            return fcntl.fcntl(fd, F_GETPIPE_SZ)
        except OSError:
            return 0


log = logging.getLogger("apm.spawn")

_RESET_SIGNALS = tuple(
    getattr(signal, name)
    for name in (
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGTERM",
        "SIGUSR1",
        "SIGUSR2",
        "SIGALRM",
        "SIGCHLD",
        "SIGTTIN",
        "SIGTTOU",
        "SIGTSTP",
        "SIGPIPE",
        "SIGXFSZ",
    )
    if hasattr(signal, name)
)
MAX_ENV_FILE = 1024 * 1024
REAP_SWEEP = 5.0  # seconds between the reaper's safety-net waitpid() calls


def child_setup(
    prctl_fn: prctl.PrctlFn,
    procs_file: Optional[str],
    cgroup_required: bool,
    creds: Optional[Tuple[int, int, Tuple[int, ...]]],
    parent_pid: int,
    cwd: Optional[str] = None,
) -> Callable[[], None]:
    """The preexec_fn: everything here runs in the forked child, before exec.

    Kept to a few syscalls (it runs on every spawn, in the restart-latency path):
    what can be decided in the parent is decided here, before the fork.
    """
    ignored = [sig for sig in _RESET_SIGNALS if signal.getsignal(sig) == signal.SIG_IGN]
    masked = bool(signal.pthread_sigmask(signal.SIG_BLOCK, []))
    procs_path = procs_file.encode() if procs_file else None

    def setup() -> None:
        if procs_path is not None:
            try:
                fd = os.open(procs_path, os.O_WRONLY)
                try:
                    os.write(fd, b"0")  # 0 = the writer itself (see Cgroups.join_file)
                finally:
                    os.close(fd)
            except OSError:
                if cgroup_required:
                    raise
        for sig in ignored:
            signal.signal(sig, signal.SIG_DFL)
        if masked:
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
        if creds is not None:
            uid, gid, groups = creds
            os.setgroups(list(groups))
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            if cwd is not None:
                # Popen's chdir ran as root; entering again as the user lets the kernel
                # (ACLs included) refuse a directory the user may not reach.
                os.chdir(cwd)
        if prctl_fn(prctl.PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
            raise OSError("prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent_pid:
            os._exit(1)  # the daemon died between fork and prctl: nobody would ever stop us

    return setup


@dataclass
class _Child:
    popen: subprocess.Popen[bytes]
    handle: ProcessHandle
    on_exit: ExitCallback


class LinuxOps:
    """ProcessOps on Linux.  Create it on the loop thread and call `install(loop)`."""

    def __init__(
        self,
        daemon_id: str,
        use_cgroups: bool = True,
        environ: Optional[Dict[str, str]] = None,
        cgroup_root: str = cg.ROOT,
    ) -> None:
        self.daemon_id = daemon_id
        self.is_root = os.geteuid() == 0
        self.daemon_env: Dict[str, str] = dict(os.environ if environ is None else environ)
        self._prctl = prctl.prctl_function()  # resolved before any fork
        self._thread = threading.get_ident()
        self._me = users.current_user()
        self.cgroups: Optional[cg.Cgroups] = None
        if use_cgroups:
            self.cgroups = (
                cg.Cgroups.detect(daemon_id, cgroup_root) if self.is_root else _user_cgroups(daemon_id, cgroup_root)
            )
        self._children: Dict[int, _Child] = {}
        self._orphan_callbacks: List[Callable[[int], None]] = []
        self._swept: Set[str] = set()
        self.stats = StatsCache()
        self.orphans_reaped = 0
        self._loop: Any = None
        self._snapshot: Optional[proctree.Snapshot] = None

    # ------------------------------------------------------------------ loop wiring

    def install(self, loop: Any) -> None:
        """Route SIGCHLD to `reap()` on the loop thread (and reap anything already waiting)."""
        loop.add_signal_handler(signal.SIGCHLD, lambda signum: self.reap())
        loop.call_soon(self.reap)
        self._loop = loop

        # A safety net: were a SIGCHLD ever missed, an exit would otherwise go unseen for good (a stop
        # waiting forever).  One waitpid() every few seconds costs nothing.
        def sweep() -> None:
            self.reap()
            loop.call_later(REAP_SWEEP, sweep)

        loop.call_later(REAP_SWEEP, sweep)

    def _scan(self, marker: str, pgid: Optional[int]) -> Set[int]:
        """proctree.scan() answered from one /proc snapshot per loop iteration.

        Stopping (or starting) N instances in one iteration used to read all of /proc N times
        (1000 instances: ~25 s of CPU); the snapshot is dropped at the next iteration.
        """
        uid = None if self.is_root else os.geteuid()
        if self._loop is None:
            return proctree.scan(marker, pgid, uid, {os.getpid()})
        if self._snapshot is None:
            self._snapshot = proctree.Snapshot(uid, {os.getpid()})
            self._loop.call_soon(self._drop_snapshot)
        return self._snapshot.find(marker, pgid)

    def _drop_snapshot(self) -> None:
        self._snapshot = None

    def on_orphan(self, callback: Callable[[int], None]) -> None:
        self._orphan_callbacks.append(callback)

    def reap(self) -> None:
        orphans = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            if pid == 0:
                break
            if os.WIFSIGNALED(status):
                code, sig = None, os.WTERMSIG(status)
            elif os.WIFEXITED(status):
                code, sig = os.WEXITSTATUS(status), None
            else:
                continue
            self.stats.forget(pid)
            child = self._children.pop(pid, None)
            if child is None:
                orphans.append(pid)
                continue
            child.popen.returncode = code if sig is None else -sig
            child.handle.reaped = True
            oom = False
            if child.handle.cgroup and self.cgroups is not None and sig == signal.SIGKILL:
                oom = self.cgroups.oom_kills(child.handle.cgroup) > child.handle.oom_base
            try:
                child.on_exit(ExitStatus(code, sig, oom))
            except Exception:
                log.exception("exit handler of pid %d failed", pid)
        self.orphans_reaped += len(orphans)
        for pid in orphans:
            for callback in list(self._orphan_callbacks):
                try:
                    callback(pid)
                except Exception:
                    log.exception("orphan callback failed")

    # ------------------------------------------------------------------ spawning

    def spawn(self, spec: SpawnSpec, on_exit: ExitCallback) -> Spawned:
        if threading.get_ident() != self._thread:
            raise RuntimeError("spawn() must run on the loop thread: PR_SET_PDEATHSIG follows the forking thread")
        group_dir, oom_base = self._prepare_cgroup(spec)
        if group_dir is None and spec.marker not in self._swept:
            self._kill_stale(self._scan(spec.marker, None), spec)
        self._swept.add(spec.marker)
        creds = None
        if spec.user is not None:
            if not self.is_root and spec.user.uid != os.geteuid():
                raise StartFailed(f"user {spec.user.name!r} needs a root daemon", hint="remove `user`")
            creds = (spec.user.uid, spec.user.gid, tuple(spec.user.groups))
        procs_file = self.cgroups.join_file(group_dir) if group_dir and self.cgroups is not None else None
        setup = child_setup(self._prctl, procs_file, bool(spec.memory_limit), creds, os.getpid(), spec.cwd)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        # Root (CAP_SYS_RESOURCE) is not held to the per-user pipe page budget; a user's daemon
        # enlarges stdout only, and less, so 100 workers stay within the budget's 64 MiB default.
        grow_pipe(out_r, ROOT_PIPE_SIZE if self.is_root else USER_PIPE_SIZE)
        if self.is_root:
            grow_pipe(err_r, ROOT_PIPE_SIZE)
        try:
            popen = subprocess.Popen(
                spec.argv,
                executable=spec.executable or None,
                cwd=spec.cwd,
                env=spec.env,
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                close_fds=True,
                start_new_session=True,
                preexec_fn=setup,
                restore_signals=True,
            )
        except BaseException as exc:
            os.close(out_r)
            os.close(err_r)
            if group_dir:
                self.cgroups.remove(group_dir)  # type: ignore[union-attr]
            if isinstance(exc, (OSError, subprocess.SubprocessError)):
                raise _spawn_error(spec, exc) from None
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        handle = ProcessHandle(pid=popen.pid, pgid=popen.pid, marker=spec.marker, cgroup=group_dir, oom_base=oom_base)
        self._children[popen.pid] = _Child(popen, handle, on_exit)
        return Spawned(popen.pid, out_r, err_r, handle)

    def _prepare_cgroup(self, spec: SpawnSpec) -> Tuple[Optional[str], int]:
        if self.cgroups is None:
            if spec.memory_limit:
                raise StartFailed(
                    f"{spec.worker}: memory_limit needs cgroups, which this daemon cannot use",
                    hint="run apm as root on a host with the cgroup memory controller, or remove memory_limit",
                )
            return None, 0
        try:
            path = self.cgroups.prepare(spec.group, spec.memory_limit)
        except OSError as exc:
            if spec.memory_limit:
                raise StartFailed(
                    f"{spec.worker}: cannot apply memory_limit {spec.memory_limit}: {exc.strerror or exc}",
                    hint="check that the cgroup memory controller is available, or remove memory_limit",
                ) from None
            log.warning("cgroup for %s unavailable (%s): tracking by marker only", spec.group, exc)
            return None, 0
        stale = self.cgroups.procs(path)
        if stale:
            self._kill_stale(stale, spec)
        return path, self.cgroups.oom_kills(path)

    def _kill_stale(self, pids: Set[int], spec: SpawnSpec) -> None:
        pids = {p for p in pids if p not in self._children and p != os.getpid()}
        if not pids:
            return
        log.warning(
            "%s#%d: killing %d left-over process(es) of an earlier run: %s",
            spec.worker,
            spec.index + 1,
            len(pids),
            sorted(pids),
        )
        for pid in pids:
            self.signal(pid, signal.SIGKILL)

    # ------------------------------------------------------------------ trees

    def kill_tree(self, handle: ProcessHandle, sig: int) -> int:
        targets = set()
        if handle.cgroup and self.cgroups is not None:
            targets |= self.cgroups.procs(handle.cgroup)
            if sig == signal.SIGKILL:
                self.cgroups.kill_all(handle.cgroup)
        targets |= self._scan(handle.marker, handle.pgid)
        if not handle.reaped:
            targets.add(handle.pid)
            try:
                os.killpg(handle.pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        targets.discard(os.getpid())
        return sum(1 for pid in targets if self.signal(pid, sig))

    def signal(self, pid: int, sig: int) -> bool:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def alive_pids(self, handle: ProcessHandle) -> Set[int]:
        if handle.cgroup and self.cgroups is not None:
            pids = {p for p in self.cgroups.procs(handle.cgroup) if proctree.is_alive(p)}
        else:
            pids = {p for p in self._scan(handle.marker, handle.pgid) if proctree.is_alive(p)}
        if not handle.reaped:
            pids.add(handle.pid)
        else:
            pids.discard(handle.pid)
        pids.discard(os.getpid())
        return pids

    def release(self, handle: ProcessHandle) -> None:
        if handle.cgroup and self.cgroups is not None:
            self.cgroups.remove(handle.cgroup)

    # ------------------------------------------------------------------ lookups

    def wall(self) -> float:
        return time.time()

    def lookup_user(self, name: str) -> UserInfo:
        return users.lookup_user(name)

    def current_user(self) -> UserInfo:
        return self._me

    def resolve_exec(self, exec_: str, user: UserInfo, cwd: str, search_path: str) -> str:
        return users.resolve_exec(exec_, user, cwd, search_path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def enter_problem(self, path: str, user: UserInfo) -> Optional[str]:
        return users.enter_problem(path, user)

    def read_file(self, path: str) -> str:
        with open(path, "rb") as f:
            data = f.read(MAX_ENV_FILE + 1)
        if len(data) > MAX_ENV_FILE:
            raise OSError(errno.EFBIG, f"larger than {MAX_ENV_FILE} bytes", path)
        return data.decode("utf-8", "replace")

    def usage(self, pid: int) -> Tuple[Optional[float], Optional[int]]:
        return self.stats.sample(pid)

    def close(self) -> None:
        """Daemon exit: remove this daemon's (empty) cgroups."""
        if self.cgroups is not None:
            self.cgroups.cleanup()


def _user_cgroups(daemon_id: str, root: str) -> Optional[cg.Cgroups]:
    """A non-root daemon may use a delegated v2 subtree (systemd --user); v1 is root-only."""
    if not os.path.exists(os.path.join(root, "cgroup.controllers")):
        return None
    try:
        return cg.Cgroups.detect(daemon_id, root)
    except OSError:
        return None


def _spawn_error(spec: SpawnSpec, exc: BaseException) -> StartFailed:
    label = f"{spec.worker}#{spec.index + 1}"
    if isinstance(exc, subprocess.SubprocessError):
        who = f", switching to user {spec.user.name} or entering {spec.cwd} as that user" if spec.user else ""
        return StartFailed(
            f"cannot start {label}: preparing the child failed (joining its cgroup{who})",
            hint="see the daemon log; check the user and the cgroup setup",
        )
    assert isinstance(exc, OSError)
    filename = exc.filename if isinstance(exc.filename, str) else spec.executable
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOEXEC:
        return StartFailed(
            f"cannot start {label}: {filename} is not a program this system can run ({reason})",
            hint="a script needs a #! line (e.g. #!/bin/sh), or set exec to its interpreter",
        )
    if filename == spec.cwd:
        return StartFailed(
            f"cannot start {label}: cannot enter path {spec.cwd}: {reason}",
            hint="fix `path`, or give the worker's user access to it",
        )
    return StartFailed(
        f"cannot start {label}: {filename}: {reason}", hint="check `exec` and that the worker's user may run it"
    )

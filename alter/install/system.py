"""The installer's view of the machine: where files go, and the OS calls it makes.

`Layout` maps the real paths (/usr/sbin/apm, /etc/apm...) under an install
root.  The root is "/" for a real install.  APM_INSTALL_ROOT=DIR is a test
seam, not a product feature (like DESTDIR): every path moves under DIR, the
`apm` group is written into DIR/etc/group instead of running groupadd, no
service is started or stopped and no host tool (systemctl, update-rc.d,
rc-update) runs.  Service files still name the real paths (/usr/sbin/apm),
since they describe the tree as it would be on a machine.

`System` wraps the calls tests fake (commands, chown, signals, euid);
`Groups` creates/removes the `apm` group.
"""

from __future__ import annotations

import errno
import grp
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import List, Mapping, Optional, Tuple

from alter.install.detect import SYSTEM_PATH, describe_mount, is_erofs, mount_point
from alter.install.errors import InstallError

GROUP = "apm"


@dataclass(frozen=True)
class Layout:
    root: str = "/"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Layout:
        root = env.get("APM_INSTALL_ROOT", "").strip()
        return cls(os.path.abspath(root) if root else "/")

    @property
    def real(self) -> bool:
        """Installing onto this machine (not into a test prefix)."""
        return self.root == "/"

    def p(self, path: str) -> str:
        """The on-disk location of the real path `path`."""
        if self.real:
            return path
        return os.path.join(self.root, path.lstrip("/"))


class System:
    """OS calls the installer makes; unit tests substitute a fake."""

    def euid(self) -> int:
        return os.geteuid()

    def user_name(self) -> str:
        try:
            import pwd

            return pwd.getpwuid(os.geteuid()).pw_name
        except (KeyError, ImportError):
            return str(os.geteuid())

    def which(self, name: str) -> Optional[str]:
        return shutil.which(name, path=SYSTEM_PATH + ":" + os.environ.get("PATH", ""))

    def run(self, argv: List[str], check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
        """Run a command (no stdin: install.sh may be piped into bash); raise InstallError if it fails."""
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError as exc:
            if not check:
                return subprocess.CompletedProcess(argv, 127, "", str(exc))
            raise InstallError(f"`{argv[0]}` is not installed", hint="install it, or re-run after fixing PATH") from exc
        except subprocess.TimeoutExpired as exc:
            raise InstallError(
                f"`{' '.join(argv)}` did not finish within {timeout:.0f}s", hint="check the service manager's state"
            ) from exc
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()
            raise InstallError(
                f"`{' '.join(argv)}` failed with exit code {proc.returncode}" + (f": {detail}" if detail else ""),
                hint="fix the cause above and re-run the installer (it is safe to run again)",
            )
        return proc

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(path, uid, gid, follow_symlinks=False)

    def kill(self, pid: int, sig: int) -> bool:
        try:
            os.kill(pid, sig)
            return True
        except ProcessLookupError:
            return False

    def cmdline(self, pid: int) -> List[str]:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                raw = f.read()
        except OSError:
            return []
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]

    def alive(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


# --------------------------------------------------------------------------- files


def write_file(path: str, data: bytes, mode: int, owner: Tuple[int, int], system: System) -> None:
    """Atomically replace `path`: temp file in the same folder, fsync, chmod/chown, rename."""
    folder = os.path.dirname(path)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.new{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        system.chown(tmp, *owner)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise file_error(path, exc, "write") from exc
    fsync_dir(folder)


def fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_error(path: str, exc: OSError, action: str) -> InstallError:
    """Turn an OSError on `path` into a message that says what to do."""
    if is_erofs(exc):
        return InstallError(
            f"cannot {action} {path}: it is on a read-only filesystem ({describe_mount(path)})",
            hint=f"remount it read-write (`mount -o remount,rw {mount_point(path)}`) and re-run the installer",
            exit_code=InstallError.READ_ONLY,
        )
    if exc.errno == errno.ENOSPC:
        hint = "free some space on that filesystem and re-run the installer"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        hint = "check the folder's permissions and attributes (`lsattr -d`, immutable flag) and re-run as root"
    else:
        hint = "fix the cause and re-run the installer (it is safe to run again)"
    return InstallError(f"cannot {action} {path}: {exc.strerror or exc}", hint=hint)


def make_dir(
    path: str,
    mode: int,
    owner: Tuple[int, int],
    system: System,
    fix: bool = True,
    created: Optional[List[str]] = None,
) -> bool:
    """Create `path` (and parents, 0755 root) if missing; set mode/owner when created (or `fix`).

    True if created; every folder created is appended to `created` (uninstall removes them when empty).
    """
    made = False
    if not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent != path and not os.path.isdir(parent):
            make_dir(parent, 0o755, (0, 0), system, fix=False, created=created)
        try:
            os.mkdir(path, mode)
            made = True
        except FileExistsError:
            pass
        except OSError as exc:
            raise file_error(path, exc, "create folder") from exc
        if made and created is not None:
            created.append(path)
    if made or fix:
        try:
            system.chown(path, *owner)
            os.chmod(path, mode)
        except OSError as exc:
            raise file_error(path, exc, "set owner/mode of") from exc
    return made


def remove_empty_dirs(paths: List[str]) -> List[str]:
    """rmdir each folder that is empty, deepest first; return the ones removed."""
    removed = []
    for path in sorted(set(paths), key=lambda p: p.count("/"), reverse=True):
        try:
            os.rmdir(path)
            removed.append(path)
        except OSError:
            continue
    return removed


def remove_path(path: str) -> bool:
    """Remove a file, symlink or folder tree; True if something was there."""
    try:
        if os.path.islink(path) or not os.path.isdir(path):
            os.unlink(path)
        else:
            shutil.rmtree(path)
        return True
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise file_error(path, exc, "remove") from exc


# --------------------------------------------------------------------------- group


class Groups:
    """The `apm` group: groupadd/addgroup on a real root, /etc/group editing under a prefix."""

    SYSTEM_GID_RANGE = (100, 999)

    def __init__(self, layout: Layout, system: System) -> None:
        self.layout = layout
        self.system = system

    def gid(self, name: str = GROUP) -> Optional[int]:
        if self.layout.real:
            try:
                return grp.getgrnam(name).gr_gid
            except KeyError:
                pass
        for entry in self._read("/etc/group"):
            if entry[0] == name:
                try:
                    return int(entry[2])
                except (IndexError, ValueError):
                    return None
        return None

    def ensure(self, name: str = GROUP) -> Tuple[int, bool]:
        """(gid, created)."""
        gid = self.gid(name)
        if gid is not None:
            return gid, False
        if self.layout.real:
            tried = self._run_first(
                [["groupadd", "--system", name], ["addgroup", "--system", name], ["addgroup", "-S", name]]
            )
            gid = self.gid(name)
            if gid is not None:
                return gid, True
            if tried:
                raise InstallError(
                    f"could not create the group {name!r}: {tried}",
                    hint=f"create it by hand (`groupadd --system {name}`) and re-run the installer",
                )
        # Test prefix, or no group tool at all (a stripped container): edit the files.
        self._add_to_files(name)
        gid = self.gid(name)
        if gid is None:
            raise InstallError(
                f"could not create the group {name!r} in {self.layout.p('/etc/group')}",
                hint=f"create it by hand (`groupadd --system {name}`) and re-run the installer",
            )
        return gid, True

    def remove(self, name: str = GROUP) -> bool:
        """Remove the group; False if it did not exist.  Raises InstallError if groupdel refuses."""
        if self.gid(name) is None:
            return False
        tried = self._run_first([["groupdel", name], ["delgroup", name]]) if self.layout.real else ""
        if self.gid(name) is None:
            return True
        if tried:
            raise InstallError(
                f"could not remove the group {name!r}: {tried}",
                hint=f"remove it by hand (`groupdel {name}`), e.g. once no user has it as primary group",
            )
        self._remove_from_files(name)
        return True

    def _run_first(self, commands: List[List[str]]) -> str:
        """Run the first command that exists and succeeds; "" if one did or none exists, else the last error."""
        error = ""
        for argv in commands:
            tool = self.system.which(argv[0])
            if not tool:
                continue
            proc = self.system.run([tool, *argv[1:]], check=False)
            if proc.returncode == 0:
                return ""
            error = f"`{' '.join(argv)}` exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}"
        return error

    # -- /etc/group editing (prefix installs, and hosts without groupadd/addgroup)

    def _read(self, rel: str) -> List[List[str]]:
        try:
            with open(self.layout.p(rel)) as f:
                return [line.rstrip("\n").split(":") for line in f if line.strip()]
        except OSError:
            return []

    def _write(self, rel: str, entries: List[List[str]]) -> None:
        path = self.layout.p(rel)
        try:
            st = os.stat(path)
            mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
        except OSError:
            mode, owner = (0o640 if rel.endswith("gshadow") else 0o644), (0, 0)
        data = "".join(":".join(e) + "\n" for e in entries).encode()
        write_file(path, data, mode, owner, self.system)

    def _add_to_files(self, name: str) -> None:
        entries = self._read("/etc/group")
        used = set()
        for e in entries:
            try:
                used.add(int(e[2]))
            except (IndexError, ValueError):
                continue
        low, high = self.SYSTEM_GID_RANGE
        gid = next((g for g in range(high, low - 1, -1) if g not in used), None)
        if gid is None:
            raise InstallError(
                f"no free system group id in {low}-{high} for the group {name!r}",
                hint=f"create it by hand (`groupadd --system {name}`) and re-run the installer",
            )
        make_dir(os.path.dirname(self.layout.p("/etc/group")), 0o755, (0, 0), self.system, fix=False)
        self._write("/etc/group", entries + [[name, "x", str(gid), ""]])
        if os.path.exists(self.layout.p("/etc/gshadow")):
            self._write("/etc/gshadow", self._read("/etc/gshadow") + [[name, "!", "", ""]])

    def _remove_from_files(self, name: str) -> None:
        for rel in ("/etc/group", "/etc/gshadow"):
            entries = self._read(rel)
            kept = [e for e in entries if e[0] != name]
            if len(kept) != len(entries):
                self._write(rel, kept)


def terminate(system: System, pid: int, timeout: float) -> bool:
    """SIGTERM `pid`, wait up to `timeout` s, then SIGKILL.  True if it had to be killed."""
    if not system.kill(pid, signal.SIGTERM):
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not system.alive(pid):
            return False
        system.sleep(0.05)
    system.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if not system.alive(pid):
            break
        system.sleep(0.05)
    return True


def read_pid(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 1 else None


def looks_like_daemon(argv: List[str]) -> bool:
    """`[python] .../apm daemon ...`: the apm file followed by the daemon command."""
    return any(os.path.basename(arg) == "apm" and "daemon" in argv[i + 1 :] for i, arg in enumerate(argv[:-1]))

"""What the host looks like: init system, python, distro, mount flags.

Read-only probes used by the installer; nothing here changes the system.
Every probe that looks at a path takes the install root (`Layout.root`) so
`APM_INSTALL_ROOT` tests probe their temp tree, not the real host.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

from alter.install.errors import InstallError, UsageError

MIN_PYTHON = (3, 9)
INIT_CHOICES = ("systemd", "openrc", "sysv", "none")
# Where a system service should find its interpreter: system dirs first.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class InitSystem:
    """The init system apm registers with.

    kind: "systemd", "openrc", "sysv", "none" (APM_INIT=none: no service on
    purpose) or "unknown" (nothing detected).  running: the init system is
    managing this machine right now, so the service can be started; False in a
    chroot/container or a root-prefix install (enable only).
    """

    kind: str
    running: bool
    why: str  # how it was decided, for the summary line


def _exists(root: str, path: str) -> bool:
    return os.path.lexists(os.path.join(root, path.lstrip("/")))


def _systemd_running(root: str) -> bool:
    return root == "/" and os.path.isdir("/run/systemd/system")


def _openrc_running(root: str) -> bool:
    return root == "/" and os.path.exists("/run/openrc/softlevel")


def _sysv_running(root: str) -> bool:
    """A SysV-style init (sysvinit, busybox init) is PID 1 of this machine."""
    if root != "/":
        return False
    if os.path.exists("/run/initctl") or os.path.exists("/dev/initctl"):
        return True
    try:
        with open("/proc/1/comm") as f:
            comm = f.read().strip()
    except OSError:
        return False
    return comm == "init" and not os.path.isdir("/run/systemd/system")


def init_running(kind: str, root: str = "/") -> bool:
    """Is `kind` managing this machine right now (so its service can be started/stopped)?"""
    probe = {"systemd": _systemd_running, "openrc": _openrc_running, "sysv": _sysv_running}.get(kind)
    return bool(probe and probe(root))


def _which(root: str, name: str) -> Optional[str]:
    """Find a command inside the install root (host PATH when root is /)."""
    if root == "/":
        return shutil.which(name, path=SYSTEM_PATH + ":" + os.environ.get("PATH", ""))
    for d in SYSTEM_PATH.split(":"):
        candidate = os.path.join(root, d.lstrip("/"), name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def detect_init(env: Mapping[str, str], root: str = "/") -> InitSystem:
    """Pick the init system: APM_INIT if set, else probe (see docs/install.md)."""
    forced = env.get("APM_INIT", "").strip().lower()
    if forced:
        if forced not in INIT_CHOICES:
            raise UsageError(
                f"APM_INIT={forced!r} is not an init system apm knows",
                hint="set APM_INIT to one of " + ", ".join(INIT_CHOICES) + ", or unset it to auto-detect",
            )
        return InitSystem(forced, init_running(forced, root), f"APM_INIT={forced}")
    if _exists(root, "/run/systemd/system"):
        return InitSystem("systemd", _systemd_running(root), "/run/systemd/system exists")
    if _exists(root, "/run/openrc"):
        return InitSystem("openrc", _openrc_running(root), "/run/openrc exists")
    if _which(root, "openrc-run"):
        return InitSystem("openrc", _openrc_running(root), "openrc-run is installed")
    # systemd installed but not PID 1: a chroot, an image being built, a container.
    if _which(root, "systemctl") and (
        _exists(root, "/lib/systemd/systemd") or _exists(root, "/usr/lib/systemd/systemd")
    ):
        return InitSystem("systemd", False, "systemd is installed but not running (chroot or container)")
    if os.path.isdir(os.path.join(root, "etc/init.d")):
        return InitSystem("sysv", _sysv_running(root), "/etc/init.d exists")
    return InitSystem("unknown", False, "no /run/systemd/system, no OpenRC, no /etc/init.d")


# --------------------------------------------------------------------------- python


def python_version(python: str) -> Optional[Tuple[int, int, int]]:
    """Run `python` and ask its version; None when it does not run."""
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    try:
        major, minor, micro = (int(x) for x in out.stdout.strip().split("."))
    except ValueError:
        return None
    return (major, minor, micro)


def real_executable(python: str) -> str:
    """The interpreter's own path (`sys.executable`): a pyenv/asdf shim must not end up in a service file."""
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(sys.executable)"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return python
    path = out.stdout.strip()
    return path if out.returncode == 0 and os.path.isabs(path) and os.access(path, os.X_OK) else python


def in_chroot() -> bool:
    """True inside a chroot: / is not the root of PID 1 (then we never start daemons)."""
    try:
        root, init_root = os.stat("/"), os.stat("/proc/1/root")
        return (root.st_dev, root.st_ino) != (init_root.st_dev, init_root.st_ino)
    except OSError:
        pass  # /proc/1/root is unreadable in some sandboxes even for root
    try:
        with open("/proc/self/mountinfo") as f:
            # Mounts outside our root are hidden: a chroot into a folder has no mount at "/".
            return not any(len(fields) > 4 and fields[4] == "/" for fields in (line.split() for line in f))
    except OSError:
        return True  # no /proc: assume a build root, where starting daemons is wrong


def stable_python(python: str, env_path: Optional[str] = None) -> str:
    """Prefer the `python3` name when it is the same interpreter as `python`.

    /usr/bin/python3 survives a distro upgrade (3.11 -> 3.13); /usr/bin/python3.11
    does not.  So when `python3` on the system PATH resolves to the same file, the
    service and the shebang use it instead.
    """
    generic = shutil.which("python3", path=env_path or SYSTEM_PATH)
    if generic and os.path.realpath(generic) == os.path.realpath(python):
        return generic
    return python


def choose_python(requested: Optional[str], running: str) -> Tuple[str, Tuple[int, int, int]]:
    """The interpreter the service runs: --python if given, else the one running us."""
    candidate = requested or running
    if os.sep not in candidate:
        found = shutil.which(candidate, path=SYSTEM_PATH + ":" + os.environ.get("PATH", ""))
        if not found:
            raise InstallError(
                f"--python {candidate}: no such command on PATH",
                hint="pass the absolute path of a Python 3.9 or newer, e.g. --python /usr/bin/python3",
                exit_code=InstallError.NO_PYTHON,
            )
        candidate = found
    candidate = os.path.abspath(candidate)
    version = python_version(candidate)
    if version is None:
        raise InstallError(
            f"--python {candidate}: it does not run as a Python interpreter",
            hint="pass the absolute path of a Python 3.9 or newer, e.g. --python /usr/bin/python3",
            exit_code=InstallError.NO_PYTHON,
        )
    if version[:2] < MIN_PYTHON:
        raise InstallError(
            f"--python {candidate} is Python {'.'.join(map(str, version))}; apm needs 3.9 or newer",
            hint=python_install_hint(read_os_release()),
            exit_code=InstallError.NO_PYTHON,
        )
    return stable_python(real_executable(candidate)), version


def env_python3_ok() -> bool:
    """Would `#!/usr/bin/env python3` (system PATH) pick a Python >= 3.9?"""
    generic = shutil.which("python3", path=SYSTEM_PATH)
    if not generic:
        return False
    version = python_version(generic)
    return version is not None and version[:2] >= MIN_PYTHON


def read_os_release(root: str = "/") -> Dict[str, str]:
    info: Dict[str, str] = {}
    for path in ("etc/os-release", "usr/lib/os-release"):
        try:
            with open(os.path.join(root, path)) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            key, sep, value = line.partition("=")
            if sep:
                info[key.strip()] = value.strip().strip("\"'")
        break
    return info


def python_install_hint(os_release: Mapping[str, str]) -> str:
    """The exact command that gets a Python >= 3.9 on this distro (install.sh has the same table)."""
    ids = [os_release.get("ID", "")] + os_release.get("ID_LIKE", "").split()
    major = os_release.get("VERSION_ID", "").split(".")[0]
    version_id = os_release.get("VERSION_ID", "")
    first = ids[0]
    if first == "ubuntu" and version_id in ("18.04", "20.04"):
        return "apt-get install -y python3.9"
    if first in ("rhel", "centos", "rocky", "almalinux", "ol") and major == "8":
        return "dnf install -y python39"
    if first in ("sles", "opensuse-leap"):
        return "zypper install -y python311"
    table = [
        (("debian", "ubuntu", "raspbian", "linuxmint", "devuan"), "apt-get install -y python3"),
        (("fedora", "rhel", "centos", "rocky", "almalinux", "ol", "amzn"), "dnf install -y python3"),
        (("alpine",), "apk add python3"),
        (("arch", "manjaro", "endeavouros"), "pacman -S --noconfirm python"),
        (("opensuse", "opensuse-tumbleweed", "suse"), "zypper install -y python3"),
        (("gentoo",), "emerge dev-lang/python"),
        (("void",), "xbps-install -y python3"),
    ]
    for distro_id in ids:
        for names, command in table:
            if distro_id in names:
                return command
    return "install Python 3.9 or newer with your package manager (the package is usually `python3`)"


# --------------------------------------------------------------------------- mounts


@dataclass(frozen=True)
class MountInfo:
    mount_point: str
    options: Tuple[str, ...]


def existing_ancestor(path: str) -> str:
    """`path` itself or its nearest existing parent directory."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out: List[str] = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_of(path: str, mountinfo: str = "/proc/self/mountinfo") -> Optional[MountInfo]:
    """The mount holding `path` (longest mount-point prefix), or None."""
    target = os.path.realpath(path)
    best: Optional[MountInfo] = None
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 6:
            continue
        point = _unescape(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/") or point == "/"
        if inside and (best is None or len(point) >= len(best.mount_point)):
            best = MountInfo(point, tuple(fields[5].split(",")))
    return best


def is_read_only(path: str) -> bool:
    """The filesystem that holds (or would hold) `path` is mounted read-only."""
    try:
        return bool(os.statvfs(existing_ancestor(path)).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def is_noexec(path: str) -> bool:
    """Files under `path` could not be executed or mmap'ed PROT_EXEC (noexec mount)."""
    try:
        return bool(os.statvfs(existing_ancestor(path)).f_flag & os.ST_NOEXEC)
    except OSError:
        return False


def mount_point(path: str) -> str:
    """The mount point holding `path` ("<mount point>" when /proc is not readable)."""
    info = mount_of(path)
    return info.mount_point if info else "<mount point>"


def describe_mount(path: str) -> str:
    info = mount_of(path)
    if info is None:
        return "its filesystem"
    return f"mount {info.mount_point} ({','.join(info.options)})"


def is_erofs(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EROFS

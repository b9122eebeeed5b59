"""Make the bundled native modules (psutil, argon2, cffi) importable.

`dist/apm` is a zipapp; Python cannot load a `.so` from inside a zip, so the
daemon (and anything else needing psutil/argon2) calls `ensure_native()` first:

    from alter.native import ensure_native
    ensure_native()
    import psutil

From the zip it extracts the zip's `site-packages/` once (shiv's layout:
`<root>/apm_<build id>/site-packages`, atomically, under a lock, .py files
pre-compiled), then puts that folder first on `sys.path`.  Roots, best first:
`$SHIV_ROOT` (else `/var/lib/apm/shiv`, used only if the installer already
extracted there), `~/.shiv`, `$TMPDIR/apm-shiv-<uid>`.  The zipapp bootstrap
(`__main__.py`, written by build.py) looks in the same places, so once an
extraction exists every later `apm` run imports from it.

Running from an extraction or from a source checkout, nothing needs doing: the
native modules are already importable (or installed in the environment).
The CLI never calls this: it must start fast.
"""

from __future__ import annotations

import os
import sys
from typing import List, Mapping, Optional

from alter.errors import ApmError
from alter.paths import SHIV_ROOT

EXTRACT_NAME = "apm"  # extraction folder prefix: <root>/apm_<build id>; build.py bakes it into the bootstrap
# Never imported by apm at run time (cffi's python half and pycparser only serve cffi's compiler), or not ours to run.
_NOT_COMPILED = ("alter/web_assets", "alter/connectors", "cffi", "pycparser")


class NativeError(ApmError):
    """The bundled native modules cannot be made available on this host."""


def archive_path() -> Optional[str]:
    """The zipapp this module was imported from, or None (extraction or source checkout)."""
    archive = getattr(globals().get("__loader__"), "archive", None)
    return os.path.abspath(archive) if isinstance(archive, str) else None


def extraction_roots(env: Optional[Mapping[str, str]] = None) -> List[str]:
    """Where an extraction may live, best first (the bootstrap in build.py uses the same order)."""
    environ = os.environ if env is None else env
    first = environ.get("SHIV_ROOT") or SHIV_ROOT
    tmp = os.path.join(environ.get("TMPDIR") or "/tmp", f"apm-shiv-{os.geteuid()}")
    return [first, os.path.join(os.path.expanduser("~"), ".shiv"), tmp]


def site_packages_dir(root: str, build_id: str) -> str:
    return os.path.join(root, f"{EXTRACT_NAME}_{build_id}", "site-packages")


def build_id_of(archive: str) -> str:
    """shiv's build id (sha256 of the bundled site-packages), from the archive's environment.json."""
    import json
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        return str(json.loads(zf.read("environment.json"))["build_id"])


def _private_dir(path: str) -> bool:
    """True if `path` is a folder owned by us that nobody else can write (guards the shared tmp dir)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _usable_root(root: str, is_tmp: bool) -> bool:
    try:
        os.makedirs(root, mode=0o700 if is_tmp else 0o755, exist_ok=True)
    except OSError:
        return False
    if is_tmp and not _private_dir(root):
        return False
    try:
        if os.statvfs(root).f_flag & os.ST_NOEXEC:
            return False  # the .so files could not be loaded from there
    except OSError:
        return False
    return os.access(root, os.W_OK | os.X_OK)


def extract(archive: str, root: str, build_id: Optional[str] = None) -> str:
    """Extract the archive's site-packages under `root` unless already there; return its path.

    Safe against concurrent callers (flock on `<root>/.apm_<id>_lock`); the
    folder appears atomically (rename) with its .pyc files already written.
    Raises OSError when `root` is not writable.
    """
    import fcntl

    build_id = build_id or build_id_of(archive)
    site = site_packages_dir(root, build_id)
    if os.path.isdir(site):
        return site
    parent = os.path.dirname(site)
    os.makedirs(parent, mode=0o755, exist_ok=True)
    lock_path = os.path.join(root, f".{EXTRACT_NAME}_{build_id}_lock")
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if os.path.isdir(site):
            return site
        import shutil

        for stale in os.listdir(parent):  # left by an extraction that died half-way
            if stale.startswith(".site-packages."):
                shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
        tmp = os.path.join(parent, f".site-packages.{os.getpid()}")
        try:
            _unpack(archive, tmp)
            _compile(tmp, site)
            _fix_modes(tmp)
            os.rename(tmp, site)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return site


def _unpack(archive: str, dest: str) -> None:
    import shutil
    import zipfile

    prefix = "site-packages/"
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = info.filename
            if not name.startswith(prefix) or name.endswith("/"):
                continue
            rel = name[len(prefix) :]
            if rel.startswith("/") or ".." in rel.split("/"):
                raise NativeError(f"{archive}: unsafe path {name!r} in the archive", hint="rebuild it with build.py")
            path = os.path.join(dest, *rel.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with zf.open(info) as src, open(path, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)


def _compile(tmp: str, final: str) -> None:
    """Write .pyc for this interpreter; tracebacks name the final path, not the temp one."""
    import compileall
    import py_compile
    import re

    skip = re.compile(re.escape(tmp) + "/(?:" + "|".join(re.escape(p) for p in _NOT_COMPILED) + ")/")
    compileall.compile_dir(
        tmp,
        ddir=final,
        quiet=2,
        rx=skip,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,  # content-addressed folder: never stale
    )


def _fix_modes(top: str) -> None:
    """Readable by every user whatever the umask (the system extraction is shared)."""
    os.chmod(top, 0o755)
    for dirpath, dirnames, filenames in os.walk(top):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)


def _activate(site: str) -> None:
    """Put an extraction first on sys.path; later `alter.*` imports come from it too (cached .pyc)."""
    if site not in sys.path:
        sys.path.insert(0, site)
    import alter

    pkg = os.path.join(site, "alter")
    if pkg not in alter.__path__:
        alter.__path__.insert(0, pkg)
    import importlib

    importlib.invalidate_caches()


def _check_interpreter(site: str) -> None:
    import importlib.machinery

    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    if not os.path.exists(os.path.join(site, "_cffi_backend" + suffix)):
        import platform

        version = platform.python_version()
        raise NativeError(
            f"this apm build has no native modules for {platform.python_implementation()} {version} "
            f"on {platform.machine()} (module suffix {suffix})",
            hint="run apm with CPython 3.9-3.14 on x86_64 or aarch64 glibc Linux, e.g. `python3.12 /usr/sbin/apm`",
        )


def ensure_native() -> None:
    """Make psutil, argon2 and cffi importable; a no-op outside the zipapp.  See the module doc."""
    archive = archive_path()
    if archive is None:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if os.path.basename(here) == "site-packages" and os.path.basename(os.path.dirname(here)).startswith(
            EXTRACT_NAME + "_"
        ):
            _check_interpreter(here)  # running from an extraction: natives are beside us, if built for us
        return
    build_id = build_id_of(archive)
    roots = extraction_roots()
    site = None
    for i, root in enumerate(roots):
        candidate = site_packages_dir(root, build_id)
        if os.path.isdir(candidate) and (i < len(roots) - 1 or _private_dir(root)):
            site = candidate
            break
    errors = []
    if site is None:
        for i, root in enumerate(roots):
            if root == SHIV_ROOT and not os.environ.get("SHIV_ROOT"):
                continue  # the system root is the installer's to fill
            if not _usable_root(root, is_tmp=i == len(roots) - 1):
                errors.append(f"{root}: not a writable, private, exec-mounted folder")
                continue
            try:
                site = extract(archive, root, build_id)
                break
            except OSError as exc:
                errors.append(f"{root}: {exc.strerror or exc}")
    if site is None:
        raise NativeError(
            f"cannot extract the native modules of {archive} ({'; '.join(errors)})",
            hint="set SHIV_ROOT to a writable folder on a filesystem not mounted noexec",
        )
    _check_interpreter(site)
    _activate(site)

"""The bundled native libraries: pre-extracting them for the service, removing old extractions.

`apm install` runs `SHIV_ROOT=<dir> <python> /usr/sbin/apm install --extract-only`
from the freshly installed file: that child (`extract_only`) unpacks the
zip's site-packages with alter.native (the layout the zipapp bootstrap looks
for: `<dir>/apm_<build id>/site-packages`), writes .pyc for the service's
Python, then imports psutil and argon2 to prove they load on this host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from typing import Dict, Optional, Set, TextIO

from alter import native
from alter.install.errors import InstallError
from alter.install.system import remove_path

FALLBACK_SHIV_ROOT = "/usr/lib/apm/shiv"  # used when /var/lib/apm is on a noexec mount


def run_extract(python: str, binary: str, shiv_dir: str) -> Dict[str, object]:
    """Run the child; return its report (site, build_id, version...) or raise InstallError.

    Run with the service's interpreter so the .pyc files are the ones it loads.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["SHIV_ROOT"] = shiv_dir
    argv = [python, binary, "install", "--extract-only"]
    try:
        proc = subprocess.run(
            argv, env=env, cwd="/", stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise InstallError(f"could not run `{' '.join(argv)}`: {exc}", hint="check that the Python above runs") from exc
    info: Optional[Dict[str, object]] = None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            try:
                info = json.loads(line)
            except ValueError:
                continue
            break
    if proc.returncode != 0 or info is None:
        detail = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise InstallError(
            f"`SHIV_ROOT={shiv_dir} {' '.join(argv)}` failed (exit {proc.returncode}): {detail}",
            hint="the installed file does not run with this Python; pass another one with --python, or rebuild apm",
        )
    if info.get("native") != "ok":
        raise InstallError(
            f"the bundled native libraries do not load with {python} from {info.get('site')}: {info.get('native')}",
            hint="use a CPython 3.9-3.14 on x86_64/aarch64 glibc Linux (--python), and a --shiv-root "
            "that is not on a noexec mount",
        )
    return info


def remove_extractions(folder: str, keep: Set[str]) -> int:
    """Remove every `apm_<id>` extraction (and lock) in `folder` not named in `keep`; count them."""
    prefix = native.EXTRACT_NAME + "_"
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    removed = 0
    for name in names:
        ours = name.startswith(prefix) or (name.startswith("." + prefix) and name.endswith("_lock"))
        if ours and name not in keep:
            remove_path(os.path.join(folder, name))
            removed += not name.startswith(".")
    return removed


def keep_names(build_id: str) -> Set[str]:
    """The folder and lock file of one build's extraction."""
    return {f"{native.EXTRACT_NAME}_{build_id}", f".{native.EXTRACT_NAME}_{build_id}_lock"}


def extract_only(out: TextIO) -> int:
    """Child side of `Installer.extract`: extract into $SHIV_ROOT, prove the native modules load, print JSON."""
    import importlib
    import platform

    archive = native.archive_path() or (os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else "")
    root = os.environ.get("SHIV_ROOT", "")
    if not root or not archive or not zipfile.is_zipfile(archive):
        print(f"--extract-only needs SHIV_ROOT and must run from the apm zipapp (got {archive!r})", file=sys.stderr)
        return 2
    import alter

    build_id = native.build_id_of(archive)
    result: Dict[str, object] = {
        "build_id": build_id,
        "version": getattr(alter, "__version__", ""),
        "python": sys.executable,
        "python_version": platform.python_version(),
    }
    try:
        result["site"] = native.extract(archive, root, build_id)
    except OSError as exc:
        print(f"cannot extract {archive} into {root}: {exc}", file=sys.stderr)
        return 1
    try:
        native.ensure_native()
        for module in ("psutil", "argon2"):
            importlib.import_module(module)
        result["native"] = "ok"
    except Exception as exc:  # report any failure to the parent, which explains it
        result["native"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(result), file=out, flush=True)
    return 0

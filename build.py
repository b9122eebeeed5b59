#!/usr/bin/env python3
"""Build `dist/apm`: one executable shiv zipapp for CPython 3.9-3.14 on x86_64 and aarch64 Linux.

    python3 build.py [--out dist/apm] [--vendor vendor]

Offline by design: every dependency comes from the wheels committed under
`vendor/` (checked against `vendor/wheels.lock` first), and shiv itself runs
straight from its vendored wheel.  Steps (see docs/build.md):

1. verify every wheel's sha256 against vendor/wheels.lock;
2. unpack the runtime wheels into a staging site-packages: every CPython's
   `_cffi_backend.cpython-3XX-<arch>-linux-gnu.so`, and each `*.abi3.so` copied
   to per-version, per-arch names so x86_64 and aarch64 builds coexist;
3. copy `alter/` and the GUI (`web/` -> `alter/web_assets/`) into it;
4. `shiv --site-packages <staging> --reproducible` (build id = sha256 of the content);
5. rewrite the zip: our tiny `__main__.py` bootstrap replaces shiv's (fast CLI
   start), fixed timestamps and permissions, sorted entries, deflate.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import time
import zipfile
from typing import Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.abspath(__file__))
SHEBANG = b"#!/usr/bin/env python3\n"
ENTRY_POINT = "alter.__main__:main"
PY_VERSIONS = ["39", "310", "311", "312", "313", "314"]
ARCHES = {"x86_64": 62, "aarch64": 183}  # arch name in the module suffix -> ELF e_machine
# Native modules every (CPython, arch) pair must have, relative to site-packages, without the suffix.
NATIVE_MODULES = ["_cffi_backend", "psutil/_psutil_linux", "_argon2_cffi_bindings/_ffi"]
PURE_PACKAGES = ["argon2/__init__.py", "cffi/__init__.py", "pycparser/__init__.py", "psutil/__init__.py"]
DEFAULT_EPOCH = 315532800  # 1980-01-01, used when SOURCE_DATE_EPOCH is not set
SKIP_DIRS = {"__pycache__", "node_modules"}


class BuildError(Exception):
    """A build step failed; the message says which file and what to do."""


def log(msg: str) -> None:
    print(f"build: {msg}", flush=True)


# ---------------------------------------------------------------- 1. wheels.lock


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_lock(vendor: str) -> Dict[str, str]:
    """{wheel path relative to vendor/: sha256} from vendor/wheels.lock."""
    lock = os.path.join(vendor, "wheels.lock")
    try:
        with open(lock) as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise BuildError(f"cannot read {lock}: {exc.strerror}; run `python3 vendor/refresh.py` to create it") from exc
    entries: Dict[str, str] = {}
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            raise BuildError(f"{lock}:{n}: expected '<sha256>  <wheel>', got {line!r}")
        entries[parts[1]] = parts[0]
    if not entries:
        raise BuildError(f"{lock} lists no wheels; run `python3 vendor/refresh.py`")
    return entries


def verify_wheels(vendor: str) -> Dict[str, str]:
    """Check every wheel under vendor/ against the lock; return {relative path: absolute path}."""
    entries = read_lock(vendor)
    found = {}
    for sub in ("wheels", "build"):
        d = os.path.join(vendor, sub)
        if os.path.isdir(d):
            found.update({f"{sub}/{n}": os.path.join(d, n) for n in os.listdir(d) if n.endswith(".whl")})
    for rel in sorted(entries):
        if rel not in found:
            raise BuildError(
                f"missing wheel {rel}: it is listed in {vendor}/wheels.lock but not in {vendor}/; "
                "restore it from git or run `python3 vendor/refresh.py`"
            )
        actual = sha256_file(found[rel])
        if actual != entries[rel]:
            raise BuildError(
                f"wheel {rel} does not match {vendor}/wheels.lock: sha256 is {actual}, the lock says {entries[rel]}; "
                "the file is corrupt or was replaced: restore it from git or run `python3 vendor/refresh.py`"
            )
    extra = sorted(set(found) - set(entries))
    if extra:
        raise BuildError(
            f"wheel {extra[0]} is in {vendor}/ but not in wheels.lock; delete it or run `python3 vendor/refresh.py`"
        )
    return {rel: found[rel] for rel in sorted(entries)}


# ---------------------------------------------------------------- 2+3. staging site-packages


def wheel_arch(filename: str) -> Optional[str]:
    """'x86_64' / 'aarch64' for a manylinux wheel, None for a pure one."""
    platform = filename[:-4].split("-")[-1]
    if platform == "any":
        return None
    for arch in ARCHES:
        if platform.endswith("_" + arch):
            return arch
    raise BuildError(f"wheel {filename}: unsupported platform tag {platform!r} (only x86_64/aarch64 manylinux)")


def elf_machine(data: bytes) -> int:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return -1  # not a 64-bit little-endian ELF
    return int.from_bytes(data[18:20], "little")


class Staging:
    """Files destined for site-packages, kept in memory: {relative path: bytes}."""

    def __init__(self) -> None:
        self.files: Dict[str, bytes] = {}
        self.origin: Dict[str, str] = {}

    def add(self, rel: str, data: bytes, origin: str) -> None:
        if rel.startswith("/") or ".." in rel.split("/"):
            raise BuildError(f"{origin}: refusing unsafe path {rel!r}")
        old = self.files.get(rel)
        if old is not None and old != data:
            if ".dist-info/" in rel:  # WHEEL/RECORD differ between per-version wheels: keep the first
                return
            raise BuildError(f"{rel} differs between {self.origin[rel]} and {origin}: pin matching versions")
        self.files[rel] = data
        self.origin.setdefault(rel, origin)

    def add_wheel(self, path: str) -> None:
        name = os.path.basename(path)
        arch = wheel_arch(name)
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                rel = info.filename
                m = re.match(r"[^/]+\.data/(purelib|platlib)/(.+)$", rel)
                if m:
                    rel = m.group(2)
                elif re.match(r"[^/]+\.data/", rel):
                    raise BuildError(f"wheel {name}: {rel} needs a real installer (scripts/headers not supported)")
                data = zf.read(info)
                if rel.endswith(".abi3.so"):
                    if arch is None:
                        raise BuildError(f"wheel {name}: abi3 module {rel} in a wheel without an arch tag")
                    base = rel[: -len(".abi3.so")]
                    for v in PY_VERSIONS:
                        self.add(f"{base}.cpython-{v}-{arch}-linux-gnu.so", data, name)
                else:
                    self.add(rel, data, name)

    def add_tree(self, src: str, dest: str) -> None:
        """Copy a source folder (no caches, no dotfiles), sorted, to `dest` inside site-packages."""
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
            for fn in sorted(filenames):
                if fn.startswith(".") or fn.endswith((".pyc", ".pyo")):
                    continue
                full = os.path.join(dirpath, fn)
                rel = os.path.relpath(full, src).replace(os.sep, "/")
                with open(full, "rb") as f:
                    self.add(f"{dest}/{rel}", f.read(), full)

    def check_complete(self) -> None:
        """Every CPython x arch has every native module, each an ELF for the right machine."""
        for rel in PURE_PACKAGES:
            if rel not in self.files:
                raise BuildError(f"{rel} is missing from the staged site-packages: is its wheel in vendor/wheels/?")
        for mod in NATIVE_MODULES:
            for arch in ARCHES:
                for v in PY_VERSIONS:
                    rel = f"{mod}.cpython-{v}-{arch}-linux-gnu.so"
                    if rel not in self.files:
                        raise BuildError(
                            f"{rel} is missing: vendor/wheels/ lacks the {arch} wheel for CPython 3.{v[1:]}"
                        )
        for rel, data in self.files.items():
            m = re.search(r"-(\w+)-linux-gnu\.so$", rel)
            if m and m.group(1) in ARCHES and elf_machine(data) != ARCHES[m.group(1)]:
                raise BuildError(f"{rel} (from {self.origin[rel]}) is not an ELF for {m.group(1)}")
        if any(rel.endswith(".pth") and "/" not in rel for rel in self.files):
            raise BuildError("a wheel ships a .pth file: teach the bootstrap (build.py BOOTSTRAP) to site.addsitedir")

    def write(self, dest: str) -> None:
        for rel in sorted(self.files):
            path = os.path.join(dest, *rel.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(self.files[rel])


# ---------------------------------------------------------------- 4. shiv


def run_shiv(vendor_wheels: Dict[str, str], site_packages: str, output: str, epoch: int) -> None:
    """Run the vendored shiv in-process from its wheel (a wheel is a zip: import straight from it)."""
    tools = [p for rel, p in vendor_wheels.items() if rel.startswith("build/")]
    for name in ("shiv-", "click-"):
        if not any(os.path.basename(p).startswith(name) for p in tools):
            raise BuildError(f"vendor/build/ has no {name}*.whl: run `python3 vendor/refresh.py`")
    old_path, old_epoch = list(sys.path), os.environ.get("SOURCE_DATE_EPOCH")
    sys.path[:0] = tools
    os.environ["SOURCE_DATE_EPOCH"] = str(epoch)
    try:
        from shiv.cli import main as shiv_main

        args = [
            "--site-packages",
            site_packages,
            "--output-file",
            output,
            "--entry-point",
            ENTRY_POINT,
            "--python",
            SHEBANG[2:-1].decode(),
            "--reproducible",
            "--uncompressed",
        ]
        shiv_main.main(args, prog_name="shiv", standalone_mode=False)
    except SystemExit as exc:  # shiv reports its errors with sys.exit(message)
        if exc.code not in (0, None):
            raise BuildError(f"shiv failed: {exc.code}") from exc
    finally:
        sys.path[:] = old_path
        if old_epoch is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = old_epoch


# ---------------------------------------------------------------- 5. bootstrap + final zip

# The zipapp's __main__.py.  Import-free on purpose (sys and os are loaded at
# interpreter start): `apm list` must start in ~3x the time of `python3 -c pass`.
# alter/native.py (extraction_roots) mirrors the root order; tests/unit/test_native.py
# checks the two agree.
BOOTSTRAP = '''\
# apm {version}: zipapp bootstrap written by build.py (replaces shiv's, for a fast start).
# Uses the extraction `<root>/{name}_<build id>/site-packages` when one exists
# (cached .pyc), otherwise imports straight from this zip (see docs/build.md).
import sys
from os import environ, geteuid, stat
from os.path import abspath, dirname, expanduser, isdir, join

VERSION = {version!r}
BUILD_ID = {build_id!r}
NAME = {name!r}
SYSTEM_ROOT = {system_root!r}


def extraction_roots():
    """Where an extraction may live, best first: $SHIV_ROOT (else the system one), ~/.shiv, a private tmp dir."""
    first = environ.get("SHIV_ROOT") or SYSTEM_ROOT
    tmp = join(environ.get("TMPDIR") or "/tmp", "apm-shiv-%d" % geteuid())
    return [first, join(expanduser("~"), ".shiv"), tmp]


def find_extraction():
    """site-packages of this build's extraction, or None.  The tmp root counts only if it is ours alone."""
    roots = extraction_roots()
    for i, root in enumerate(roots):
        site = join(root, NAME + "_" + BUILD_ID, "site-packages")
        if isdir(site):
            if i == len(roots) - 1:
                st = stat(root)
                if st.st_uid != geteuid() or st.st_mode & 0o022:
                    continue
            return site
    return None


def main():
    site = find_extraction() or join(abspath(dirname(__file__)), "site-packages")
    sys.path.insert(0, site)
    from alter.__main__ import main as apm_main

    sys.exit(apm_main())


if __name__ == "__main__":
    main()
'''


def make_bootstrap(version: str, build_id: str) -> bytes:
    sys.path.insert(0, ROOT)
    try:
        from alter.native import EXTRACT_NAME
        from alter.paths import SHIV_ROOT
    finally:
        sys.path.remove(ROOT)
    return BOOTSTRAP.format(version=version, build_id=build_id, name=EXTRACT_NAME, system_root=SHIV_ROOT).encode()


def finalize(shiv_zip: str, out: str, version: str) -> str:
    """Write the final archive next to `out`, then rename it into place; return the build id."""
    with zipfile.ZipFile(shiv_zip) as src:
        env = json.loads(src.read("environment.json"))
        build_id = env["build_id"]
        date_time = src.getinfo("__main__.py").date_time
        entries: List[Tuple[str, bytes]] = []
        for info in src.infolist():
            if info.is_dir():
                continue
            data = make_bootstrap(version, build_id) if info.filename == "__main__.py" else src.read(info)
            entries.append((info.filename, data))
    buf = io.BytesIO()
    buf.write(SHEBANG)
    with zipfile.ZipFile(buf, "w") as dst:
        for name, data in sorted(entries):
            zi = zipfile.ZipInfo(name, date_time)
            zi.create_system = 3
            zi.external_attr = 0o100644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(zi, data)
        dst.comment = f"apm {version} build {build_id}".encode()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = f"{out}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
    os.chmod(tmp, 0o755)
    os.replace(tmp, out)
    return build_id


def read_version() -> str:
    init = os.path.join(ROOT, "alter", "__init__.py")
    try:
        with open(init) as f:
            m = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', f.read(), re.M)
    except OSError as exc:
        raise BuildError(f"cannot read {init}: {exc.strerror}: run build.py from an apm checkout") from exc
    if not m:
        raise BuildError("alter/__init__.py has no __version__ = '...' line")
    return m.group(1)


def build(out: str, vendor: str) -> str:
    start = time.monotonic()
    version = read_version()
    wheels = verify_wheels(vendor)
    log(f"{len(wheels)} wheels match {os.path.relpath(os.path.join(vendor, 'wheels.lock'))}")
    staging = Staging()
    for rel, path in wheels.items():
        if rel.startswith("wheels/"):
            staging.add_wheel(path)
    staging.check_complete()
    staging.add_tree(os.path.join(ROOT, "alter"), "alter")
    staging.add_tree(os.path.join(ROOT, "web"), "alter/web_assets")
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or DEFAULT_EPOCH)
    with tempfile.TemporaryDirectory(prefix="apm-build-") as tmp:
        site_packages = os.path.join(tmp, "site-packages")
        staging.write(site_packages)
        shiv_zip = os.path.join(tmp, "shiv.pyz")
        run_shiv(wheels, site_packages, shiv_zip, epoch)
        build_id = finalize(shiv_zip, out, version)
    size = os.path.getsize(out) / 1e6
    log(f"wrote {out}: apm {version}, build {build_id[:12]}, {size:.1f} MB, {time.monotonic() - start:.1f} s")
    return build_id


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description="Build dist/apm offline from vendor/ (see docs/build.md).")
    ap.add_argument("--out", default=os.path.join(ROOT, "dist", "apm"), help="output file (default: dist/apm)")
    ap.add_argument("--vendor", default=os.path.join(ROOT, "vendor"), help="vendored wheels + wheels.lock")
    args = ap.parse_args(argv)
    try:
        build(args.out, os.path.abspath(args.vendor))
    except BuildError as exc:
        print(f"build: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

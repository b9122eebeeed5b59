#!/usr/bin/env python3
"""Re-download the wheels `build.py` bundles, then rewrite `vendor/wheels.lock`.

This is the ONLY step of the build that uses the network.  It runs
`pip download --only-binary=:all: --no-deps` once per (package, CPython, arch)
target below, replaces `vendor/wheels/` and `vendor/build/` with what pip got,
and writes one `<sha256>  <path relative to vendor/>` line per wheel to
`vendor/wheels.lock`.  Commit the wheels and the lock together.

    python3 vendor/refresh.py             # refresh everything
    python3 vendor/refresh.py --check     # only verify the lock against the files

To move to newer versions, edit the pins below, run this, rebuild and run the
build tests (`python3 -m pytest tests/integration/test_build.py`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from typing import List, Tuple

VENDOR = os.path.dirname(os.path.abspath(__file__))
LOCK = os.path.join(VENDOR, "wheels.lock")

PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13", "3.14"]
ARCHES = ["x86_64", "aarch64"]
# glibc levels we accept, newest first: 2.28 is RHEL 8 / Debian 10, the oldest hosts apm supports.
GLIBC = ["2_28", "2_27", "2_26", "2_17", "2_12", "2_5"]
LEGACY = {"2_17": "manylinux2014", "2_12": "manylinux2010", "2_5": "manylinux1"}

# Runtime wheels (unpacked into the zipapp).  cffi has no abi3 wheel: one per CPython and arch.
PER_PYTHON = ["cffi==2.0.0"]
# abi3 wheels: one per arch (build.py gives the .abi3.so per-version, per-arch names).
ABI3 = ["psutil==7.2.2", "argon2-cffi-bindings==25.1.0"]
# Pure-python wheels.  pycparser 2.x: 3.x dropped Python 3.9.
PURE = ["argon2-cffi==25.1.0", "pycparser==2.23"]
# Build-time tools, run straight from their wheels by build.py (click 8.1: runs on 3.9).
BUILD_TOOLS = ["shiv==1.0.8", "click==8.1.8"]


def platforms(arch: str) -> List[str]:
    out: List[str] = []
    for level in GLIBC:
        out += ["--platform", f"manylinux_{level}_{arch}"]
        if level in LEGACY:
            out += ["--platform", f"{LEGACY[level]}_{arch}"]
    return out


def pip_download(dest: str, req: str, extra: List[str]) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--no-deps",
        "--dest",
        dest,
        req,
        *extra,
    ]
    print("+", " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, check=True)


def download_all(tmp: str) -> None:
    wheels = os.path.join(tmp, "wheels")
    build = os.path.join(tmp, "build")
    for req in PER_PYTHON:
        for arch in ARCHES:
            for py in PYTHONS:
                abi = "cp" + py.replace(".", "")
                pip_download(
                    wheels, req, [*platforms(arch), "--python-version", py, "--implementation", "cp", "--abi", abi]
                )
    for req in ABI3:
        for arch in ARCHES:
            pip_download(
                wheels, req, [*platforms(arch), "--python-version", "3.9", "--implementation", "cp", "--abi", "abi3"]
            )
    for req in PURE:
        pip_download(wheels, req, ["--python-version", "3.9", "--platform", "any"])
    for req in BUILD_TOOLS:
        pip_download(build, req, ["--python-version", "3.9", "--platform", "any"])


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_wheels(root: str) -> List[Tuple[str, str]]:
    """(path relative to root, absolute path) of every wheel under wheels/ and build/, sorted."""
    found = []
    for sub in ("wheels", "build"):
        d = os.path.join(root, sub)
        if os.path.isdir(d):
            found += [(f"{sub}/{n}", os.path.join(d, n)) for n in os.listdir(d) if n.endswith(".whl")]
    return sorted(found)


def write_lock(root: str) -> None:
    lines = [f"{sha256(path)}  {rel}\n" for rel, path in list_wheels(root)]
    with open(os.path.join(root, "wheels.lock"), "w") as f:
        f.write("# sha256  wheel (relative to vendor/) -- written by vendor/refresh.py, checked by build.py\n")
        f.writelines(lines)


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="verify wheels.lock against vendor/ and exit")
    args = ap.parse_args(argv)
    if args.check:
        sys.path.insert(0, os.path.dirname(VENDOR))
        from build import BuildError, verify_wheels

        try:
            verify_wheels(VENDOR)
        except BuildError as exc:
            print(f"vendor/refresh.py: {exc}", file=sys.stderr)
            return 1
        print("vendor/wheels.lock matches every wheel")
        return 0
    with tempfile.TemporaryDirectory(prefix="apm-vendor-") as tmp:
        download_all(tmp)
        for sub in ("wheels", "build"):
            shutil.rmtree(os.path.join(VENDOR, sub), ignore_errors=True)
            shutil.copytree(os.path.join(tmp, sub), os.path.join(VENDOR, sub))
    write_lock(VENDOR)
    n = len(list_wheels(VENDOR))
    print(f"vendor/: {n} wheels, lock written to {os.path.relpath(LOCK)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

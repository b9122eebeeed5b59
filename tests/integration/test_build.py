"""build.py: an offline, reproducible, multi-Python, multi-arch zipapp whose bootstrap and natives work.

Builds its own copy (offline, into a temp dir, from a snapshot of the tree)
instead of trusting dist/apm, so it always tests the current code.  Two builds
in all: about 2 s.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from typing import Dict

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYENV = {v: f"/root/.pyenv/versions/{v}/bin/python3" for v in ("3.9.18", "3.10.13", "3.11.7", "3.12.1", "3.13.0")}
PY_TAGS = ["39", "310", "311", "312", "313", "314"]
EM = {"x86_64": 62, "aarch64": 183}
NATIVE = ["_cffi_backend", "psutil/_psutil_linux", "_argon2_cffi_bindings/_ffi"]
OFFLINE_ENV = {
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "PIP_NO_INDEX": "1",
}


def unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_build(src: str, out: str, *extra: str, offline: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    cmd = [sys.executable, os.path.join(src, "build.py"), "--out", out, *extra]
    if offline:
        env.update(OFFLINE_ENV)
        if unshare_works():
            cmd = ["unshare", "-n", *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A copy of what build.py reads, so edits made to the tree while the tests run cannot leak into one build."""
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("alter", "web", "vendor"):
        shutil.copytree(os.path.join(ROOT, name), src / name, ignore=ignore)
    shutil.copy2(os.path.join(ROOT, "build.py"), src / "build.py")
    return str(src)


def version_of(src: str) -> str:
    with open(os.path.join(src, "alter", "__init__.py")) as f:
        m = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M)
    assert m, "alter/__init__.py has no __version__"
    return m.group(1)


@pytest.fixture(scope="module")
def built(snapshot: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The zipapp, built with the network cut off (own network namespace + dead proxies + no pip index)."""
    out = str(tmp_path_factory.mktemp("build-a") / "apm")
    proc = run_build(snapshot, out, offline=True)
    assert proc.returncode == 0, f"offline build failed:\n{proc.stdout}\n{proc.stderr}"
    return out


@pytest.fixture(scope="module")
def extracted(built: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The zip's site-packages, unpacked (no interpreter involved)."""
    dest = tmp_path_factory.mktemp("unzipped")
    with zipfile.ZipFile(built) as zf:
        zf.extractall(dest)
    return str(dest / "site-packages")


def python_at(version: str) -> str:
    path = PYENV[version]
    if not os.path.exists(path):
        pytest.skip(f"{path} is not installed on this machine")
    return path


def test_some_pyenv_interpreter_exists() -> None:
    assert any(os.path.exists(p) for p in PYENV.values()), f"none of {sorted(PYENV.values())} exist"


def test_offline_build_ran_without_network(built: str) -> None:
    assert os.access(built, os.X_OK)
    if unshare_works():  # the namespace the build ran in has nothing but loopback
        probe = "import socket; print([n for _, n in socket.if_nameindex()])"
        names = subprocess.run(["unshare", "-n", sys.executable, "-c", probe], capture_output=True, text=True)
        assert names.stdout.strip() == "['lo']", names


def test_archive_layout(built: str, snapshot: str) -> None:
    version = version_of(snapshot)
    with open(built, "rb") as f:
        assert f.readline() == b"#!/usr/bin/env python3\n"
    with zipfile.ZipFile(built) as zf:
        names = zf.namelist()
        env = json.loads(zf.read("environment.json"))
        main = zf.read("__main__.py").decode()
        comment = zf.comment.decode()
    assert names == sorted(names)
    assert f"BUILD_ID = {env['build_id']!r}" in main and f"VERSION = {version!r}" in main
    assert comment == f"apm {version} build {env['build_id']}"
    assert "site-packages/alter/web_assets/index.html" in names
    assert not [n for n in names if n.endswith((".abi3.so", ".pyc")) or "__pycache__" in n]


def test_build_is_reproducible(built: str, snapshot: str, tmp_path) -> None:
    out = str(tmp_path / "again" / "apm")
    proc = run_build(snapshot, out)
    assert proc.returncode == 0, proc.stderr
    with open(built, "rb") as a, open(out, "rb") as b:
        same = hashlib.sha256(a.read()).hexdigest() == hashlib.sha256(b.read()).hexdigest()
    if not same:
        with zipfile.ZipFile(built) as za, zipfile.ZipFile(out) as zb:
            entries_a = {i.filename: (i.CRC, i.date_time, i.external_attr) for i in za.infolist()}
            entries_b = {i.filename: (i.CRC, i.date_time, i.external_attr) for i in zb.infolist()}
        differ = sorted(n for n in set(entries_a) | set(entries_b) if entries_a.get(n) != entries_b.get(n))
        pytest.fail(f"two builds differ (was the tree edited in between?): {differ[:10]}")


PROBE = textwrap.dedent(
    """
    import json, os, sys
    site, root = sys.argv[1], os.environ["SHIV_ROOT"]
    sys.path.insert(0, site)   # the zip's site-packages, or an extraction's
    import alter
    assert alter.__file__.startswith(site), alter.__file__
    from alter.native import ensure_native
    ensure_native()
    import _cffi_backend, argon2, psutil
    from argon2.exceptions import VerifyMismatchError
    for mod in (_cffi_backend, argon2, psutil):
        assert mod.__file__.startswith(root), mod.__file__
    ph = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)  # cheap, same native code
    digest = ph.hash("s3cret")
    assert digest.startswith("$argon2id$") and ph.verify(digest, "s3cret")
    try:
        ph.verify(digest, "wrong")
        raise SystemExit("argon2 accepted a wrong password")
    except VerifyMismatchError:
        pass
    proc = psutil.Process(os.getpid())
    times, mem = proc.cpu_times(), proc.memory_info()
    assert times.user >= 0 and mem.rss > 1_000_000, (times, mem)
    print(json.dumps({"python": sys.version_info[:2], "rss": mem.rss, "cffi": _cffi_backend.__file__}))
    """
)


@pytest.mark.parametrize("version", sorted(PYENV))
def test_natives_work_under_each_python(built: str, version: str, tmp_path) -> None:
    python = python_at(version)
    env = dict(os.environ, SHIV_ROOT=str(tmp_path / "shiv"), HOME=str(tmp_path / "home"))
    major, minor = version.split(".")[:2]
    # 1st run imports alter from the zip and extracts; 2nd runs from that extraction (ensure_native: no-op).
    for site in (built + "/site-packages", None):
        if site is None:
            (extraction,) = [n for n in os.listdir(tmp_path / "shiv") if not n.startswith(".")]  # apm_<build id>
            site = str(tmp_path / "shiv" / extraction / "site-packages")
        proc = subprocess.run([python, "-c", PROBE, site], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        info = json.loads(proc.stdout)
        assert info["python"] == [int(major), int(minor)]
        assert info["cffi"].endswith(f"_cffi_backend.cpython-{major}{minor}-{os.uname().machine}-linux-gnu.so")
    assert not os.path.exists(tmp_path / "home"), "SHIV_ROOT was writable: nothing should go to ~/.shiv"


@pytest.mark.parametrize("arch", sorted(EM))
@pytest.mark.parametrize("tag", PY_TAGS)
def test_native_modules_for_every_python_and_arch(extracted: str, arch: str, tag: str) -> None:
    suffix = f".cpython-{tag}-{arch}-linux-gnu.so"
    for mod in NATIVE:
        folder, _, name = ("/" + mod).rpartition("/")
        directory = os.path.join(extracted, folder.lstrip("/"))
        path = os.path.join(directory, name + suffix)
        with open(path, "rb") as f:
            header = f.read(20)
        assert header[:4] == b"\x7fELF" and header[4] == 2, f"{path} is not a 64-bit ELF"
        assert int.from_bytes(header[18:20], "little") == EM[arch], f"{path}: wrong e_machine"
        # What the import system of a CPython 3.<tag> on <arch> would do: find it by name with that suffix.
        finder = importlib.machinery.FileFinder(directory, (importlib.machinery.ExtensionFileLoader, [suffix]))
        fullname = mod.replace("/", ".")
        spec = finder.find_spec(fullname)
        assert spec is not None and spec.origin == path, f"{fullname} not found with suffix {suffix}"


RESOURCES_PROBE = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import alter
    from alter import resources
    out = {"alter": alter.__file__, "web": {}, "connectors": {}}
    for name in resources.list_web():
        out["web"][name] = resources.read_web(name).decode("latin-1")
    for name in resources.list_connectors():
        out["connectors"][name] = resources.read_connector(name).decode("latin-1")
    try:
        resources.read_web("../__init__.py")
        raise SystemExit("read_web left its folder")
    except Exception as exc:
        assert type(exc).__name__ == "NotFound", exc
    print(json.dumps(out))
    """
)


def source_files(folder: str) -> Dict[str, str]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d != "__pycache__" and not d.startswith(".")]
        for fn in filenames:
            if fn.startswith(".") or fn.endswith((".pyc", ".pyo")):
                continue
            full = os.path.join(dirpath, fn)
            with open(full, "rb") as f:
                found[os.path.relpath(full, folder)] = f.read().decode("latin-1")
    return found


@pytest.mark.parametrize("where", ["zip", "extraction"])
@pytest.mark.parametrize("version", ["3.9.18", "3.11.7"])
def test_resources_from_the_zipapp(built: str, snapshot: str, extracted: str, where: str, version: str) -> None:
    python = python_at(version)
    path = built + "/site-packages" if where == "zip" else extracted
    proc = subprocess.run([python, "-c", RESOURCES_PROBE, path], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["alter"].startswith(path)
    web = source_files(os.path.join(snapshot, "web"))
    assert "index.html" in web and out["web"] == web
    assert out["connectors"] == source_files(os.path.join(snapshot, "alter", "connectors"))


BOOT_PROBE = textwrap.dedent(
    """
    import runpy, sys, types
    archive = sys.argv[1]
    fake = types.ModuleType("alter.cli.main")       # stands in for the CLI: report where alter came from
    def main(argv):
        print(sys.modules["alter"].__file__)
        print(sys.modules["alter.__main__"].__file__)
        print(",".join(argv))
        return 7
    fake.main = main
    sys.modules["alter.cli.main"] = fake
    sys.argv = [archive, "--version"]
    sys.path.insert(0, archive)
    runpy.run_path(archive, run_name="__main__")    # what `python3 dist/apm --version` does
    """
)


def test_bootstrap_imports_from_zip_then_from_extraction(built: str, tmp_path) -> None:
    env = dict(os.environ, SHIV_ROOT=str(tmp_path / "shiv"), HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path))
    cmd = [sys.executable, "-c", BOOT_PROBE, built]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 7, proc.stderr
    alter_file, main_file, argv = proc.stdout.splitlines()
    assert alter_file == os.path.join(built, "site-packages", "alter", "__init__.py")
    assert main_file.startswith(built + "/") and argv == "--version"
    assert not os.path.exists(tmp_path / "shiv"), "the CLI path must not extract anything"
    # ensure_native() (what the daemon runs) extracts; from then on the bootstrap uses the extraction.
    ensure = f"import sys; sys.path.insert(0, {built + '/site-packages'!r}); from alter.native import ensure_native; ensure_native()"
    subprocess.run([sys.executable, "-c", ensure], env=env, check=True, timeout=120)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 7, proc.stderr
    alter_file = proc.stdout.splitlines()[0]
    assert alter_file.startswith(str(tmp_path / "shiv") + "/apm_") and "/site-packages/alter/" in alter_file


@pytest.mark.skipif(
    not os.path.exists(os.path.join(ROOT, "alter", "cli", "main.py")), reason="alter/cli/main.py not written yet"
)
def test_version_from_the_built_file(built: str, snapshot: str, tmp_path) -> None:
    version = version_of(snapshot)
    env = dict(os.environ, SHIV_ROOT=str(tmp_path / "shiv"), HOME=str(tmp_path / "home"))
    proc = subprocess.run([sys.executable, built, "--version"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert version in proc.stdout
    direct = subprocess.run([built, "--version"], env=env, capture_output=True, text=True, timeout=60)
    assert direct.returncode == 0 and version in direct.stdout, direct.stderr


def tamper(vendor: str, tmp_path, how: str) -> str:
    copy = str(tmp_path / "vendor")
    shutil.copytree(vendor, copy)
    wheels = sorted(n for n in os.listdir(os.path.join(copy, "wheels")) if n.startswith("psutil-"))
    victim = os.path.join(copy, "wheels", wheels[0])
    if how == "flip":
        with open(victim, "r+b") as f:
            f.seek(1000)
            byte = f.read(1)
            f.seek(1000)
            f.write(bytes([byte[0] ^ 0xFF]))
    else:
        os.remove(victim)
    return wheels[0]


@pytest.mark.parametrize("how", ["flip", "remove"])
def test_lock_mismatch_fails_naming_the_wheel(tmp_path, how: str) -> None:
    wheel = tamper(os.path.join(ROOT, "vendor"), tmp_path, how)
    out = str(tmp_path / "out" / "apm")
    proc = run_build(ROOT, out, "--vendor", str(tmp_path / "vendor"))
    assert proc.returncode != 0
    assert wheel in proc.stderr and ("does not match" in proc.stderr or "missing wheel" in proc.stderr), proc.stderr
    assert not os.path.exists(out)

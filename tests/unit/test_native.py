"""alter.native: extraction of a zipapp's site-packages, root fallbacks, and agreement with build.py's bootstrap."""

from __future__ import annotations

import importlib.machinery
import json
import os
import stat
import sys
import zipfile
from typing import Any, Dict

import pytest

import alter
import build
from alter import native

BUILD_ID = "f" * 64


def make_archive(path: str) -> str:
    """A tiny stand-in for dist/apm: environment.json + a site-packages with one module and a fake native one."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("environment.json", json.dumps({"build_id": BUILD_ID}))
        zf.writestr("site-packages/apm_probe_mod.py", "VALUE = 42\n")
        zf.writestr("site-packages/apm_probe_pkg/__init__.py", "")
        zf.writestr("site-packages/alter/connectors/x.py", "this is not python, never compiled\n")
        zf.writestr("site-packages/cffi/api.py", "X = 1\n")
        zf.writestr("site-packages/_cffi_backend" + importlib.machinery.EXTENSION_SUFFIXES[0], b"\x7fELF")
    return path


def load_bootstrap(monkeypatch: pytest.MonkeyPatch, env: Dict[str, str]) -> Dict[str, Any]:
    """Run build.py's bootstrap template as a module (not as __main__) under `env`."""
    for key in ("SHIV_ROOT", "HOME", "TMPDIR"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    ns: Dict[str, Any] = {"__name__": "apm_bootstrap_probe", "__file__": "/nowhere/apm/__main__.py"}
    exec(compile(build.make_bootstrap("9.9.9", BUILD_ID), "__main__.py", "exec"), ns)
    return ns


@pytest.fixture
def restore_paths(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(alter, "__path__", list(alter.__path__))
    yield
    sys.modules.pop("apm_probe_mod", None)


def test_ensure_native_is_a_noop_in_a_source_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    assert native.archive_path() is None
    before = list(sys.path)
    native.ensure_native()
    assert sys.path == before


@pytest.mark.parametrize(
    "env",
    [
        {"HOME": "/home/u"},
        {"HOME": "/home/u", "SHIV_ROOT": "/opt/shiv", "TMPDIR": "/var/tmp"},
        {"HOME": "/home/u", "SHIV_ROOT": ""},
    ],
)
def test_bootstrap_and_native_agree_on_roots(monkeypatch: pytest.MonkeyPatch, env: Dict[str, str]) -> None:
    ns = load_bootstrap(monkeypatch, env)
    assert ns["extraction_roots"]() == native.extraction_roots()
    assert ns["NAME"] == native.EXTRACT_NAME and ns["SYSTEM_ROOT"] == "/var/lib/apm/shiv"
    assert ns["extraction_roots"]()[0] == (env.get("SHIV_ROOT") or "/var/lib/apm/shiv")


def test_bootstrap_finds_extraction_and_ignores_a_shared_tmp_root(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    tmp_root = tmp_path / f"apm-shiv-{os.geteuid()}"
    site = tmp_root / f"apm_{BUILD_ID}" / "site-packages"
    site.mkdir(parents=True)
    os.chmod(tmp_root, 0o700)
    env = {"SHIV_ROOT": str(tmp_path / "empty"), "HOME": str(tmp_path / "home"), "TMPDIR": str(tmp_path)}
    ns = load_bootstrap(monkeypatch, env)
    assert ns["find_extraction"]() == str(site)
    os.chmod(tmp_root, 0o777)  # anyone could have planted code there: not ours
    assert ns["find_extraction"]() is None
    home_site = tmp_path / "home" / ".shiv" / f"apm_{BUILD_ID}" / "site-packages"
    home_site.mkdir(parents=True)
    assert ns["find_extraction"]() == str(home_site)


def test_extract_is_atomic_compiled_and_readable(tmp_path) -> None:
    archive = make_archive(str(tmp_path / "apm"))
    root = tmp_path / "root"
    root.mkdir()
    stale = root / f"apm_{BUILD_ID}" / ".site-packages.99999"
    stale.mkdir(parents=True)
    old_umask = os.umask(0o077)
    try:
        site = native.extract(archive, str(root))
    finally:
        os.umask(old_umask)
    assert site == str(root / f"apm_{BUILD_ID}" / "site-packages")
    assert not stale.exists()
    assert sorted(os.listdir(os.path.dirname(site))) == ["site-packages"]
    with open(os.path.join(site, "apm_probe_mod.py")) as f:
        assert f.read() == "VALUE = 42\n"
    cache = os.listdir(os.path.join(site, "__pycache__"))
    assert any(n.startswith("apm_probe_mod.") for n in cache)
    assert not os.path.exists(os.path.join(site, "alter", "connectors", "__pycache__"))
    assert not os.path.exists(os.path.join(site, "cffi", "__pycache__"))  # never imported at run time
    mode = stat.S_IMODE(os.stat(os.path.join(site, "apm_probe_mod.py")).st_mode)
    assert mode == 0o644 and stat.S_IMODE(os.stat(site).st_mode) == 0o755
    assert native.extract(archive, str(root)) == site  # second call: already there


def test_ensure_native_falls_back_to_home_then_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path, restore_paths) -> None:
    archive = make_archive(str(tmp_path / "apm"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(native, "archive_path", lambda: archive)
    monkeypatch.setenv("SHIV_ROOT", str(blocker / "shiv"))  # cannot be created
    monkeypatch.setenv("HOME", str(blocker / "home"))  # neither can ~/.shiv
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    native.ensure_native()
    site = str(tmp_path / f"apm-shiv-{os.geteuid()}" / f"apm_{BUILD_ID}" / "site-packages")
    assert sys.path[0] == site
    assert alter.__path__[0] == os.path.join(site, "alter")
    assert stat.S_IMODE(os.stat(tmp_path / f"apm-shiv-{os.geteuid()}").st_mode) == 0o700
    import apm_probe_mod  # type: ignore[import-not-found]

    assert apm_probe_mod.VALUE == 42 and apm_probe_mod.__file__.startswith(site)


def test_ensure_native_prefers_shiv_root(monkeypatch: pytest.MonkeyPatch, tmp_path, restore_paths) -> None:
    archive = make_archive(str(tmp_path / "apm"))
    monkeypatch.setattr(native, "archive_path", lambda: archive)
    monkeypatch.setenv("SHIV_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    native.ensure_native()
    assert sys.path[0] == str(tmp_path / "root" / f"apm_{BUILD_ID}" / "site-packages")
    assert not (tmp_path / "home").exists()


def test_ensure_native_explains_an_unsupported_interpreter(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    archive = str(tmp_path / "apm")
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("environment.json", json.dumps({"build_id": BUILD_ID}))
        zf.writestr("site-packages/m.py", "")
    monkeypatch.setattr(native, "archive_path", lambda: archive)
    monkeypatch.setenv("SHIV_ROOT", str(tmp_path / "root"))
    with pytest.raises(native.NativeError) as err:
        native.ensure_native()
    assert "no native modules" in str(err.value) and "3.9-3.14" in err.value.hint

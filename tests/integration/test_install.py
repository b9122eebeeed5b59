"""Installing apm for real: a fresh Debian 12 chroot, and APM_INSTALL_ROOT trees on this host.

Fresh machine: a `debootstrap --variant=minbase --include=python3 bookworm`
root (python3 only: no pip, no psutil, no curl), cached as
/var/cache/apm-test/debootstrap-bookworm.tar (+ `.key`: rebuilt when the
include list changes) and extracted anew for every test.  A second variant
adds `openrc`.  Needs root (chroot, mount, setpriv) and `debootstrap`
(tests/run.sh installs it): without debootstrap these tests FAIL, unless
APM_SKIP_DEBOOTSTRAP=1 says to skip them.  Cold: ~1 min per variant (network);
cached: a few seconds per test.

The rest installs the built dist/apm on this host under APM_INSTALL_ROOT (a
DESTDIR-like test seam: nothing outside the temp tree is touched).
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

from alter.install.defaults import DEFAULT_CONFIG, bundled_ip_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INSTALL_SH = os.path.join(ROOT, "install.sh")
CACHE_DIR = os.environ.get("APM_TEST_CACHE", "/var/cache/apm-test")
MIRROR = os.environ.get("APM_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_PYTHON = "/usr/bin/python3"  # a system interpreter: no test-venv packages (psutil) can leak in

pytestmark = pytest.mark.root

# Stands in for `apm daemon` where a test needs a daemon to start/stop: it records
# its argv and SHIV_ROOT, and exits 0 on SIGTERM.
FAKE_DAEMON = """#!/usr/bin/python3
import json, os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
with open(os.environ.get("FAKE_DAEMON_OUT", "/tmp/fake-daemon.json"), "w") as f:
    json.dump({"argv": sys.argv, "pid": os.getpid(), "SHIV_ROOT": os.environ.get("SHIV_ROOT")}, f)
while True:
    time.sleep(1)
"""

# A python3 that says it is 3.8.10 (runs `-c CODE` with sys.version_info patched).
FAKE_PY38 = """#!{python}
import sys
sys.version_info = (3, 8, 10, "final", 0)
if len(sys.argv) > 2 and sys.argv[1] == "-c":
    exec(compile(sys.argv[2], "<string>", "exec"), {{"__name__": "__main__"}})
else:
    sys.exit("fake python 3.8: cannot run " + " ".join(sys.argv[1:]))
"""


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("installer tests need root (chroot, mount, setpriv): run them with sudo (tests/run.sh does)")


@pytest.fixture(scope="session")
def apm_file() -> str:
    path = os.environ.get("APM_BIN") or os.path.join(ROOT, "dist", "apm")
    if not os.path.exists(path):
        subprocess.run([sys.executable, "build.py"], cwd=ROOT, check=True)
    return path


# --------------------------------------------------------------------------- helpers


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def write(path: str, text: str, mode: int = 0o644) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def build_id(path: str) -> str:
    with zipfile.ZipFile(path) as zf:
        return str(json.loads(zf.read("environment.json"))["build_id"])


def body(path: str) -> bytes:
    """The zipapp without its shebang line."""
    return read_bytes(path).split(b"\n", 1)[1]


def make_release(src: str, dest: str, tag: str) -> str:
    """A copy of the zipapp that looks like another build (new build id), for upgrade tests."""
    old = build_id(src)
    new = hashlib.sha256((old + tag).encode()).hexdigest()
    buf = io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename in ("environment.json", "__main__.py"):
                data = data.replace(old.encode(), new.encode())
            zout.writestr(info, data)
    with open(dest, "wb") as f:
        f.write(b"#!/usr/bin/env python3\n" + buf.getvalue())
    os.chmod(dest, 0o755)
    return dest


def group_gid(root: str, name: str = "apm") -> Optional[int]:
    for line in read(os.path.join(root, "etc/group")).splitlines():
        parts = line.split(":")
        if parts[0] == name:
            return int(parts[2])
    return None


def mounts_under(path: str) -> List[str]:
    found = []
    for line in read("/proc/self/mountinfo").splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == path or point.startswith(path.rstrip("/") + "/"):
            found.append(point)
    return found


def unmount_all(path: str) -> None:
    for point in sorted(mounts_under(path), key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)


def safe_rmtree(path: str) -> None:
    """rmtree, but never into a mount (a bind-mounted /proc or /dev must not be walked)."""
    unmount_all(path)
    left = mounts_under(path)
    if left:
        raise AssertionError(f"not deleting {path}: still mounted there: {left}")
    shutil.rmtree(path, ignore_errors=True)


def kill_processes_in(root: str) -> None:
    """Kill every process whose root directory is inside `root` (leftovers of a chroot)."""
    real = os.path.realpath(root)
    for pid_dir in glob.glob("/proc/[0-9]*"):
        try:
            proc_root = os.readlink(os.path.join(pid_dir, "root"))
        except OSError:
            continue
        if proc_root == real or proc_root.startswith(real + "/"):
            try:
                os.kill(int(os.path.basename(pid_dir)), signal.SIGKILL)
            except ProcessLookupError:
                pass


Entry = Tuple[object, ...]


def snapshot(root: str, ignore: Sequence[str] = ()) -> Dict[str, Entry]:
    """Every path under `root` with type, mode, owner and content hash (not times)."""
    patterns = [re.compile(p) for p in ignore]
    result: Dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        keep = []
        for name in sorted(dirnames) + sorted(filenames):
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if any(p.fullmatch(rel) for p in patterns):
                continue
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                entry: Entry = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                entry = ("dir", oct(st.st_mode & 0o7777), st.st_uid, st.st_gid)
                keep.append(name)
            elif stat.S_ISREG(st.st_mode):
                entry = ("file", oct(st.st_mode & 0o7777), st.st_uid, st.st_gid, _sha(full))
            else:
                entry = ("special", st.st_mode, st.st_rdev, st.st_uid, st.st_gid)
            result[rel] = entry
        dirnames[:] = [d for d in dirnames if d in keep]
    return result


def _sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def assert_same_tree(before: Dict[str, Entry], after: Dict[str, Entry]) -> None:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    if added or removed or changed:
        raise AssertionError(
            "the tree is not as it was before the install:\n"
            + "".join(f"  left behind: {p} {after[p]}\n" for p in added[:40])
            + "".join(f"  removed:     {p}\n" for p in removed[:40])
            + "".join(f"  changed:     {p} {before[p]} -> {after[p]}\n" for p in changed[:40])
        )


def check_mode(root: str, rel: str, kind: str, mode: int, uid: int, gid: int) -> None:
    path = os.path.join(root, rel)
    st = os.lstat(path)
    actual_kind = "dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
    assert actual_kind == kind, f"/{rel} is a {actual_kind}, expected a {kind}"
    assert (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) == (oct(mode), uid, gid), f"/{rel}"


def check_installed(root: str, apm_file: str, init: str, shiv_root: str = "var/lib/apm/shiv") -> None:
    """Every path `apm install` creates, with owner, group and mode (docs/install.md's table)."""
    gid = group_gid(root)
    assert gid is not None, "the apm group was not created"
    expect = [
        ("usr/sbin/apm", "file", 0o755, 0, 0),
        ("var/log/apm.log", "file", 0o640, 0, gid),
        ("etc/apm", "dir", 0o755, 0, 0),
        ("etc/apm/apm.conf", "file", 0o640, 0, gid),
        ("etc/apm/apm.conf.d", "dir", 0o755, 0, 0),
        ("etc/apm/ips", "dir", 0o755, 0, 0),
        ("etc/apm/ips/cloudflare-v4.part", "file", 0o644, 0, 0),
        ("etc/apm/ips/cloudflare-v6.part", "file", 0o644, 0, 0),
        ("var/lib/apm", "dir", 0o755, 0, 0),
        (shiv_root, "dir", 0o755, 0, 0),
        ("var/lib/apm/install.json", "file", 0o644, 0, 0),
    ]
    if init == "systemd":
        expect.append(("etc/systemd/system/apm.service", "file", 0o644, 0, 0))
    elif init in ("openrc", "sysv"):
        expect.append(("etc/init.d/apm", "file", 0o755, 0, 0))
    for rel, kind, mode, uid, g in expect:
        check_mode(root, rel, kind, mode, uid, g)
    binary = os.path.join(root, "usr/sbin/apm")
    assert read_bytes(binary).startswith(b"#!/usr/bin/env python3\n")
    assert body(binary) == body(apm_file), "/usr/sbin/apm is not the apm file that was installed"
    assert read(os.path.join(root, "etc/apm/apm.conf")) == DEFAULT_CONFIG
    for name in ("cloudflare-v4.part", "cloudflare-v6.part"):
        assert read_bytes(os.path.join(root, "etc/apm/ips", name)) == bundled_ip_file(name)
    # One extraction, of this build, readable by every user (the CLI of any user shares it).
    bid = build_id(apm_file)
    shiv = os.path.join(root, shiv_root)
    assert sorted(os.listdir(shiv)) == [f".apm_{bid}_lock", f"apm_{bid}"]
    site = os.path.join(shiv, f"apm_{bid}", "site-packages")
    assert glob.glob(os.path.join(site, "psutil", "_psutil_linux.cpython-3*-linux-gnu.so"))
    for dirpath, dirnames, filenames in os.walk(site):
        for name in dirnames:
            assert os.stat(os.path.join(dirpath, name)).st_mode & 0o755 == 0o755
        for name in filenames:
            assert os.stat(os.path.join(dirpath, name)).st_mode & 0o644 == 0o644
    manifest = json.loads(read(os.path.join(root, "var/lib/apm/install.json")))
    assert manifest["build_id"] == bid and manifest["init"] == init


def run(
    argv: List[str],
    env: Optional[Dict[str, str]] = None,
    input: Optional[str] = None,
    timeout: float = 300,
    cwd: str = "/",
) -> subprocess.CompletedProcess:
    base = {"PATH": SYSTEM_PATH, "HOME": "/root", "LANG": "C.UTF-8"}
    base.update(env or {})
    return subprocess.run(argv, env=base, input=input, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def explain(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


class FileServer:
    """`python3 -m http.server` on 127.0.0.1 (a free port), serving one folder."""

    def __init__(self, folder: str) -> None:
        self.proc = subprocess.Popen(
            [HOST_PYTHON, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", folder],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        m = re.search(r"port (\d+)", line)
        assert m, f"http.server said {line!r}"
        self.url = f"http://127.0.0.1:{m.group(1)}"
        # keep draining its stdout so it never blocks
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def file_server(tmp_path, apm_file) -> Iterator[FileServer]:
    folder = tmp_path / "www"
    folder.mkdir()
    shutil.copy(apm_file, folder / "apm")
    (folder / "not-a-zip").write_text("<html><body>Moved</body></html>\n")
    server = FileServer(str(folder))
    yield server
    server.close()


# --------------------------------------------------------------------------- the Debian root


def debian_root_tar(extra: Tuple[str, ...] = ()) -> str:
    """The cached minimal Debian root (built once with debootstrap), keyed by the include list."""
    if os.environ.get("APM_SKIP_DEBOOTSTRAP") == "1":
        pytest.skip("APM_SKIP_DEBOOTSTRAP=1: skipping the fresh-Debian installer tests")
    include = ("python3", *extra)
    tar = os.path.join(CACHE_DIR, "debootstrap-bookworm" + "".join(f"-{e}" for e in extra) + ".tar")
    key = f"suite={SUITE} variant=minbase include={','.join(include)} mirror={MIRROR}\n"
    os.makedirs(CACHE_DIR, exist_ok=True)
    with open(os.path.join(CACHE_DIR, ".lock"), "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # one build at a time, even across test runs
        if os.path.exists(tar) and os.path.exists(tar + ".key") and read(tar + ".key") == key:
            return tar
        debootstrap = shutil.which("debootstrap", path=SYSTEM_PATH)
        if not debootstrap:
            pytest.fail(
                "debootstrap is not installed, so the fresh-Debian installer tests cannot run: "
                "`apt-get install debootstrap` (tests/run.sh does), or set APM_SKIP_DEBOOTSTRAP=1 to skip them"
            )
        work = tempfile.mkdtemp(prefix="build-", dir=CACHE_DIR)
        try:
            target = os.path.join(work, "root")
            proc = run(
                [debootstrap, "--variant=minbase", f"--include={','.join(include)}", SUITE, target, MIRROR],
                timeout=1800,
            )
            if proc.returncode != 0:
                pytest.fail(f"debootstrap failed (is {MIRROR} reachable?):\n{explain(proc)[-4000:]}")
            unmount_all(target)
            # Downloaded .debs and package lists: caches of apt, not part of the machine.
            for junk in glob.glob(os.path.join(target, "var/cache/apt/archives/*.deb")) + glob.glob(
                os.path.join(target, "var/lib/apt/lists/*_*")
            ):
                os.unlink(junk)
            subprocess.run(["tar", "--numeric-owner", "-C", target, "-cf", tar + ".tmp", "."], check=True)
            os.replace(tar + ".tmp", tar)
            write(tar + ".key", key)
        finally:
            safe_rmtree(work)
        return tar


class Chroot:
    """A fresh copy of the cached Debian root, /proc bind-mounted."""

    def __init__(self, tar: str) -> None:
        self.path = tempfile.mkdtemp(prefix="apm-chroot-", dir="/var/tmp")
        subprocess.run(["tar", "--numeric-owner", "-C", self.path, "-xf", tar], check=True)
        subprocess.run(["mount", "--bind", "/proc", os.path.join(self.path, "proc")], check=True)

    def p(self, rel: str) -> str:
        return os.path.join(self.path, rel.lstrip("/"))

    def run(
        self, argv: List[str], env: Optional[Dict[str, str]] = None, input: Optional[str] = None, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        return run(["chroot", self.path, *argv], env=env, input=input, timeout=timeout)

    # Ignored when comparing the tree before the install and after the purge:
    #   proc/...          the bind-mounted /proc
    #   tmp/...           where the test puts install.sh and the apm file
    #   etc/group-, etc/gshadow-   shadow-utils' backup copies, rewritten by every groupadd/groupdel
    IGNORE = (r"proc/.*", r"tmp/.*", r"etc/group-", r"etc/gshadow-")

    def snapshot(self, extra_ignore: Sequence[str] = ()) -> Dict[str, Entry]:
        return snapshot(self.path, self.IGNORE + tuple(extra_ignore))

    def close(self) -> None:
        kill_processes_in(self.path)
        safe_rmtree(self.path)


@pytest.fixture
def debian(apm_file) -> Iterator[Chroot]:
    root = Chroot(debian_root_tar())
    yield root
    root.close()


@pytest.fixture
def debian_openrc(apm_file) -> Iterator[Chroot]:
    root = Chroot(debian_root_tar(("openrc",)))
    yield root
    root.close()


def stage(chroot: Chroot, apm_file: str) -> None:
    """Put install.sh and the apm file side by side in the chroot's /tmp/apm (the air-gapped layout)."""
    folder = chroot.p("/tmp/apm")
    os.makedirs(folder, exist_ok=True)
    shutil.copy(INSTALL_SH, os.path.join(folder, "install.sh"))
    shutil.copy(apm_file, os.path.join(folder, "apm"))


def verify_systemd_unit(chroot: Chroot) -> None:
    """`systemd-analyze verify` on the host (this chroot has no systemd): no output at all is accepted."""
    analyze = shutil.which("systemd-analyze", path=SYSTEM_PATH)
    assert analyze, "systemd-analyze is missing on this host: `apt-get install systemd` (tests/run.sh does)"
    unit = read(chroot.p("/etc/systemd/system/apm.service"))
    python = re.search(r"^ExecStart=(\S+) ", unit, re.M)
    assert python and os.path.exists(python.group(1)), f"ExecStart's interpreter is not on this host: {python}"
    folder = tempfile.mkdtemp(prefix="apm-unit-")
    try:
        path = write(os.path.join(folder, "apm.service"), unit)
        proc = run([analyze, "verify", path])
        assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), explain(proc)
    finally:
        shutil.rmtree(folder)


def assert_no_pip_no_psutil(chroot: Chroot) -> None:
    """The fresh machine really has python3 only: what loads psutil is apm's own bundle."""
    proc = chroot.run(["python3", "-c", "import psutil"])
    assert proc.returncode != 0
    assert not os.path.exists(chroot.p("/usr/bin/pip3"))
    assert not os.path.exists(chroot.p("/usr/bin/curl")) and not os.path.exists(chroot.p("/usr/bin/wget"))


# --------------------------------------------------------------------------- fresh Debian: systemd


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_airgapped_install_upgrade_and_purge_on_fresh_debian(debian, apm_file):
    assert_no_pip_no_psutil(debian)
    before = debian.snapshot()
    stage(debian, apm_file)

    proc = debian.run(["bash", "/tmp/apm/install.sh"], env={"APM_INIT": "systemd"})
    assert proc.returncode == 0, explain(proc)
    assert "offline: the apm file next to this script" in proc.stdout
    assert "systemd is not running now" in proc.stdout or "not running systemd now" in proc.stdout
    check_installed(debian.path, apm_file, "systemd")
    unit = read(debian.p("/etc/systemd/system/apm.service"))
    assert "ExecStart=/usr/bin/python3 /usr/sbin/apm daemon\n" in unit
    assert os.readlink(debian.p("/etc/systemd/system/multi-user.target.wants/apm.service")) == (
        "/etc/systemd/system/apm.service"
    )
    verify_systemd_unit(debian)

    # Re-running upgrades in place; the user's config stays as it is.
    conf = debian.p("/etc/apm/apm.conf")
    with open(conf, "a") as f:
        f.write("# edited by the admin\n")
    edited = read(conf)
    proc = debian.run(["bash", "/tmp/apm/install.sh"], env={"APM_INIT": "systemd"})
    assert proc.returncode == 0, explain(proc)
    assert "exists: kept as it is" in proc.stdout
    assert read(conf) == edited

    proc = debian.run(["/usr/sbin/apm", "uninstall", "--purge"])
    assert proc.returncode == 0, explain(proc)
    assert_same_tree(before, debian.snapshot())


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_piped_install_downloads_with_python_when_there_is_no_curl(debian, apm_file, file_server):
    assert_no_pip_no_psutil(debian)
    before = debian.snapshot()
    script = read(INSTALL_SH)
    sha = _sha(apm_file)

    # A download that is not an apm file, and a checksum that does not match: refused, nothing installed.
    proc = debian.run(["bash"], input=script, env={"APM_URL": file_server.url + "/not-a-zip", "APM_INIT": "systemd"})
    assert proc.returncode == 13, explain(proc)
    assert "is not an intact apm zipapp" in proc.stderr
    proc = debian.run(["bash"], input=script, env={"APM_URL": file_server.url + "/missing", "APM_INIT": "systemd"})
    assert proc.returncode == 13, explain(proc)
    assert "could not download " + file_server.url + "/missing" in proc.stderr
    proc = debian.run(
        ["bash"], input=script, env={"APM_URL": file_server.url + "/apm", "APM_SHA256": "0" * 64, "APM_INIT": "systemd"}
    )
    assert proc.returncode == 13, explain(proc)
    assert f"has sha256 {sha}, but APM_SHA256 is {'0' * 64}" in proc.stderr
    assert_same_tree(before, debian.snapshot())

    proc = debian.run(
        ["bash"],
        input=script,
        env={"APM_URL": file_server.url + "/apm", "APM_SHA256": sha.upper(), "APM_INIT": "systemd"},
    )
    assert proc.returncode == 0, explain(proc)
    assert f"downloading {file_server.url}/apm" in proc.stdout and f"sha256 verified: {sha}" in proc.stdout
    check_installed(debian.path, apm_file, "systemd")
    verify_systemd_unit(debian)

    proc = debian.run(["/usr/sbin/apm", "uninstall", "--purge"])
    assert proc.returncode == 0, explain(proc)
    assert_same_tree(before, debian.snapshot())


# --------------------------------------------------------------------------- fresh Debian: SysV and OpenRC


def start_stop_with_fake_daemon(chroot: Chroot, start: List[str], stop: List[str], status: Optional[List[str]]):
    """Swap /usr/sbin/apm for a stand-in daemon, start/stop the service, check it ran with SHIV_ROOT."""
    real = read_bytes(chroot.p("/usr/sbin/apm"))
    write(chroot.p("/usr/sbin/apm"), FAKE_DAEMON, 0o755)
    record = chroot.p("/tmp/fake-daemon.json")
    try:
        proc = chroot.run(start)
        assert proc.returncode == 0, explain(proc)
        deadline = time.monotonic() + 20
        while not os.path.exists(record) and time.monotonic() < deadline:
            time.sleep(0.05)
        info = json.loads(read(record))
        assert info["SHIV_ROOT"] == "/var/lib/apm/shiv"
        assert info["argv"] == ["/usr/sbin/apm", "daemon"]
        assert os.path.exists(f"/proc/{info['pid']}")
        if status:
            proc = chroot.run(status)
            assert proc.returncode == 0 and "running" in proc.stdout, explain(proc)
        proc = chroot.run(stop)
        assert proc.returncode == 0, explain(proc)
        deadline = time.monotonic() + 20
        while os.path.exists(f"/proc/{info['pid']}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{info['pid']}"), "the daemon survived the service's stop"
        if status:
            proc = chroot.run(status)
            assert proc.returncode == 3 and "not running" in proc.stdout, explain(proc)
    finally:
        with open(chroot.p("/usr/sbin/apm"), "wb") as f:
            f.write(real)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sysv_script_on_fresh_debian(debian, apm_file):
    before = debian.snapshot()
    stage(debian, apm_file)
    proc = debian.run(["bash", "/tmp/apm/install.sh"], env={"APM_INIT": "sysv"})
    assert proc.returncode == 0, explain(proc)
    assert "update-rc.d apm defaults" in proc.stdout
    check_installed(debian.path, apm_file, "sysv")
    script = debian.p("/etc/init.d/apm")
    assert run(["bash", "-n", script]).returncode == 0
    text = read(script)
    header = re.search(r"^### BEGIN INIT INFO\n(.*?)^### END INIT INFO$", text, re.M | re.S)
    assert header, "no LSB header block"
    for key in ("Provides", "Required-Start", "Required-Stop", "Default-Start", "Default-Stop", "Short-Description"):
        assert re.search(rf"^# {key}:\s+\S", header.group(1), re.M), key
    assert glob.glob(debian.p("/etc/rc2.d/S*apm")) and glob.glob(debian.p("/etc/rc0.d/K*apm"))

    proc = debian.run(["/etc/init.d/apm", "status"])
    assert proc.returncode == 3, explain(proc)
    start_stop_with_fake_daemon(
        debian, ["/etc/init.d/apm", "start"], ["/etc/init.d/apm", "stop"], ["/etc/init.d/apm", "status"]
    )

    proc = debian.run(["/usr/sbin/apm", "uninstall", "--purge"])
    assert proc.returncode == 0, explain(proc)
    assert not glob.glob(debian.p("/etc/rc?.d/*apm"))
    assert_same_tree(before, debian.snapshot())


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_openrc_script_on_fresh_debian_with_openrc(debian_openrc, apm_file):
    root = debian_openrc
    # OpenRC keeps its runtime state (dependency cache, started services) in /run/openrc.
    before = root.snapshot([r"run/openrc/.*"])
    stage(root, apm_file)
    proc = root.run(["bash", "/tmp/apm/install.sh"])  # no APM_INIT: detected
    assert proc.returncode == 0, explain(proc)
    assert "openrc service /etc/init.d/apm" in proc.stdout
    check_installed(root.path, apm_file, "openrc")
    assert read(root.p("/etc/init.d/apm")).startswith("#!/sbin/openrc-run\n")

    proc = root.run(["/sbin/openrc-run", "/etc/init.d/apm", "describe"])
    assert proc.returncode == 0 and "apm process manager" in proc.stdout + proc.stderr, explain(proc)
    proc = root.run(["/sbin/openrc-run", "/etc/init.d/apm", "depend"])
    assert proc.returncode == 0, explain(proc)
    assert proc.stdout.split("\n")[:3] == ["want net", "use dns logger", "after net firewall"], explain(proc)
    proc = root.run(["rc-update", "show", "default"])
    assert re.search(r"^\s*apm \| default", proc.stdout, re.M), explain(proc)

    # Pretend OpenRC booted this root, then start and stop the service through supervise-daemon.
    softlevel = root.p("/run/openrc/softlevel")
    write(softlevel, "")
    try:
        start_stop_with_fake_daemon(
            root,
            ["/sbin/openrc-run", "/etc/init.d/apm", "start"],
            ["/sbin/openrc-run", "/etc/init.d/apm", "stop"],
            None,
        )
    finally:
        os.unlink(softlevel)

    proc = root.run(["/usr/sbin/apm", "uninstall", "--purge"])
    assert proc.returncode == 0, explain(proc)
    assert not glob.glob(root.p("/etc/runlevels/*/apm"))
    assert_same_tree(before, root.snapshot([r"run/openrc/.*"]))


# --------------------------------------------------------------------------- APM_INSTALL_ROOT on this host


@pytest.fixture
def prefix(tmp_path) -> Iterator[str]:
    """An empty install root with an /etc/group, readable by everyone (for the `nobody` test)."""
    root = tempfile.mkdtemp(prefix="apm-prefix-", dir="/var/tmp")
    os.chmod(root, 0o755)
    write(os.path.join(root, "etc/group"), "root:x:0:\nadm:x:4:\nnogroup:x:65534:\n")
    yield root
    safe_rmtree(root)


def apm_cmd(apm_file: str, *args: str, root: str, init: Optional[str] = "systemd", extra: Optional[Dict] = None):
    env = {"APM_INSTALL_ROOT": root}
    if init:
        env["APM_INIT"] = init
    env.update(extra or {})
    return run([HOST_PYTHON, apm_file, *args], env=env)


def test_rerun_upgrades_in_place_and_keeps_user_config(prefix, apm_file, tmp_path):
    proc = apm_cmd(apm_file, "install", root=prefix)
    assert proc.returncode == 0, explain(proc)
    check_installed(prefix, apm_file, "systemd")
    conf = os.path.join(prefix, "etc/apm/apm.conf")
    with open(conf, "a") as f:
        f.write("worker { name web; exec node; }\n")
    dropin = write(os.path.join(prefix, "etc/apm/apm.conf.d/api.conf"), "worker { name api; exec node; }\n")
    with open(os.path.join(prefix, "var/log/apm.log"), "a") as f:
        f.write("an old log line\n")
    conf_stat = os.stat(conf)
    gid = group_gid(prefix)
    old_inode = os.stat(os.path.join(prefix, "usr/sbin/apm")).st_ino

    new = make_release(apm_file, str(tmp_path / "apm"), "next")
    proc = apm_cmd(new, "install", root=prefix)
    assert proc.returncode == 0, explain(proc)
    assert f"upgraded build {build_id(apm_file)[:12]} -> {build_id(new)[:12]}" in proc.stdout
    assert "removed 1 old extraction(s)" in proc.stdout
    binary = os.path.join(prefix, "usr/sbin/apm")
    assert build_id(binary) == build_id(new)
    assert os.stat(binary).st_ino != old_inode  # a new file renamed into place, not rewritten
    assert os.listdir(os.path.join(prefix, "usr/sbin")) == ["apm"]  # no temp file left
    assert sorted(os.listdir(os.path.join(prefix, "var/lib/apm/shiv"))) == [
        f".apm_{build_id(new)}_lock",
        f"apm_{build_id(new)}",
    ]
    assert (os.stat(conf).st_mtime_ns, os.stat(conf).st_ino) == (conf_stat.st_mtime_ns, conf_stat.st_ino)
    assert read(dropin) == "worker { name api; exec node; }\n"
    assert "an old log line" in read(os.path.join(prefix, "var/log/apm.log"))
    assert group_gid(prefix) == gid
    assert json.loads(read(os.path.join(prefix, "var/lib/apm/install.json")))["build_id"] == build_id(new)


def test_uninstall_stops_the_daemon_and_keeps_config(prefix, apm_file, tmp_path):
    proc = apm_cmd(apm_file, "install", root=prefix, init="sysv")
    assert proc.returncode == 0, explain(proc)
    write(os.path.join(prefix, "var/lib/apm/state.json"), '{"workers": []}\n', 0o600)
    fake = write(str(tmp_path / "bin" / "apm"), FAKE_DAEMON, 0o755)
    record = str(tmp_path / "daemon.json")
    daemon = subprocess.Popen([HOST_PYTHON, fake, "daemon"], env={"FAKE_DAEMON_OUT": record})
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(record) and time.monotonic() < deadline:
            time.sleep(0.05)
        write(os.path.join(prefix, "var/lib/apm/apm.pid"), f"{daemon.pid}\n")
        proc = apm_cmd(apm_file, "uninstall", root=prefix, init=None)
        assert proc.returncode == 0, explain(proc)
        assert daemon.wait(20) == 0  # it got SIGTERM (its handler exits 0)
        assert f"stopping the apm daemon (pid {daemon.pid}" in proc.stdout
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    for gone in ("usr/sbin/apm", "etc/init.d/apm", "var/lib/apm/shiv"):
        assert not os.path.lexists(os.path.join(prefix, gone)), gone
    assert not glob.glob(os.path.join(prefix, "etc/rc?.d/*apm"))
    assert read(os.path.join(prefix, "etc/apm/apm.conf")) == DEFAULT_CONFIG
    assert os.path.isdir(os.path.join(prefix, "etc/apm/apm.conf.d"))
    assert read(os.path.join(prefix, "var/lib/apm/state.json")) == '{"workers": []}\n'
    assert os.path.exists(os.path.join(prefix, "var/log/apm.log"))
    assert group_gid(prefix) is not None
    assert "kept your configuration" in proc.stdout


@pytest.mark.parametrize("init", ["systemd", "openrc", "sysv", "none"])
def test_purge_removes_everything(prefix, apm_file, init):
    before = snapshot(prefix)
    proc = apm_cmd(apm_file, "install", root=prefix, init=init)
    assert proc.returncode == 0, explain(proc)
    proc = apm_cmd(apm_file, "uninstall", "--purge", root=prefix, init=None)
    assert proc.returncode == 0, explain(proc)
    assert_same_tree(before, snapshot(prefix))


def test_unknown_init_system_installs_and_says_how_to_start(prefix, apm_file):
    proc = apm_cmd(apm_file, "install", root=prefix, init=None)  # the empty prefix has no init system
    assert proc.returncode == 0, explain(proc)
    assert "will NOT start at boot" in proc.stderr and "apm daemon" in proc.stderr and "apm list" in proc.stderr
    assert os.path.exists(os.path.join(prefix, "usr/sbin/apm"))
    assert not os.path.exists(os.path.join(prefix, "etc/init.d/apm"))


def test_not_root_is_refused(prefix, apm_file):
    folder = tempfile.mkdtemp(prefix="apm-nobody-", dir="/var/tmp")
    try:
        os.chmod(folder, 0o755)
        shutil.copy(apm_file, os.path.join(folder, "apm"))
        shutil.copy(INSTALL_SH, os.path.join(folder, "install.sh"))
        before = snapshot(prefix)
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        env = {"APM_INSTALL_ROOT": prefix, "APM_INIT": "systemd", "HOME": "/nonexistent"}
        for argv in (
            [*nobody, HOST_PYTHON, os.path.join(folder, "apm"), "install"],
            [*nobody, HOST_PYTHON, os.path.join(folder, "apm"), "uninstall", "--purge"],
            [*nobody, "bash", os.path.join(folder, "install.sh")],
        ):
            proc = run(argv, env=env)
            assert proc.returncode == 5, explain(proc)
            assert "must run as root (you are uid 65534, nobody)" in proc.stderr, explain(proc)
            assert "sudo" in proc.stderr
        assert_same_tree(before, snapshot(prefix))
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize(("target", "named"), [("usr/sbin", "/usr/sbin"), ("etc", "/etc/apm")])
def test_read_only_target_is_refused(prefix, apm_file, target, named):
    folder = os.path.join(prefix, target)
    os.makedirs(folder, exist_ok=True)
    subprocess.run(["mount", "--bind", folder, folder], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", folder], check=True)
        before = snapshot(prefix)
        proc = apm_cmd(apm_file, "install", root=prefix)
        assert proc.returncode == 11, explain(proc)
        assert f"{named} is on a read-only filesystem (mount {folder} (ro" in proc.stderr, explain(proc)
        assert "remount it read-write" in proc.stderr and "nothing was changed" in proc.stderr
        proc = run(["bash", INSTALL_SH], env={"APM_INSTALL_ROOT": prefix, "APM_INIT": "systemd", "APM_FILE": apm_file})
        assert proc.returncode == 11, explain(proc)
        assert_same_tree(before, snapshot(prefix))
    finally:
        unmount_all(folder)


def test_noexec_library_folder_falls_back_or_fails_clearly(prefix, apm_file):
    var_lib_apm = os.path.join(prefix, "var/lib/apm")
    os.makedirs(var_lib_apm)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec,size=64m", "apm-test", var_lib_apm], check=True)
    try:
        proc = apm_cmd(apm_file, "install", root=prefix)
        assert proc.returncode == 0, explain(proc)
        assert f"/var/lib/apm/shiv is on a noexec mount (mount {var_lib_apm} (" in proc.stderr, explain(proc)
        assert "so they go to /usr/lib/apm/shiv" in proc.stderr
        unit = read(os.path.join(prefix, "etc/systemd/system/apm.service"))
        assert "Environment=SHIV_ROOT=/usr/lib/apm/shiv\n" in unit
        assert os.path.isdir(os.path.join(prefix, f"usr/lib/apm/shiv/apm_{build_id(apm_file)}/site-packages"))

        proc = apm_cmd(apm_file, "install", "--shiv-root", "/var/lib/apm/shiv", root=prefix)
        assert proc.returncode == 12, explain(proc)
        assert "no folder can hold the bundled native libraries" in proc.stderr
        assert "mount -o remount,exec" in proc.stderr
    finally:
        unmount_all(var_lib_apm)
    proc = apm_cmd(apm_file, "uninstall", "--purge", root=prefix, init=None)
    assert proc.returncode == 0, explain(proc)
    assert not os.path.exists(os.path.join(prefix, "usr/lib/apm"))


def test_no_suitable_python(prefix, apm_file, tmp_path):
    fakebin = tmp_path / "fakebin"
    fake = write(str(fakebin / "python3"), FAKE_PY38.format(python=HOST_PYTHON), 0o755)
    proc = run(["/bin/bash", INSTALL_SH], env={"PATH": str(fakebin), "APM_INSTALL_ROOT": prefix})
    assert proc.returncode == 10, explain(proc)
    assert f"no Python 3.9 or newer found; found only: {fake} (3.8.10)" in proc.stderr, explain(proc)
    assert "what to do: run: apt-get install -y python3, then re-run this installer" in proc.stderr
    proc = run(["/bin/bash", INSTALL_SH], env={"PATH": str(tmp_path / "empty"), "APM_INSTALL_ROOT": prefix})
    assert proc.returncode == 10, explain(proc)
    assert "no Python found" in proc.stderr and "apt-get install -y python3" in proc.stderr
    proc = apm_cmd(apm_file, "install", "--python", fake, root=prefix)
    assert proc.returncode == 10, explain(proc)
    assert f"--python {fake} is Python 3.8.10; apm needs 3.9 or newer" in proc.stderr
    assert not os.path.exists(os.path.join(prefix, "usr"))


def test_install_sh_from_a_checkout_builds_then_installs(prefix):
    proc = run(
        ["bash", INSTALL_SH],
        env={"APM_INSTALL_ROOT": prefix, "APM_INIT": "none", "APM_BUILD_PYTHON": sys.executable},
        timeout=600,
    )
    assert proc.returncode == 0, explain(proc)
    assert f"source checkout {ROOT}: building dist/apm" in proc.stdout
    assert "APM_INIT=none: no init service installed" in proc.stdout
    built = os.path.join(ROOT, "dist", "apm")
    assert body(os.path.join(prefix, "usr/sbin/apm")) == body(built)


def test_install_sh_rejects_bad_downloads_on_this_host(prefix, file_server):
    """Same checks as the chroot test, with the host's curl doing the download."""
    env = {"APM_INSTALL_ROOT": prefix, "APM_INIT": "systemd"}
    script = read(INSTALL_SH)
    proc = run(["bash"], input=script, env={**env, "APM_URL": file_server.url + "/not-a-zip"})
    assert proc.returncode == 13 and "not an intact apm zipapp" in proc.stderr, explain(proc)
    proc = run(["bash"], input=script, env={**env, "APM_URL": file_server.url + "/apm", "APM_SHA256": "f" * 64})
    assert proc.returncode == 13 and "but APM_SHA256 is" in proc.stderr, explain(proc)
    assert os.listdir(prefix) == ["etc"]
    proc = run(["bash"], input=script, env={**env, "APM_URL": file_server.url + "/apm"})
    assert proc.returncode == 0, explain(proc)
    assert os.path.exists(os.path.join(prefix, "usr/sbin/apm"))

"""alter.install without root and without the real system: a temp install root, a fake System.

The integration tests (tests/integration/test_install.py) run the same code for
real: the built zipapp, a Debian chroot, real mounts and users.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from typing import Dict, List, Tuple

import pytest

from alter.config.loader import load_file
from alter.config.options import DAEMON_OPTIONS
from alter.install import detect, installer, main, services
from alter.install.defaults import DEFAULT_CONFIG, bundled_ip_file
from alter.install.detect import InitSystem
from alter.install.errors import InstallError, NotRoot, UsageError
from alter.install.installer import Installer
from alter.install.system import Groups, Layout, System, looks_like_daemon

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class FakeSystem(System):
    """No commands, no chown, a chosen euid: records what the installer asked for."""

    def __init__(self, euid: int = 0) -> None:
        self._euid = euid
        self.commands: List[List[str]] = []
        self.owners: Dict[int, Tuple[int, int]] = {}  # by inode: files are chown'ed before their rename
        self.killed: List[Tuple[int, int]] = []

    def euid(self) -> int:
        return self._euid

    def user_name(self) -> str:
        return "tester"

    def which(self, name: str):
        return None

    def run(self, argv, check=True, timeout=180):
        self.commands.append(list(argv))
        return subprocess.CompletedProcess(argv, 0, "", "")

    def chown(self, path: str, uid: int, gid: int) -> None:
        self.owners[os.lstat(path).st_ino] = (uid, gid)

    def owner(self, path: str) -> Tuple[int, int]:
        return self.owners[os.lstat(path).st_ino]


class OfflineInstaller(Installer):
    """Skips the child process that extracts the real zipapp (the integration tests run it)."""

    def extract(self, python, shiv):
        build_id = installer.native.build_id_of(self.p(installer.BINARY))
        site = os.path.join(self.p(shiv), f"apm_{build_id}", "site-packages")
        os.makedirs(site, exist_ok=True)
        open(os.path.join(self.p(shiv), f".apm_{build_id}_lock"), "w").close()
        return {"site": site, "build_id": build_id, "version": "0.0-test", "native": "ok"}


def make_zipapp(path: str, build_id: str, shebang: bytes = b"#!/usr/bin/env python3\n") -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("__main__.py", "print('fake apm')\n")
        zf.writestr("environment.json", json.dumps({"build_id": build_id}))
    with open(path, "wb") as f:
        f.write(shebang + buf.getvalue())
    return path


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "group").write_text("root:x:0:\nadm:x:4:\nnogroup:x:65534:\n")
    return str(r)


def run_install(root: str, source: str, init: str = "systemd", system=None, **kw):
    out, err = io.StringIO(), io.StringIO()
    inst = OfflineInstaller(Layout(root), system or FakeSystem(), {"APM_INIT": init}, out, err)
    code = inst.install(source=source, **kw)
    return inst, code, out.getvalue(), err.getvalue()


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def listing(root: str) -> List[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(found)


def mode(path: str) -> int:
    return os.stat(path).st_mode & 0o7777


# --------------------------------------------------------------------------- install


def test_install_creates_every_file_with_its_mode_and_owner(root, tmp_path):
    src = make_zipapp(str(tmp_path / "apm"), "a" * 64)
    fake = FakeSystem()
    inst, code, out, err = run_install(root, src, system=fake)
    assert code == 0, err
    p = inst.p
    gid = Groups(Layout(root), fake).gid("apm")
    assert gid is not None and 100 <= gid <= 999
    expect = {
        "/usr/sbin/apm": (0o755, (0, 0)),
        "/var/log/apm.log": (0o640, (0, gid)),
        "/etc/apm/apm.conf": (0o640, (0, gid)),
        "/etc/apm/ips/cloudflare-v4.part": (0o644, (0, 0)),
        "/etc/apm/ips/cloudflare-v6.part": (0o644, (0, 0)),
        "/etc/systemd/system/apm.service": (0o644, (0, 0)),
        "/var/lib/apm/install.json": (0o644, (0, 0)),
    }
    for path, (want_mode, owner) in expect.items():
        assert mode(p(path)) == want_mode, path
        assert fake.owner(p(path)) == owner, path
    for path in ("/etc/apm", "/etc/apm/apm.conf.d", "/etc/apm/ips", "/var/lib/apm", "/var/lib/apm/shiv"):
        assert os.path.isdir(p(path)) and mode(p(path)) == 0o755, path
    assert (
        os.readlink(p("/etc/systemd/system/multi-user.target.wants/apm.service")) == "/etc/systemd/system/apm.service"
    )
    with open(p("/usr/sbin/apm"), "rb") as f:
        assert f.readline().startswith(b"#!")
    assert zipfile.is_zipfile(p("/usr/sbin/apm"))
    assert read(p("/etc/apm/apm.conf")) == DEFAULT_CONFIG
    manifest = json.loads(read(p("/var/lib/apm/install.json")))
    assert manifest["build_id"] == "a" * 64 and manifest["init"] == "systemd"
    assert "/etc/systemd/system/multi-user.target.wants" in manifest["created_dirs"]
    assert "not started: an install root" in out
    assert fake.commands == []  # a prefix install never runs host tools


def test_rerun_upgrades_in_place_and_keeps_user_config(root, tmp_path):
    run_install(root, make_zipapp(str(tmp_path / "v1"), "1" * 64))
    conf = os.path.join(root, "etc/apm/apm.conf")
    with open(conf, "a") as f:
        f.write("# my change\n")
    dropin = os.path.join(root, "etc/apm/apm.conf.d/web.conf")
    with open(dropin, "w") as f:
        f.write("worker { name web; exec node; }\n")
    before_conf = read(conf)
    inode = os.stat(os.path.join(root, "usr/sbin/apm")).st_ino
    inst, code, out, err = run_install(root, make_zipapp(str(tmp_path / "v2"), "2" * 64))
    assert code == 0, err
    assert read(conf) == before_conf
    assert read(dropin) == "worker { name web; exec node; }\n"
    assert "exists: kept as it is" in out
    assert "upgraded /usr/sbin/apm" in out and "upgraded build 111111111111 -> 222222222222" in out
    assert os.stat(os.path.join(root, "usr/sbin/apm")).st_ino != inode  # replaced by rename, not rewritten
    assert installer.native.build_id_of(os.path.join(root, "usr/sbin/apm")) == "2" * 64
    shiv = sorted(os.listdir(os.path.join(root, "var/lib/apm/shiv")))
    assert shiv == [".apm_" + "2" * 64 + "_lock", "apm_" + "2" * 64]  # the old extraction is gone
    assert not [n for n in os.listdir(os.path.join(root, "usr/sbin")) if n != "apm"]  # no temp files left


def test_uninstall_keeps_config_state_logs_and_group(root, tmp_path):
    inst, _, _, _ = run_install(root, make_zipapp(str(tmp_path / "apm"), "a" * 64))
    state = inst.p("/var/lib/apm/state.json")
    with open(state, "w") as f:
        f.write("{}")
    out = io.StringIO()
    code = OfflineInstaller(Layout(root), FakeSystem(), {}, out, io.StringIO()).uninstall()
    assert code == 0
    for gone in (
        "/usr/sbin/apm",
        "/etc/systemd/system/apm.service",
        "/var/lib/apm/shiv",
        "/etc/systemd/system/multi-user.target.wants",
    ):
        assert not os.path.lexists(inst.p(gone)), gone
    for kept in (
        "/etc/apm/apm.conf",
        "/etc/apm/apm.conf.d",
        "/etc/apm/ips/cloudflare-v4.part",
        "/var/log/apm.log",
        "/var/lib/apm/state.json",
    ):
        assert os.path.exists(inst.p(kept)), kept
    assert "apm:x:" in read(os.path.join(root, "etc/group"))
    assert "kept your configuration" in out.getvalue()


@pytest.mark.parametrize("init", ["systemd", "openrc", "sysv", "none"])
def test_purge_leaves_nothing(root, tmp_path, init):
    before = listing(root)
    group_before = read(os.path.join(root, "etc/group"))
    run_install(root, make_zipapp(str(tmp_path / "apm"), "a" * 64), init=init)
    code = OfflineInstaller(Layout(root), FakeSystem(), {}, io.StringIO(), io.StringIO()).uninstall(purge=True)
    assert code == 0
    assert listing(root) == before
    assert read(os.path.join(root, "etc/group")) == group_before


def test_uninstall_when_nothing_is_installed(root):
    out = io.StringIO()
    assert OfflineInstaller(Layout(root), FakeSystem(), {}, out, io.StringIO()).uninstall() == 0
    assert "nothing to do" in out.getvalue()


def test_not_root_is_refused_before_anything_changes(root, tmp_path):
    before = listing(root)
    src = make_zipapp(str(tmp_path / "apm"), "a" * 64)
    with pytest.raises(NotRoot) as info:
        run_install(root, src, system=FakeSystem(euid=1000))
    assert info.value.exit_code == 5
    assert "must run as root (you are uid 1000, tester)" in info.value.message
    assert "sudo apm install" in info.value.hint
    with pytest.raises(NotRoot):
        OfflineInstaller(Layout(root), FakeSystem(euid=1000), {}).uninstall(purge=True)
    assert listing(root) == before


def test_read_only_target_is_refused_before_anything_changes(root, tmp_path, monkeypatch):
    before = listing(root)
    ro = os.path.join(root, "usr/sbin")
    monkeypatch.setattr(detect, "is_read_only", lambda path: path.startswith(ro) or path == os.path.join(root, "usr"))
    with pytest.raises(InstallError) as info:
        run_install(root, make_zipapp(str(tmp_path / "apm"), "a" * 64))
    assert info.value.exit_code == InstallError.READ_ONLY
    assert info.value.message.startswith("/usr/sbin is on a read-only filesystem")
    assert "remount it read-write" in info.value.hint
    assert listing(root) == before


def test_noexec_shiv_root_falls_back_and_says_so(root, tmp_path, monkeypatch):
    monkeypatch.setattr(detect, "is_noexec", lambda path: "/var/lib/apm" in path or path.endswith("/var/lib"))
    inst, code, out, err = run_install(root, make_zipapp(str(tmp_path / "apm"), "a" * 64))
    assert code == 0
    assert "/var/lib/apm/shiv is on a noexec mount" in err and "/usr/lib/apm/shiv" in err
    assert "Environment=SHIV_ROOT=/usr/lib/apm/shiv" in read(inst.p("/etc/systemd/system/apm.service"))
    assert os.path.isdir(inst.p("/usr/lib/apm/shiv"))
    assert OfflineInstaller(Layout(root), FakeSystem(), {}, io.StringIO(), io.StringIO()).uninstall(purge=True) == 0
    assert not os.path.exists(inst.p("/usr/lib/apm"))


def test_noexec_everywhere_fails_clearly(root, tmp_path, monkeypatch):
    monkeypatch.setattr(detect, "is_noexec", lambda path: True)
    with pytest.raises(InstallError) as info:
        run_install(root, make_zipapp(str(tmp_path / "apm"), "a" * 64))
    assert info.value.exit_code == InstallError.NOEXEC
    assert "noexec" in info.value.message and "--shiv-root" in info.value.hint


def test_unknown_init_installs_and_says_how_to_start(root, tmp_path, monkeypatch):
    monkeypatch.setattr(detect, "detect_init", lambda env, r: InitSystem("unknown", False, "nothing found"))
    inst, code, out, err = run_install(root, make_zipapp(str(tmp_path / "apm"), "a" * 64))
    assert code == 0
    assert os.path.exists(inst.p("/usr/sbin/apm"))
    assert "will NOT start at boot" in err and "apm daemon" in err and "apm list" in err
    assert not os.path.exists(inst.p("/etc/systemd/system/apm.service"))
    assert not os.path.exists(inst.p("/etc/init.d/apm"))


def test_shebang_names_the_chosen_python_when_env_python3_is_too_old(root, tmp_path, monkeypatch):
    monkeypatch.setattr(detect, "env_python3_ok", lambda: False)
    inst, code, _, _ = run_install(root, make_zipapp(str(tmp_path / "apm"), "a" * 64), python=sys.executable)
    with open(inst.p("/usr/sbin/apm"), "rb") as f:
        first = f.readline().decode().strip()
    assert first == "#!" + detect.stable_python(os.path.abspath(sys.executable))
    assert zipfile.ZipFile(inst.p("/usr/sbin/apm")).read("__main__.py")  # still a valid zipapp


def test_source_must_be_a_zipapp(root, tmp_path):
    bad = tmp_path / "apm"
    bad.write_text("<html>not found</html>")
    with pytest.raises(InstallError) as info:
        run_install(root, str(bad))
    assert info.value.exit_code == InstallError.NOT_BUILT


def test_source_checkout_without_build_is_refused(root, monkeypatch, tmp_path):
    monkeypatch.setattr(installer.native, "archive_path", lambda: None)
    monkeypatch.setattr(sys, "argv", [os.path.join(ROOT, "alter", "install", "__main__.py")])
    monkeypatch.setattr(installer.os.path, "isfile", lambda p: False if p.endswith("dist/apm") else os.path.exists(p))
    inst = Installer(Layout(root), FakeSystem(), {}, io.StringIO(), io.StringIO())
    with pytest.raises(InstallError) as info:
        inst.locate_source(None)
    assert info.value.exit_code == InstallError.NOT_BUILT
    assert "python3 build.py" in info.value.hint


def test_python_too_old_is_refused(tmp_path):
    fake = tmp_path / "python3.8"
    fake.write_text(FAKE_PY38)
    fake.chmod(0o755)
    with pytest.raises(InstallError) as info:
        detect.choose_python(str(fake), sys.executable)
    assert info.value.exit_code == InstallError.NO_PYTHON
    assert "is Python 3.8.10; apm needs 3.9 or newer" in info.value.message


FAKE_PY38 = f"""#!{sys.executable}
import sys
sys.version_info = (3, 8, 10, "final", 0)
if len(sys.argv) > 2 and sys.argv[1] == "-c":
    exec(compile(sys.argv[2], "<string>", "exec"), {{"__name__": "__main__"}})
"""


# --------------------------------------------------------------------------- stopping the daemon


def test_uninstall_signals_only_an_apm_daemon(root, tmp_path):
    class Procs(FakeSystem):
        def __init__(self, argv):
            super().__init__()
            self.argv = argv
            self.live = True

        def alive(self, pid):
            return self.live

        def cmdline(self, pid):
            return self.argv

        def kill(self, pid, sig):
            self.killed.append((pid, sig))
            self.live = False
            return True

    run_install(root, make_zipapp(str(tmp_path / "apm"), "a" * 64))
    with open(os.path.join(root, "var/lib/apm/apm.pid"), "w") as f:
        f.write("4242\n")
    daemon = Procs(["/usr/bin/python3", "/usr/sbin/apm", "daemon"])
    OfflineInstaller(Layout(root), daemon, {}, io.StringIO(), io.StringIO()).uninstall()
    assert daemon.killed == [(4242, 15)]

    run_install(root, make_zipapp(str(tmp_path / "apm"), "a" * 64))
    with open(os.path.join(root, "var/lib/apm/apm.pid"), "w") as f:
        f.write("4242\n")
    other = Procs(["/usr/sbin/nginx", "-g", "daemon off;"])
    err = io.StringIO()
    OfflineInstaller(Layout(root), other, {}, io.StringIO(), err).uninstall()
    assert other.killed == []
    assert "pid 4242" in err.getvalue() and "is not an apm daemon" in err.getvalue()


def test_looks_like_daemon():
    looks = looks_like_daemon
    assert looks(["/usr/bin/python3", "/usr/sbin/apm", "daemon"])
    assert looks(["python3.11", "/tmp/x/apm", "daemon", "--foreground"])
    assert not looks(["/usr/bin/python3", "/usr/sbin/apm", "list"])
    assert not looks(["sleep", "daemon"])


# --------------------------------------------------------------------------- detection


def test_detect_init_forced_and_probed(tmp_path):
    r = str(tmp_path)
    assert detect.detect_init({"APM_INIT": "openrc"}, r).kind == "openrc"
    assert detect.detect_init({"APM_INIT": "none"}, r).kind == "none"
    with pytest.raises(UsageError) as info:
        detect.detect_init({"APM_INIT": "upstart"}, r)
    assert info.value.exit_code == 2 and "APM_INIT='upstart'" in info.value.message
    assert detect.detect_init({}, r).kind == "unknown"
    os.makedirs(os.path.join(r, "etc/init.d"))
    assert detect.detect_init({}, r).kind == "sysv"
    os.makedirs(os.path.join(r, "usr/sbin"))
    tool = os.path.join(r, "usr/sbin/openrc-run")
    open(tool, "w").close()
    os.chmod(tool, 0o755)
    assert detect.detect_init({}, r).kind == "openrc"
    os.makedirs(os.path.join(r, "run/systemd/system"))
    found = detect.detect_init({}, r)
    assert found.kind == "systemd" and not found.running  # a prefix is never "running"


def test_python_install_hint_per_distro():
    hint = detect.python_install_hint
    assert hint({"ID": "debian", "VERSION_ID": "12"}) == "apt-get install -y python3"
    assert hint({"ID": "ubuntu", "VERSION_ID": "20.04"}) == "apt-get install -y python3.9"
    assert hint({"ID": "rocky", "VERSION_ID": "8.9", "ID_LIKE": "rhel centos fedora"}) == "dnf install -y python39"
    assert hint({"ID": "rocky", "VERSION_ID": "9.3", "ID_LIKE": "rhel centos fedora"}) == "dnf install -y python3"
    assert hint({"ID": "alpine", "VERSION_ID": "3.19.1"}) == "apk add python3"
    assert hint({"ID": "arch"}) == "pacman -S --noconfirm python"
    assert hint({"ID": "pop", "ID_LIKE": "ubuntu debian"}) == "apt-get install -y python3"
    assert "package manager" in hint({})


def test_install_sh_has_the_same_python_hints():
    """install.sh keeps its own copy of the table (it runs before any Python exists)."""
    script = read(os.path.join(ROOT, "install.sh"))
    for command in (
        "apt-get install -y python3",
        "apt-get install -y python3.9",
        "dnf install -y python39",
        "dnf install -y python3",
        "apk add python3",
        "pacman -S --noconfirm python",
        "zypper install -y python311",
        "emerge dev-lang/python",
        "xbps-install -y python3",
    ):
        assert command in script, command


def test_mount_of_reads_mountinfo(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "40 27 0:50 / /var rw,nosuid,noexec - ext4 /dev/vdb rw\n"
        "41 27 0:51 / /srv/my\\040disk ro,relatime - ext4 /dev/vdc ro\n"
    )
    assert detect.mount_of("/var/lib/apm/shiv", str(info)).options == ("rw", "nosuid", "noexec")
    assert detect.mount_of("/usr/sbin", str(info)).mount_point == "/"
    assert detect.mount_of("/srv/my disk/x", str(info)).mount_point == "/srv/my disk"


def test_existing_ancestor(tmp_path):
    assert detect.existing_ancestor(str(tmp_path / "a" / "b")) == str(tmp_path)


# --------------------------------------------------------------------------- groups


def test_group_file_editing_picks_a_free_system_gid(root):
    with open(os.path.join(root, "etc/group"), "a") as f:
        f.write("taken:x:999:\n")
    with open(os.path.join(root, "etc/gshadow"), "w") as f:
        f.write("root:*::\n")
    groups = Groups(Layout(root), FakeSystem())
    gid, created = groups.ensure("apm")
    assert (gid, created) == (998, True)
    assert groups.ensure("apm") == (998, False)
    assert "apm:!::" in read(os.path.join(root, "etc/gshadow"))
    assert groups.remove("apm")
    assert "apm" not in read(os.path.join(root, "etc/group"))
    assert "apm" not in read(os.path.join(root, "etc/gshadow"))


# --------------------------------------------------------------------------- service files


def render(kind: str) -> str:
    svc = services.service_for(kind, Layout("/"), FakeSystem(), InitSystem(kind, False, "test"))
    assert svc is not None
    ((text, _mode),) = svc.render("/usr/bin/python3", "/var/lib/apm/shiv").values()
    return text


def test_systemd_unit():
    lines = render("systemd").splitlines()
    for line in (
        "Type=notify",
        "ExecStart=/usr/bin/python3 /usr/sbin/apm daemon",
        "KillMode=mixed",
        "Restart=on-failure",
        "Environment=SHIV_ROOT=/var/lib/apm/shiv",
        "WantedBy=multi-user.target",
        "TimeoutStopSec=90",
    ):
        assert line in lines, line


def test_openrc_script():
    text = render("openrc")
    assert text.startswith("#!/sbin/openrc-run\n")
    assert 'command="/usr/bin/python3"' in text and 'command_args="/usr/sbin/apm daemon"' in text
    assert 'supervisor="supervise-daemon"' in text and "SHIV_ROOT=/var/lib/apm/shiv" in text
    assert "depend() {\n\twant net\n" in text


def test_sysv_script_is_valid_bash_with_an_lsb_header(tmp_path):
    text = render("sysv")
    script = tmp_path / "apm"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    header = text.split("### BEGIN INIT INFO\n", 1)[1].split("### END INIT INFO", 1)[0]
    for key in ("Provides", "Required-Start", "Required-Stop", "Default-Start", "Default-Stop", "Short-Description"):
        assert f"# {key}:" in header, key
    for action in ("start)", "stop)", "restart|force-reload)", "status)"):
        assert action in text


def test_sysv_script_usage_exit_code(tmp_path):
    script = tmp_path / "apm"
    script.write_text(render("sysv"))
    proc = subprocess.run(["bash", str(script), "bogus"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Usage:" in proc.stderr


# --------------------------------------------------------------------------- bundled data


def test_default_config_and_ip_lists_load_with_the_real_parser(tmp_path):
    etc = tmp_path / "apm"
    (etc / "apm.conf.d").mkdir(parents=True)
    (etc / "apm.conf").write_text(DEFAULT_CONFIG)
    v4 = tmp_path / "v4.part"
    v6 = tmp_path / "v6.part"
    v4.write_bytes(bundled_ip_file("cloudflare-v4.part"))
    v6.write_bytes(bundled_ip_file("cloudflare-v6.part"))
    result = load_file(str(etc / "apm.conf"))
    assert result.errors == [] and result.warnings == []
    assert result.daemon == {"gui_port": 6789, "gui_bind": "127.0.0.1"}
    assert set(result.daemon) <= set(DAEMON_OPTIONS)
    (etc / "apm.conf.d" / "web.conf").write_text(
        f"worker {{ name web; exec node; vanguard {{ include {v4}; include {v6}; }} }}\n"
    )
    result = load_file(str(etc / "apm.conf"))
    assert result.errors == []
    allowed = result.workers[0].config["vanguard"]["allow_ip"]
    assert "173.245.48.0/20" in allowed and "2400:cb00::/32" in allowed and len(allowed) >= 20


# --------------------------------------------------------------------------- main()


def test_main_usage_and_help(capsys):
    assert main(["install", "--bogus"]) == 2
    assert main(["uninstall", "--help"]) == 0
    assert "--purge" in capsys.readouterr().out
    assert main([]) == 2


def test_import_stays_light():
    code = (
        "import sys, alter.install; "
        "bad = [m for m in ('psutil', 'argon2', 'alter.daemon', 'alter.supervise') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr

"""`apm install` / `apm uninstall [--purge]`: put apm on this machine, or take it off.

install.sh delegates here (it runs `<python> <downloaded apm> install`), so the
shell script and the command share this one implementation.  Every step is
idempotent: re-running upgrades in place and never touches a user's config.
See docs/install.md for the files, owners and modes.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import zipfile
from typing import Dict, List, Mapping, Optional, TextIO

from alter import native
from alter.install import detect, extraction, services
from alter.install.defaults import DEFAULT_CONFIG, bundled_ip_file
from alter.install.detect import InitSystem
from alter.install.errors import InstallError, NotRoot
from alter.install.extraction import FALLBACK_SHIV_ROOT
from alter.install.system import (
    GROUP,
    Groups,
    Layout,
    System,
    file_error,
    looks_like_daemon,
    make_dir,
    read_pid,
    remove_empty_dirs,
    remove_path,
    terminate,
    write_file,
)
from alter.paths import SHIV_ROOT, SYSTEM_CONFIG, SYSTEM_DAEMON_LOG, SYSTEM_LOG_DIR, SYSTEM_STATE

BINARY = services.BINARY
CONFIG_DIR = os.path.dirname(SYSTEM_CONFIG)  # /etc/apm
CONFIG_D = CONFIG_DIR + "/apm.conf.d"
IPS_DIR = CONFIG_DIR + "/ips"
IP_FILES = ("cloudflare-v4.part", "cloudflare-v6.part")
MANIFEST = SYSTEM_STATE + "/install.json"
SERVICE_PIDFILE = "/run/apm.pid"  # the OpenRC / SysV script's pidfile
ROOT_OWNER = (0, 0)


class Installer:
    """Installs/uninstalls apm under `layout.root` (see alter/install/system.py for the test seam)."""

    def __init__(
        self,
        layout: Layout,
        system: Optional[System] = None,
        env: Optional[Mapping[str, str]] = None,
        out: Optional[TextIO] = None,
        err: Optional[TextIO] = None,
    ) -> None:
        self.layout = layout
        self.system = system or System()
        self.env = os.environ if env is None else env
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.groups = Groups(layout, self.system)
        self.verb = "install"
        self.warnings: List[str] = []
        self.created: List[str] = []  # folders this run created (real paths)

    # ------------------------------------------------------------------ output

    def say(self, msg: str) -> None:
        print(f"apm {self.verb}: {msg}", file=self.out, flush=True)

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        print(f"apm {self.verb}: warning: {msg}", file=self.err, flush=True)

    def p(self, path: str) -> str:
        return self.layout.p(path)

    # ------------------------------------------------------------------ checks

    def require_root(self) -> None:
        euid = self.system.euid()
        if euid == 0:
            return
        raise NotRoot(
            f"apm {self.verb} must run as root (you are uid {euid}, {self.system.user_name()}): "
            f"it writes {BINARY}, {CONFIG_DIR}, {SYSTEM_STATE} and the init service",
            hint=f"re-run it with sudo: `sudo apm {self.verb}`",
        )

    def locate_source(self, explicit: Optional[str]) -> str:
        """The zipapp to install: --source, else the archive this code runs from, else dist/apm of a checkout."""
        if explicit:
            path = os.path.abspath(explicit)
            if not (os.path.isfile(path) and zipfile.is_zipfile(path)):
                raise InstallError(
                    f"--source {path} is not an apm zipapp (no such file, or not a zip archive)",
                    hint="point it at a file built by `python3 build.py` (dist/apm)",
                    exit_code=InstallError.NOT_BUILT,
                )
            return path
        archive = native.archive_path()
        if archive and zipfile.is_zipfile(archive):
            return archive
        argv0 = sys.argv[0] if sys.argv else ""
        if argv0 and os.path.isfile(argv0) and zipfile.is_zipfile(argv0):
            return os.path.abspath(argv0)
        import alter

        repo = os.path.dirname(os.path.dirname(os.path.abspath(alter.__file__)))
        built = os.path.join(repo, "dist", "apm")
        if os.path.isfile(built) and zipfile.is_zipfile(built):
            self.say(f"running from the source checkout {repo}: installing its build {built}")
            return built
        raise InstallError(
            f"apm install copies the built apm file, but this is the source checkout {repo} and {built} does not exist",
            hint=f"build it first: `cd {repo} && python3 build.py`, then `sudo python3 dist/apm install`",
            exit_code=InstallError.NOT_BUILT,
        )

    def check_writable(self, paths: List[str]) -> None:
        """Fail before changing anything if a target folder sits on a read-only mount."""
        for path in paths:
            real = self.p(path)
            if detect.is_read_only(real):
                where = detect.existing_ancestor(real)
                raise InstallError(
                    f"{path} is on a read-only filesystem ({detect.describe_mount(where)}): "
                    f"apm cannot be installed there",
                    hint=f"remount it read-write (`mount -o remount,rw {detect.mount_point(where)}`) and re-run "
                    "the installer; nothing was changed",
                    exit_code=InstallError.READ_ONLY,
                )

    def choose_shiv_root(self, requested: Optional[str]) -> str:
        """Folder for the extracted libraries: must allow exec (native .so files are mmap'ed PROT_EXEC)."""
        candidates = [os.path.abspath(requested)] if requested else [SHIV_ROOT, FALLBACK_SHIV_ROOT]
        problems = []
        remount = ""
        for candidate in candidates:
            real = self.p(candidate)
            if detect.is_noexec(real):
                problems.append(f"{candidate} is on a noexec mount ({detect.describe_mount(real)})")
                remount = remount or f"mount -o remount,exec {detect.mount_point(real)}"
                continue
            if detect.is_read_only(real):
                problems.append(f"{candidate} is on a read-only mount ({detect.describe_mount(real)})")
                continue
            if problems:
                self.warn(
                    "; ".join(problems) + f": the bundled native libraries cannot load from there, so they go to "
                    f"{candidate} (the service sets SHIV_ROOT={candidate}; to share it with the CLI, "
                    f"export SHIV_ROOT={candidate}). To use {SHIV_ROOT}, remount with exec and re-run `apm install`"
                )
            return candidate
        raise InstallError(
            "no folder can hold the bundled native libraries: " + "; ".join(problems),
            hint=f"remount it with exec (`{remount or 'mount -o remount,exec <mount point>'}`) or pass "
            "`--shiv-root DIR` on an exec-capable filesystem, then re-run; nothing was changed",
            exit_code=InstallError.NOEXEC,
        )

    # ------------------------------------------------------------------ install

    def install(
        self,
        python: Optional[str] = None,
        source: Optional[str] = None,
        shiv_root: Optional[str] = None,
        start: bool = True,
    ) -> int:
        self.verb = "install"
        self.require_root()
        src = self.locate_source(source)
        py, version = detect.choose_python(python, sys.executable)
        init = detect.detect_init(self.env, self.layout.root)
        service = services.service_for(init.kind, self.layout, self.system, init)
        targets = [os.path.dirname(BINARY), CONFIG_DIR, SYSTEM_STATE, os.path.dirname(SYSTEM_DAEMON_LOG)]
        if service:
            targets += [os.path.dirname(f) for f in service.files]
        self.check_writable(targets)
        shiv = self.choose_shiv_root(shiv_root)
        previous = self.read_manifest()
        upgrading = os.path.exists(self.p(BINARY))
        if not self.layout.real:
            self.say(f"installing under {self.layout.root} (APM_INSTALL_ROOT)")

        gid, created = self.groups.ensure(GROUP)
        self.say(f"group {GROUP} (gid {gid}) " + ("created" if created else "exists"))
        old_build = self.build_id(self.p(BINARY)) if upgrading else None
        shebang = self.install_binary(src, py)
        self.say(f"{'upgraded' if upgrading else 'installed'} {BINARY} (0755 root:root, {shebang})")
        make_dir(self.p(SYSTEM_STATE), 0o755, ROOT_OWNER, self.system, created=self.created)
        info = self.extract(py, shiv)
        self.say(f"libraries extracted to {info['site']} (Python {version[0]}.{version[1]}.{version[2]}: {py})")
        self.install_log(gid)
        self.install_config(gid)
        self.install_ip_lists()
        started = self.install_service(service, init, py, shiv, start)
        if not started.endswith("running"):
            self.warn_old_daemon(old_build, str(info["build_id"]))
        self.remove_old_extractions(shiv, str(info["build_id"]), previous)
        self.write_manifest(
            {
                "version": str(info.get("version") or ""),
                "build_id": str(info["build_id"]),
                "python": py,
                "shiv_root": shiv,
                "init": init.kind,
                "created_dirs": self.created_dirs(previous),
                "installed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            }
        )
        if old_build and old_build != info["build_id"]:
            self.say(f"upgraded build {old_build[:12]} -> {str(info['build_id'])[:12]}")
        if init.kind == "unknown":
            self.warn(
                f"no init system found ({init.why}): apm is installed but will NOT start at boot. "
                f"Start the daemon by hand with `sudo apm list` (the CLI starts it) or "
                f"`sudo SHIV_ROOT={shiv} {BINARY} daemon &`, and add that to your boot scripts; "
                f"or re-run with APM_INIT=systemd|openrc|sysv if this machine has one"
            )
        self.say(
            "done: "
            + (started or "no service")
            + f". Let users read {SYSTEM_DAEMON_LOG} with `usermod -aG {GROUP} <user>`; try `apm list`"
        )
        return 0

    def created_dirs(self, previous: Mapping[str, object]) -> List[str]:
        """Folders outside apm's own trees that some install created: uninstall removes them when empty."""
        own = (CONFIG_DIR, SYSTEM_STATE, SYSTEM_LOG_DIR)
        dirs = set(self.logical(p) for p in self.created)
        old = previous.get("created_dirs")
        if isinstance(old, list):
            dirs.update(str(d) for d in old)
        return sorted(d for d in dirs if not any(d == o or d.startswith(o + "/") for o in own))

    def logical(self, real: str) -> str:
        """The real-machine path of an on-disk path under the install root."""
        if self.layout.real:
            return real
        rel = os.path.relpath(real, self.layout.root)
        return "/" if rel == "." else "/" + rel

    def warn_old_daemon(self, old_build: Optional[str], new_build: str) -> None:
        """No service restarted the daemon: say so if one (e.g. started by the CLI) runs an older build."""
        pidfile = self.p(SYSTEM_STATE + "/apm.pid")
        pid = read_pid(pidfile)
        if pid is None or not self.system.alive(pid) or not looks_like_daemon(self.system.cmdline(pid)):
            return
        if old_build == new_build:
            return
        self.warn(
            f"the apm daemon (pid {pid}) still runs the previous build: restart it to use this one "
            f"(`sudo apm exit daemon` stops it and its workers; the next apm command starts the new one)"
        )

    def build_id(self, path: str) -> Optional[str]:
        try:
            return native.build_id_of(path)
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None

    def install_binary(self, src: str, python: str) -> str:
        """Copy the zipapp to /usr/sbin/apm atomically, with a shebang that finds Python >= 3.9."""
        try:
            with open(src, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise file_error(src, exc, "read") from exc
        body = data.split(b"\n", 1)[1] if data.startswith(b"#!") else data
        shebang = "#!/usr/bin/env python3" if detect.env_python3_ok() else f"#!{python}"
        target = self.p(BINARY)
        make_dir(os.path.dirname(target), 0o755, ROOT_OWNER, self.system, fix=False, created=self.created)
        write_file(target, shebang.encode() + b"\n" + body, 0o755, ROOT_OWNER, self.system)
        try:
            with zipfile.ZipFile(target) as zf:
                bad = zf.testzip()
        except zipfile.BadZipFile as exc:
            bad = str(exc)
        if bad:
            raise InstallError(
                f"{BINARY} is damaged after copying {src} (bad member {bad})",
                hint="download or build the apm file again and re-run the installer",
            )
        return shebang

    def extract(self, python: str, shiv: str) -> Dict[str, object]:
        """Pre-extract the bundled libraries into the shiv root, with the service's Python."""
        real_shiv = self.p(shiv)
        make_dir(real_shiv, 0o755, ROOT_OWNER, self.system, created=self.created)
        return extraction.run_extract(python, self.p(BINARY), real_shiv)

    def install_log(self, gid: int) -> None:
        path = self.p(SYSTEM_DAEMON_LOG)
        make_dir(os.path.dirname(path), 0o755, ROOT_OWNER, self.system, fix=False, created=self.created)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o640)
            os.close(fd)
            self.system.chown(path, 0, gid)
            os.chmod(path, 0o640)
        except OSError as exc:
            raise file_error(path, exc, "create") from exc
        self.say(f"{SYSTEM_DAEMON_LOG} (0640 root:{GROUP})")

    def install_config(self, gid: int) -> None:
        make_dir(self.p(CONFIG_DIR), 0o755, ROOT_OWNER, self.system, fix=False, created=self.created)
        conf = self.p(SYSTEM_CONFIG)
        if os.path.lexists(conf):
            self.say(f"{SYSTEM_CONFIG} exists: kept as it is")
        else:
            write_file(conf, DEFAULT_CONFIG.encode(), 0o640, (0, gid), self.system)
            self.say(f"{SYSTEM_CONFIG} created (0640 root:{GROUP})")
        if make_dir(self.p(CONFIG_D), 0o755, ROOT_OWNER, self.system, fix=False, created=self.created):
            self.say(f"{CONFIG_D}/ created")

    def install_ip_lists(self) -> None:
        folder = self.p(IPS_DIR)
        make_dir(folder, 0o755, ROOT_OWNER, self.system, created=self.created)
        for name in IP_FILES:
            write_file(os.path.join(folder, name), bundled_ip_file(name), 0o644, ROOT_OWNER, self.system)
        self.say(f"{IPS_DIR}/ cloudflare-v4.part, cloudflare-v6.part (bundled snapshot)")

    def install_service(
        self, service: Optional[services.Service], init: InitSystem, python: str, shiv: str, start: bool
    ) -> str:
        if service is None:
            if init.kind == "none":
                self.say("APM_INIT=none: no init service installed")
            return ""
        for path, (text, mode) in service.render(python, shiv).items():
            real = self.p(path)
            make_dir(os.path.dirname(real), 0o755, ROOT_OWNER, self.system, fix=False, created=self.created)
            write_file(real, text.encode(), mode, ROOT_OWNER, self.system)
            self.say(f"{init.kind} service {path} ({init.why})")
        how = service.enable()
        self.created.extend(service.created)
        if not service.live:
            if start and self.layout.real and not detect.in_chroot():
                # A container or VM whose init is not running: "install and start" still means started.
                self.start_directly(python, shiv)
                self.say(f"service enabled ({how}); {init.kind} is not running, so the daemon was started directly")
                return f"{init.kind} service enabled, daemon started directly"
            where = "an install root" if not self.layout.real else f"this machine is not running {init.kind} now"
            self.say(f"service enabled ({how}); not started: {where} (chroot, container or image build)")
            return f"{init.kind} service enabled, starts at the next boot"
        if not start:
            self.say(f"service enabled ({how}); not started (--no-start)")
            return f"{init.kind} service enabled, not started"
        try:
            note = service.restart()
        except InstallError as exc:
            logs = "journalctl -u apm -n 50" if init.kind == "systemd" else f"tail -n 50 {SYSTEM_DAEMON_LOG}"
            raise InstallError(
                f"apm is installed, but the {init.kind} service did not start: {exc.message}",
                hint=f"see `{logs}`, fix the cause, then re-run `sudo apm install`",
            ) from exc
        if note:
            self.say(f"service enabled ({how}); not started: {note}")
            return f"{init.kind} service enabled, not started"
        self.say(f"service enabled ({how}) and (re)started")
        return f"{init.kind} service running"

    def start_directly(self, python: str, shiv: str) -> None:
        """Start `apm daemon --detach` ourselves (no running init system to do it)."""
        import subprocess

        env = dict(os.environ, SHIV_ROOT=shiv)
        env.pop("APM_HOME", None)
        env.pop("APM_SOCKET", None)
        proc = subprocess.run(
            [python, BINARY, "daemon", "--detach"], env=env, capture_output=True, text=True, timeout=60, cwd="/"
        )
        if proc.returncode != 0 and "already listening" not in proc.stderr:
            raise InstallError(
                f"apm is installed, but `apm daemon --detach` failed: {proc.stderr.strip() or proc.returncode}",
                hint=f"see `tail -n 50 {SYSTEM_DAEMON_LOG}`, fix the cause, then re-run `sudo apm install`",
            )

    def remove_old_extractions(self, shiv: str, build_id: str, previous: Mapping[str, object]) -> None:
        roots = {shiv}
        old = previous.get("shiv_root")
        if isinstance(old, str) and old:
            roots.add(old)
        keep = extraction.keep_names(build_id)
        removed = 0
        for root in sorted(roots):
            removed += extraction.remove_extractions(self.p(root), keep if root == shiv else set())
        if removed:
            self.say(f"removed {removed} old extraction(s)")

    def read_manifest(self) -> Dict[str, object]:
        try:
            with open(self.p(MANIFEST)) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_manifest(self, data: Mapping[str, object]) -> None:
        text = json.dumps(dict(data), indent=2, sort_keys=True) + "\n"
        write_file(self.p(MANIFEST), text.encode(), 0o644, ROOT_OWNER, self.system)

    # ------------------------------------------------------------------ uninstall

    def uninstall(self, purge: bool = False, stop_timeout: float = services.STOP_TIMEOUT) -> int:
        self.verb = "uninstall"
        self.require_root()
        manifest = self.read_manifest()
        kinds = services.installed_services(self.layout)
        recorded = manifest.get("init")
        if isinstance(recorded, str) and recorded in services.SERVICES and recorded not in kinds:
            kinds.append(recorded)
        found = kinds or os.path.lexists(self.p(BINARY)) or os.path.lexists(self.p(MANIFEST))
        if not found and not purge:
            self.say(f"apm is not installed here ({BINARY} and its service are absent): nothing to do")
            return 0
        svcs = [self._service(kind) for kind in kinds]
        for svc in svcs:
            svc.stop()
        self.stop_daemon(stop_timeout)
        for svc in svcs:
            svc.disable()
            for path in svc.files:
                if remove_path(self.p(path)):
                    self.say(f"removed {svc.kind} service {path}")
            svc.after_remove()
        if remove_path(self.p(BINARY)):
            self.say(f"removed {BINARY}")
        remove_path(self.p(SERVICE_PIDFILE))
        self.remove_extraction_roots(manifest)
        complete = self.purge() if purge else True
        dirs = manifest.get("created_dirs")
        if isinstance(dirs, list):
            remove_empty_dirs([self.p(str(d)) for d in dirs])
        if purge:
            self.say(
                "purged: nothing of apm is left on this machine"
                if complete
                else f"purged everything except the group {GROUP} (see the warning above)"
            )
        else:
            self.say(
                f"kept your configuration {CONFIG_DIR}/, state {SYSTEM_STATE}/, logs {SYSTEM_DAEMON_LOG} and "
                f"{SYSTEM_LOG_DIR}/, and the group {GROUP}; `sudo apm install` brings apm back with them, "
                f"`apm uninstall --purge` removes them"
            )
        return 0

    def _service(self, kind: str) -> services.Service:
        running = detect.init_running(kind, self.layout.root)
        svc = services.service_for(kind, self.layout, self.system, InitSystem(kind, running, "installed"))
        assert svc is not None
        return svc

    def stop_daemon(self, timeout: float) -> None:
        """Stop a daemon the service manager did not (CLI-started, or no running init): SIGTERM its pid."""
        pidfile = self.p(SYSTEM_STATE + "/apm.pid")
        for path in (pidfile, self.p(SERVICE_PIDFILE)):
            pid = read_pid(path)
            if pid is None or not self.system.alive(pid):
                continue
            argv = self.system.cmdline(pid)
            if not looks_like_daemon(argv):
                self.warn(
                    f"pid {pid} in {path} is not an apm daemon (it runs `{' '.join(argv)[:200]}`): not signalling it"
                )
                continue
            self.say(f"stopping the apm daemon (pid {pid} from {path}) with SIGTERM")
            if terminate(self.system, pid, timeout):
                self.warn(f"the daemon (pid {pid}) was still running after {timeout:.0f}s: killed it with SIGKILL")

    def remove_extraction_roots(self, manifest: Mapping[str, object]) -> None:
        roots = [SHIV_ROOT, FALLBACK_SHIV_ROOT]
        recorded = manifest.get("shiv_root")
        if isinstance(recorded, str) and recorded and recorded not in roots:
            roots.append(recorded)
        for root in roots:
            real = self.p(root)
            if not os.path.isdir(real):
                continue
            if root in (SHIV_ROOT, FALLBACK_SHIV_ROOT):
                remove_path(real)  # ours alone
                if root == FALLBACK_SHIV_ROOT:
                    _remove_empty(os.path.dirname(real))
            else:
                extraction.remove_extractions(real, set())
            self.say(f"removed the extracted libraries in {root}")

    def purge(self) -> bool:
        """Remove config, state, logs and the group; False if the group had to stay (warned)."""
        for path in (CONFIG_DIR, SYSTEM_DAEMON_LOG, SYSTEM_LOG_DIR, SYSTEM_STATE, os.path.dirname(FALLBACK_SHIV_ROOT)):
            if remove_path(self.p(path)):
                self.say(f"removed {path}")
        try:
            if self.groups.remove(GROUP):
                self.say(f"removed the group {GROUP}")
        except InstallError as exc:  # everything else is gone: say what is left and how to remove it
            self.warn(f"{exc.message}; {exc.hint}")
            return False
        return True


def _remove_empty(folder: str) -> None:
    try:
        os.rmdir(folder)
    except OSError:
        pass

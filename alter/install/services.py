"""The init-system service for the root daemon: systemd, OpenRC or SysV.

One class per init system renders its file(s) and knows how to enable,
(re)start, stop and disable it.  Commands run only when the install root is
"/"; under an APM_INSTALL_ROOT prefix (tests) enabling is done by writing the
same symlinks the tools would, and nothing is started or stopped.
"""

from __future__ import annotations

import glob
import os
from typing import Dict, List, Optional, Tuple

from alter.install.detect import InitSystem
from alter.install.system import Layout, System, make_dir

BINARY = "/usr/sbin/apm"
SYSTEMD_UNIT = "/etc/systemd/system/apm.service"
INITD_SCRIPT = "/etc/init.d/apm"
STOP_TIMEOUT = 90  # seconds the daemon gets to stop its workers before SIGKILL

SYSTEMD_TEMPLATE = """\
# {path}: the apm daemon as a systemd service.
# Written by `apm install`, which rewrites it on every install/upgrade:
# put local changes in a drop-in (`systemctl edit apm`).
[Unit]
Description=apm process manager
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
Environment=SHIV_ROOT={shiv_root}
ExecStart={python} {binary} daemon
# The daemon stops its workers on SIGTERM; whatever is left after
# TimeoutStopSec is killed with the whole cgroup.
KillMode=mixed
TimeoutStopSec={stop_timeout}
Restart=on-failure
RestartSec=2
# The daemon places workers in their own cgroups (memory_limit).
Delegate=yes
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
"""

OPENRC_TEMPLATE = """\
#!/sbin/openrc-run
# {path}: the apm daemon as an OpenRC service.
# Written by `apm install`, which rewrites it on every install/upgrade:
# put local settings in /etc/conf.d/apm.

name="apm"
description="apm process manager"
supervisor="supervise-daemon"
command="{python}"
command_args="{binary} daemon"
pidfile="/run/apm.pid"
respawn_delay=2
respawn_max=5
respawn_period=60
retry="TERM/{stop_timeout}/KILL/5"
error_log="/var/log/apm.log"
export SHIV_ROOT="{shiv_root}"
supervise_daemon_args="--env SHIV_ROOT={shiv_root}"

# `want`, not `need`: apm must come up even where nothing provides `net`
# (a Debian host with OpenRC has no such service), it just starts after it.
depend() {{
\twant net
\tuse dns logger
\tafter net firewall
}}
"""

SYSV_TEMPLATE = """\
#!/bin/bash
### BEGIN INIT INFO
# Provides:          apm
# Required-Start:    $remote_fs $syslog $network
# Required-Stop:     $remote_fs $syslog $network
# Should-Start:      $named $time
# Should-Stop:       $named
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: apm process manager
# Description:       Starts the apm daemon, which supervises the workers
#                    configured in /etc/apm/apm.conf.
### END INIT INFO
# chkconfig: 2345 90 10
# description: apm process manager
#
# {path}: written by `apm install`, which rewrites it on every install/upgrade.

PYTHON="{python}"
APM="{binary}"
PIDFILE="/run/apm.pid"
DAEMON_PIDFILE="/var/lib/apm/apm.pid"
LOGFILE="/var/log/apm.log"
STOP_TIMEOUT={stop_timeout}
export SHIV_ROOT="{shiv_root}"
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The pid of a running apm daemon (ours, or one the CLI started), or nothing.
daemon_pid() {{
    local file pid cmd
    for file in "$PIDFILE" "$DAEMON_PIDFILE"; do
        [ -r "$file" ] || continue
        read -r pid < "$file" || continue
        case "$pid" in ''|*[!0-9]*) continue ;; esac
        [ -r "/proc/$pid/cmdline" ] || continue
        cmd=$(tr '\\0' ' ' < "/proc/$pid/cmdline")
        case "$cmd" in *apm*daemon*) echo "$pid"; return 0 ;; esac
    done
    return 1
}}

do_start() {{
    local pid i
    if pid=$(daemon_pid); then
        echo "apm is already running (pid $pid)"
        return 0
    fi
    if [ ! -x "$APM" ]; then
        echo "apm: $APM is missing: reinstall apm (sudo apm install)" >&2
        return 5
    fi
    echo -n "Starting apm: "
    setsid "$PYTHON" "$APM" daemon >>"$LOGFILE" 2>&1 </dev/null &
    pid=$!
    echo "$pid" > "$PIDFILE"
    for i in 1 2 3 4 5 6 7 8 9 10; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            echo "failed: the daemon exited at once, see $LOGFILE"
            return 1
        fi
        sleep 0.1
    done
    echo "apm (pid $pid)."
    return 0
}}

do_stop() {{
    local pid i
    if ! pid=$(daemon_pid); then
        echo "apm is not running"
        rm -f "$PIDFILE"
        return 0
    fi
    echo -n "Stopping apm (pid $pid): "
    kill -TERM "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$i" -ge $((STOP_TIMEOUT * 10)) ]; then
            echo -n "still running after ${{STOP_TIMEOUT}}s, sending SIGKILL: "
            kill -KILL "$pid" 2>/dev/null
            break
        fi
        sleep 0.1
        i=$((i + 1))
    done
    rm -f "$PIDFILE"
    echo "stopped."
    return 0
}}

do_status() {{
    local pid
    if pid=$(daemon_pid); then
        echo "apm is running (pid $pid)"
        return 0
    fi
    if [ -e "$PIDFILE" ]; then
        echo "apm is not running, but $PIDFILE exists"
        return 1
    fi
    echo "apm is not running"
    return 3
}}

case "${{1:-}}" in
    start) do_start ;;
    stop) do_stop ;;
    restart|force-reload) do_stop; do_start ;;
    status) do_status ;;
    *)
        echo "Usage: $0 {{start|stop|restart|force-reload|status}}" >&2
        exit 2
        ;;
esac
exit $?
"""


class Service:
    """Base: the file(s) one init system needs and the commands around them."""

    kind = ""
    files: Tuple[str, ...] = ()

    def __init__(self, layout: Layout, system: System, init: InitSystem) -> None:
        self.layout = layout
        self.system = system
        self.init = init
        self.created: List[str] = []  # folders made for links (real paths); removed on uninstall when empty

    @property
    def live(self) -> bool:
        """Commands may run: real root and the init system manages this machine."""
        return self.layout.real and self.init.running

    def render(self, python: str, shiv_root: str) -> Dict[str, Tuple[str, int]]:
        """{path: (content, mode)} for every file of this service."""
        raise NotImplementedError

    def enable(self) -> str:
        raise NotImplementedError

    def restart(self) -> str:
        """(Re)start the daemon; returns "" or why it was not started (raises InstallError on failure)."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def disable(self) -> None:
        raise NotImplementedError

    def after_remove(self) -> None:
        """Called once the service files are gone (systemd: daemon-reload)."""

    def _tool(self, name: str) -> Optional[str]:
        return self.system.which(name) if self.layout.real else None

    def _symlink(self, link: str, target: str) -> None:
        path = self.layout.p(link)
        make_dir(os.path.dirname(path), 0o755, (0, 0), self.system, fix=False, created=self.created)
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(target, path)

    def _sweep(self, pattern: str, target_name: str) -> None:
        """Remove symlinks matching `pattern` (under the root) that point at `target_name`."""
        for path in glob.glob(self.layout.p(pattern)):
            if os.path.islink(path) and os.path.basename(os.readlink(path)) == target_name:
                os.unlink(path)


class Systemd(Service):
    kind = "systemd"
    files = (SYSTEMD_UNIT,)
    wants_link = "/etc/systemd/system/multi-user.target.wants/apm.service"

    def render(self, python: str, shiv_root: str) -> Dict[str, Tuple[str, int]]:
        text = SYSTEMD_TEMPLATE.format(
            path=SYSTEMD_UNIT, python=python, binary=BINARY, shiv_root=shiv_root, stop_timeout=STOP_TIMEOUT
        )
        return {SYSTEMD_UNIT: (text, 0o644)}

    def enable(self) -> str:
        systemctl = self._tool("systemctl")
        if systemctl and self.live:
            self.system.run([systemctl, "daemon-reload"])
            self.system.run([systemctl, "enable", "apm.service"])
            return "systemctl enable apm.service"
        # Offline (chroot, container, image): `systemctl enable` only makes this link, and may
        # refuse to run at all in some containers, so make it ourselves when it does.
        if systemctl and self.system.run([systemctl, "enable", "apm.service"], check=False).returncode == 0:
            return "systemctl enable apm.service (offline)"
        self._symlink(self.wants_link, SYSTEMD_UNIT)
        return f"linked {self.wants_link}"

    def restart(self) -> str:
        self.system.run([self._tool("systemctl") or "systemctl", "restart", "apm.service"])
        return ""

    def stop(self) -> None:
        systemctl = self._tool("systemctl")
        if self.live and systemctl:
            self.system.run([systemctl, "stop", "apm.service"], check=False)

    def disable(self) -> None:
        systemctl = self._tool("systemctl")
        if systemctl and os.path.exists(self.layout.p(SYSTEMD_UNIT)):
            self.system.run([systemctl, "disable", "apm.service"], check=False)
        self._sweep("/etc/systemd/system/*.wants/apm.service", "apm.service")

    def after_remove(self) -> None:
        systemctl = self._tool("systemctl")
        if self.live and systemctl:
            self.system.run([systemctl, "daemon-reload"], check=False)
            self.system.run([systemctl, "reset-failed", "apm.service"], check=False)


class OpenRC(Service):
    kind = "openrc"
    files = (INITD_SCRIPT,)
    runlevel_link = "/etc/runlevels/default/apm"

    def render(self, python: str, shiv_root: str) -> Dict[str, Tuple[str, int]]:
        text = OPENRC_TEMPLATE.format(
            path=INITD_SCRIPT, python=python, binary=BINARY, shiv_root=shiv_root, stop_timeout=STOP_TIMEOUT
        )
        return {INITD_SCRIPT: (text, 0o755)}

    def enable(self) -> str:
        rc_update = self._tool("rc-update")
        if rc_update:
            self.system.run([rc_update, "add", "apm", "default"])
            return "rc-update add apm default"
        self._symlink(self.runlevel_link, INITD_SCRIPT)
        return f"linked {self.runlevel_link}"

    def restart(self) -> str:
        self.system.run([self._tool("rc-service") or "rc-service", "apm", "restart"])
        return ""

    def stop(self) -> None:
        rc_service = self._tool("rc-service")
        if self.live and rc_service:
            self.system.run([rc_service, "apm", "stop"], check=False)

    def disable(self) -> None:
        rc_update = self._tool("rc-update")
        if rc_update:
            self.system.run([rc_update, "del", "apm"], check=False)
        self._sweep("/etc/runlevels/*/apm", "apm")


class SysV(Service):
    kind = "sysv"
    files = (INITD_SCRIPT,)
    START = ("2", "3", "4", "5")
    STOP = ("0", "1", "6")

    def render(self, python: str, shiv_root: str) -> Dict[str, Tuple[str, int]]:
        text = SYSV_TEMPLATE.format(
            path=INITD_SCRIPT, python=python, binary=BINARY, shiv_root=shiv_root, stop_timeout=STOP_TIMEOUT
        )
        return {INITD_SCRIPT: (text, 0o755)}

    def _rc_dirs(self) -> str:
        """'/etc/rc{}.d' (Debian) or '/etc/rc.d/rc{}.d' (Red Hat)."""
        if os.path.isdir(self.layout.p("/etc/rc.d/rc3.d")) and not os.path.isdir(self.layout.p("/etc/rc3.d")):
            return "/etc/rc.d/rc{}.d"
        return "/etc/rc{}.d"

    def enable(self) -> str:
        update_rc = self._tool("update-rc.d")
        if update_rc:
            self.system.run([update_rc, "apm", "defaults"])
            return "update-rc.d apm defaults"
        chkconfig = self._tool("chkconfig")
        if chkconfig:
            self.system.run([chkconfig, "--add", "apm"])
            return "chkconfig --add apm"
        rc = self._rc_dirs()
        for level in self.START:
            self._symlink(rc.format(level) + "/S90apm", "../init.d/apm")
        for level in self.STOP:
            self._symlink(rc.format(level) + "/K10apm", "../init.d/apm")
        return "linked " + rc.format("[0-6]") + "/[SK]..apm"

    def restart(self) -> str:
        invoke = self._tool("invoke-rc.d")
        if not invoke:
            self.system.run([INITD_SCRIPT, "restart"])
            return ""
        proc = self.system.run([invoke, "apm", "restart"], check=False)
        if proc.returncode == 101:  # policy-rc.d forbids starting services here (image builds)
            return "invoke-rc.d: /usr/sbin/policy-rc.d forbids starting services on this machine"
        if proc.returncode != 0:
            self.system.run([invoke, "apm", "restart"])  # raises, with the tool's message
        return ""

    def stop(self) -> None:
        # The script only signals a pid it finds, so it is safe to run in a chroot too.
        if self.layout.real and os.access(INITD_SCRIPT, os.X_OK):
            self.system.run([INITD_SCRIPT, "stop"], check=False)

    def disable(self) -> None:
        update_rc = self._tool("update-rc.d")
        if update_rc:
            self.system.run([update_rc, "-f", "apm", "remove"], check=False)
        chkconfig = self._tool("chkconfig")
        if chkconfig and os.path.exists(self.layout.p(INITD_SCRIPT)):
            self.system.run([chkconfig, "--del", "apm"], check=False)
        for rc in ("/etc/rc?.d/[SK]*apm", "/etc/rc.d/rc?.d/[SK]*apm"):
            self._sweep(rc, "apm")


SERVICES = {"systemd": Systemd, "openrc": OpenRC, "sysv": SysV}


def service_for(kind: str, layout: Layout, system: System, init: InitSystem) -> Optional[Service]:
    cls = SERVICES.get(kind)
    return cls(layout, system, init) if cls else None


def installed_services(layout: Layout) -> List[str]:
    """Which service kinds have files on disk now (uninstall handles every one it finds)."""
    kinds = []
    if os.path.lexists(layout.p(SYSTEMD_UNIT)) or glob.glob(layout.p("/etc/systemd/system/*.wants/apm.service")):
        kinds.append("systemd")
    script = layout.p(INITD_SCRIPT)
    first = ""
    try:
        with open(script) as f:
            first = f.readline()
    except OSError:
        pass
    if "openrc-run" in first or glob.glob(layout.p("/etc/runlevels/*/apm")):
        kinds.append("openrc")
    if (first and "openrc-run" not in first) or glob.glob(layout.p("/etc/rc?.d/[SK]*apm")):
        kinds.append("sysv")
    return kinds

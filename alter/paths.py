"""Where apm keeps things, for the root daemon, a user's daemon, or APM_HOME.

One function, `resolve()`, decides every path from the environment so the CLI,
the daemon and the installer agree.  Nothing here touches the filesystem.

  root daemon     config /etc/apm/apm.conf (+ apm.conf.d/), state /var/lib/apm,
                  worker logs /var/log/apm/<worker>/, daemon log /var/log/apm.log,
                  socket @apm
  user daemon     config ${XDG_CONFIG_HOME:-~/.config}/apm/apm.conf,
                  state ${XDG_STATE_HOME:-~/.local/state}/apm (logs/ and apm.log
                  inside), socket @apm.<uid>
  APM_HOME=DIR    everything under DIR (apm.conf, state/, logs/, apm.log);
                  socket @apm.<uid>.<hash of DIR> unless APM_SOCKET names one
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import Mapping, Optional

ROOT_SOCKET = "apm"
SYSTEM_CONFIG = "/etc/apm/apm.conf"
SYSTEM_STATE = "/var/lib/apm"
SYSTEM_LOG_DIR = "/var/log/apm"
SYSTEM_DAEMON_LOG = "/var/log/apm.log"
SHIV_ROOT = "/var/lib/apm/shiv"


class Paths:
    """Every location one daemon uses (a plain class: dataclasses cost the CLI ~8 ms to import)."""

    __slots__ = ("config_file", "state_dir", "log_dir", "daemon_log", "socket_name", "system")

    def __init__(
        self, config_file: str, state_dir: str, log_dir: str, daemon_log: str, socket_name: str, system: bool
    ) -> None:
        self.config_file = config_file  # the file `apm boot` loads
        self.state_dir = state_dir  # persisted daemon state (workers, settings, auth)
        self.log_dir = log_dir  # default worker log folders live here, one per worker
        self.daemon_log = daemon_log
        self.socket_name = socket_name  # abstract socket name, without the leading NUL / "@"
        self.system = system  # True for the root daemon's system-wide layout

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Paths) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return "Paths(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"

    @property
    def socket_address(self) -> str:
        """Address to bind/connect: abstract namespace (leading NUL)."""
        return "\0" + self.socket_name

    @property
    def state_file(self) -> str:
        return os.path.join(self.state_dir, "state.json")

    @property
    def pid_file(self) -> str:
        return os.path.join(self.state_dir, "apm.pid")


def _home_hash(home: str) -> str:
    import hashlib  # only with APM_HOME (tests): keep it off the CLI's startup path

    return hashlib.sha256(os.path.abspath(home).encode()).hexdigest()[:10]


def resolve(env: Optional[Mapping[str, str]] = None, euid: Optional[int] = None) -> Paths:
    """Decide every path for the current process (see module doc)."""
    env = os.environ if env is None else env
    euid = os.geteuid() if euid is None else euid
    socket_override = env.get("APM_SOCKET", "").lstrip("@")
    apm_home = env.get("APM_HOME", "")
    if apm_home:
        home = os.path.abspath(apm_home)
        return Paths(
            config_file=os.path.join(home, "apm.conf"),
            state_dir=os.path.join(home, "state"),
            log_dir=os.path.join(home, "logs"),
            daemon_log=os.path.join(home, "apm.log"),
            socket_name=socket_override or f"apm.{euid}.{_home_hash(home)}",
            system=False,
        )
    if euid == 0:
        return Paths(
            config_file=SYSTEM_CONFIG,
            state_dir=SYSTEM_STATE,
            log_dir=SYSTEM_LOG_DIR,
            daemon_log=SYSTEM_DAEMON_LOG,
            socket_name=socket_override or ROOT_SOCKET,
            system=True,
        )
    user_home = env.get("HOME") or os.path.expanduser("~")
    state = env.get("XDG_STATE_HOME") or os.path.join(user_home, ".local", "state")
    config = env.get("XDG_CONFIG_HOME") or os.path.join(user_home, ".config")
    state_dir = os.path.join(state, "apm")
    return Paths(
        config_file=os.path.join(config, "apm", "apm.conf"),
        state_dir=state_dir,
        log_dir=os.path.join(state_dir, "logs"),
        daemon_log=os.path.join(state_dir, "apm.log"),
        socket_name=socket_override or f"apm.{euid}",
        system=False,
    )

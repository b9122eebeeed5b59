"""The CLI side of the control socket: pick the daemon, connect, check it, talk.

    client = Client(select_paths())
    workers = client.call("list")["workers"]
    for event in client.stream("wait", {"name": "api"}): ...   # generator; returns the result

Which daemon (see docs/cli.md): `APM_SOCKET` or `APM_HOME` when set; else root
uses `@apm`; any other user uses the root daemon's `@apm` when it runs AND the
user is in the `apm` group, else their own `@apm.<uid>`.

Before a request is sent, the daemon's uid is read with SO_PEERCRED: it must be
root or our own euid, so nobody can squat a socket name and collect requests.

When nothing listens, `connect()` starts a daemon (`<launcher> daemon --detach`)
unless the client was made with `autostart=False`, and waits for it to accept.
Keep this module import-light: the CLI imports it for every command.
"""

from __future__ import annotations

import _socket
import errno
import os
import struct
import sys
import time

from alter.control import protocol
from alter.errors import ApmError, DaemonUnavailable, PermissionDenied, ProtocolError, error_from_dict
from alter.paths import Paths, resolve

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its startup path
if TYPE_CHECKING:
    from socket import socket as Socket
    from typing import Any, Callable, Dict, Generator, List, Mapping, Optional, Tuple

    Event = Dict[str, Any]  # {"event": kind, "data": ...}


AUTOSTART_TIMEOUT = 10.0  # seconds to wait for an autostarted daemon to accept
POLL_INTERVAL = 0.015
CONNECT_TIMEOUT = 10.0
DEFAULT_TIMEOUT = 120.0  # seconds of silence before a non-streaming request gives up
_NOT_LISTENING = (errno.ECONNREFUSED, errno.ENOENT)
_TIMEOUT = getattr(_socket, "timeout", TimeoutError)  # socket.timeout (an alias of TimeoutError since 3.10)


def _unix_socket() -> Socket:
    """A new AF_UNIX stream socket.

    `import socket` costs every CLI command ~4 ms (its enum conversions, selectors); the C type under
    socket.socket has every method the client uses.  When something already imported `socket` (tests
    patch it), socket.socket is used, as before.
    """
    module = sys.modules.get("socket")
    cls: Any = module.socket if module is not None else _socket.socket
    return cls(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)


class DaemonNotRunning(DaemonUnavailable):
    """Nothing listens on the socket (and we were not allowed to start a daemon)."""


# --------------------------------------------------------------------------- which daemon


def in_apm_group() -> bool:
    """Is this process a member of the `apm` group (primary or supplementary)?"""
    import grp

    try:
        gid = grp.getgrnam("apm").gr_gid
    except KeyError:
        return False
    return gid == os.getegid() or gid in os.getgroups()


def select_paths(
    env: Optional[Mapping[str, str]] = None,
    euid: Optional[int] = None,
    in_group: Optional[Callable[[], bool]] = None,
    root_running: Optional[Callable[[Paths], bool]] = None,
) -> Paths:
    """The daemon this CLI talks to (the rule in the module doc)."""
    env = os.environ if env is None else env
    euid = os.geteuid() if euid is None else euid
    own = resolve(env, euid)
    if env.get("APM_SOCKET") or env.get("APM_HOME") or euid == 0:
        return own
    in_group = in_apm_group if in_group is None else in_group
    root_running = _root_daemon_running if root_running is None else root_running
    if in_group():
        system = resolve({k: v for k, v in env.items() if k not in ("APM_SOCKET", "APM_HOME")}, 0)
        if root_running(system):
            return system
    return own


def _root_daemon_running(paths: Paths) -> bool:
    sock = _unix_socket()
    try:
        sock.settimeout(1.0)
        sock.connect(paths.socket_address)
        return peer_credentials(sock)[1] == 0
    except OSError:
        return False
    finally:
        sock.close()


def peer_credentials(sock: Socket) -> Tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    raw = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


# --------------------------------------------------------------------------- how to start a daemon


def _looks_like_zip(path: str) -> bool:
    """Cheap zip test: the end-of-central-directory record sits in the last 64 KiB."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 65557))
            return b"PK\x05\x06" in f.read()
    except OSError:
        return False


def _is_apm_script(path: str) -> bool:
    """A pip console script / wrapper whose head mentions the `alter` package."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(b"#!") and b"alter" in head


def launcher_command(argv0: Optional[str] = None) -> List[str]:
    """How to run `apm` again from this process: the zipapp, a console script, or `-m alter`.

    The zipapp/shiv bootstrap leaves the archive path in sys.argv[0]; a source
    checkout runs `python -m alter` with PYTHONPATH set (see launcher_env).
    """
    if argv0 is None:
        argv0 = sys.argv[0] if sys.argv else ""
    is_file = bool(argv0) and not argv0.endswith(".py") and os.path.isfile(argv0)
    if is_file and (_looks_like_zip(argv0) or _is_apm_script(argv0)):
        return [sys.executable, os.path.abspath(argv0)]
    return [sys.executable, "-m", "alter"]


def launcher_env(command: List[str]) -> Dict[str, str]:
    env = dict(os.environ)
    if command[1:3] == ["-m", "alter"]:
        import alter

        root = os.path.dirname(os.path.dirname(os.path.abspath(alter.__file__ or "")))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def tail(path: str, lines: int = 12, max_bytes: int = 16384) -> List[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-lines:]


# --------------------------------------------------------------------------- the client


class Client:
    """One daemon, one request per connection."""

    def __init__(
        self,
        paths: Paths,
        autostart: bool = True,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        launcher: Optional[List[str]] = None,
        autostart_timeout: float = AUTOSTART_TIMEOUT,
    ) -> None:
        self.paths = paths
        self.autostart = autostart
        self.timeout = timeout
        self.launcher = launcher
        self.autostart_timeout = autostart_timeout
        self.started_daemon = False  # True once this client autostarted one
        self._next_id = 0

    @property
    def socket_label(self) -> str:
        return "@" + self.paths.socket_name

    # ------------------------------------------------------------------ connecting

    def _connect_once(self) -> Socket:
        sock = _unix_socket()
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(self.paths.socket_address)
            self._check_peer(sock)
        except BaseException:
            sock.close()
            raise
        return sock

    def _check_peer(self, sock: Socket) -> None:
        pid, uid, _ = peer_credentials(sock)
        me = os.geteuid()
        if uid not in (0, me):
            raise PermissionDenied(
                f"refusing to talk to {self.socket_label}: it is held by uid {uid} (pid {pid}), "
                f"not by root or by you (uid {me})",
                hint="another user may be squatting the daemon's socket name; stop that process, "
                "or set APM_SOCKET to use another name",
            )

    def connect(self) -> Socket:
        """A connected, peer-checked socket; starts a daemon first when allowed and needed."""
        try:
            return self._connect_once()
        except OSError as exc:
            if exc.errno not in _NOT_LISTENING:
                raise self._os_error(exc) from None
        if not self.autostart:
            raise DaemonNotRunning(
                f"no apm daemon is running on {self.socket_label}",
                hint="any apm command (e.g. `apm list`) starts one, or run `apm daemon` in the foreground",
            )
        return self._start_daemon()

    def _os_error(self, exc: OSError) -> ApmError:
        if isinstance(exc, _TIMEOUT):
            return DaemonUnavailable(
                f"the daemon on {self.socket_label} does not accept connections (timed out)",
                hint=f"it may be overloaded or stuck; see {self.paths.daemon_log}",
            )
        if exc.errno in (errno.EACCES, errno.EPERM):
            return PermissionDenied(f"may not connect to {self.socket_label}: {exc.strerror}")
        return DaemonUnavailable(f"cannot connect to the daemon on {self.socket_label}: {exc.strerror or exc}")

    def is_running(self) -> bool:
        try:
            self._connect_once().close()
            return True
        except OSError:
            return False

    def _start_daemon(self) -> Socket:
        import subprocess

        command = (self.launcher or launcher_command()) + ["daemon", "--detach"]
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                cwd="/",
                env=launcher_env(command),
            )
        except OSError as exc:
            raise DaemonUnavailable(
                f"cannot start the daemon ({' '.join(command)}): {exc.strerror or exc}",
                hint="start it yourself with `apm daemon`",
            ) from None
        self.started_daemon = True
        deadline = time.monotonic() + self.autostart_timeout
        while True:
            try:
                return self._connect_once()
            except OSError as exc:
                if exc.errno not in _NOT_LISTENING:
                    raise self._os_error(exc) from None
            code = proc.poll()
            if code is not None and code != 0:
                raise self._start_failed(f"`{' '.join(command[1:])}` exited with status {code}", _read_stderr(proc))
            if time.monotonic() >= deadline:
                raise self._start_failed(
                    f"it did not accept connections on {self.socket_label} within {self.autostart_timeout:g}s", ""
                )
            time.sleep(POLL_INTERVAL)

    def _start_failed(self, why: str, stderr: str) -> DaemonUnavailable:
        lines = [line for line in stderr.strip().splitlines() if line.strip()][-12:]
        log_lines = tail(self.paths.daemon_log)
        text = f"could not start the apm daemon: {why}"
        if lines:
            text += "\n" + "\n".join("    " + line for line in lines)
        if log_lines:
            text += f"\n  last lines of {self.paths.daemon_log}:\n" + "\n".join("    " + line for line in log_lines)
        return DaemonUnavailable(
            text, hint="fix the cause above, or run `apm daemon` to see it start in the foreground"
        )

    # ------------------------------------------------------------------ requests

    def stream(
        self, cmd: str, args: Optional[Dict[str, Any]] = None, timeout: Optional[float] = -1.0
    ) -> Generator[Event, None, Any]:
        """Send one request; yield its events; return the result (or raise its error).

        `timeout` is the longest silence tolerated (seconds, None = forever,
        default: the client's timeout).
        """
        sock = self.connect()
        try:
            self._next_id += 1
            msg_id = self._next_id
            sock.settimeout(self.timeout if timeout == -1.0 else timeout)
            try:
                sock.sendall(protocol.request(msg_id, cmd, args))
            except OSError as exc:
                raise self._lost(cmd, exc) from None
            decoder = protocol.Decoder()
            while True:
                try:
                    chunk = sock.recv(262144)
                except OSError as exc:
                    raise self._lost(cmd, exc) from None
                if not chunk:
                    where = "in the middle of a message" if decoder.pending else "without answering"
                    raise DaemonUnavailable(
                        f"the daemon closed the connection {where} (request `{cmd}`)",
                        hint=f"it may have crashed or been stopped; see {self.paths.daemon_log}",
                    )
                try:
                    messages = decoder.feed(chunk)
                except ProtocolError as exc:
                    raise ProtocolError(
                        f"the daemon sent a malformed reply to `{cmd}`: {exc.message}",
                        hint="the daemon may run another apm version: compare `apm --version`",
                    ) from None
                for msg in messages:
                    if "event" in msg:
                        yield {"event": str(msg.get("event")), "data": msg.get("data")}
                        continue
                    return self._result(cmd, msg)
        finally:
            sock.close()

    def call(
        self,
        cmd: str,
        args: Optional[Dict[str, Any]] = None,
        on_event: Optional[Callable[[str, Any], None]] = None,
        timeout: Optional[float] = -1.0,
    ) -> Any:
        """Send one request and return its result; events go to on_event(kind, data)."""
        gen = self.stream(cmd, args, timeout)
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
            if on_event is not None:
                on_event(event["event"], event["data"])

    def _result(self, cmd: str, msg: Dict[str, Any]) -> Any:
        ok = msg.get("ok")
        if ok is True:
            return msg.get("result")
        error = msg.get("error")
        if ok is False and isinstance(error, dict):
            raise error_from_dict(error)
        raise ProtocolError(
            f"the daemon sent an unexpected message in reply to `{cmd}`: {str(msg)[:200]}",
            hint="the daemon may run another apm version: compare `apm --version`",
        )

    def _lost(self, cmd: str, exc: OSError) -> DaemonUnavailable:
        if isinstance(exc, _TIMEOUT):
            return DaemonUnavailable(
                f"the daemon did not answer `{cmd}` in time",
                hint=f"it may be overloaded or stuck; see {self.paths.daemon_log}",
            )
        return DaemonUnavailable(
            f"lost the connection to the daemon during `{cmd}`: {exc.strerror or exc}",
            hint=f"see {self.paths.daemon_log}",
        )

    def wait_gone(self, timeout: float = 10.0) -> bool:
        """After `exit`: wait until nothing accepts on the socket any more."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                return True
            time.sleep(POLL_INTERVAL * 2)
        return False


def _read_stderr(proc: Any) -> str:
    """What the launcher printed before exiting (without blocking on a lingering writer)."""
    import select

    if proc.stderr is None:
        return ""
    out = b""
    try:
        while len(out) < 65536:
            ready, _, _ = select.select([proc.stderr], [], [], 0.5)
            if not ready:
                break
            chunk = os.read(proc.stderr.fileno(), 65536)
            if not chunk:
                break
            out += chunk
    except (OSError, ValueError):
        pass
    return out.decode("utf-8", "replace")

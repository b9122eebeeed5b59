"""The control socket: accepts CLI connections on the loop, authorizes, dispatches.

Abstract Unix stream socket (no file permissions), so every connection is
checked with SO_PEERCRED: root, the daemon's own uid and members of the `apm`
group may run every command; anyone else only the read-only ones.

Handlers run on the loop thread and answer through a `Request`; they may
answer later (waits, streams).  Nothing a client sends can crash the daemon:
framing errors, unknown commands and bad arguments all get an error reply.
"""

from __future__ import annotations

import difflib
import errno
import grp
import logging
import os
import pwd
import socket
import struct
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from alter.control import protocol
from alter.daemon.loop import EventLoop, Timer
from alter.errors import ApmError, PermissionDenied, ProtocolError, UsageError

log = logging.getLogger("apm.server")

Handler = Callable[["Request"], None]

MAX_CONNECTIONS = 512
MAX_OUTBUF = 64 * 1024 * 1024  # a client that stops reading is dropped past this
IDLE_TIMEOUT = 60.0  # seconds a connection may sit with no request in flight
READ_CHUNK = 256 * 1024


@dataclass(frozen=True)
class Peer:
    """Credentials of the process at the other end of a connection."""

    pid: int
    uid: int
    gid: int
    can_write: bool

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    @property
    def username(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return str(self.uid)


@dataclass(frozen=True)
class Command:
    name: str
    handler: Handler
    write: bool


class Commands:
    """Registry of request handlers: `register(name, handler, write=True)`."""

    def __init__(self) -> None:
        self._table: Dict[str, Command] = {}

    def register(self, name: str, handler: Handler, write: bool = True) -> None:
        if name in self._table:
            raise ValueError(f"command {name!r} registered twice")
        self._table[name] = Command(name, handler, write)

    def get(self, name: str) -> Optional[Command]:
        return self._table.get(name)

    def names(self) -> List[str]:
        return sorted(self._table)


def peer_groups(pid: int) -> List[int]:
    """Supplementary groups of a live process (its real credentials, not the group db)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return [int(g) for g in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return []


def apm_group_gid() -> Optional[int]:
    try:
        return grp.getgrnam("apm").gr_gid
    except KeyError:
        return None


def authorize(uid: int, gid: int, pid: int, daemon_uid: int) -> bool:
    """May this peer change things? Root, the daemon's own user, or the `apm` group."""
    if uid in (0, daemon_uid):
        return True
    group = apm_group_gid()
    return group is not None and (gid == group or group in peer_groups(pid))


class Request:
    """One request being handled; exactly one reply or error ends it."""

    def __init__(self, conn: Connection, msg_id: Any, cmd: str, args: Dict[str, Any], write: bool) -> None:
        self.conn = conn
        self.id = msg_id
        self.cmd = cmd
        self.args = args
        self.write = write
        self.done = False
        self._close_callbacks: List[Callable[[], None]] = []

    @property
    def peer(self) -> Peer:
        return self.conn.peer

    def event(self, kind: str, data: Any = None) -> None:
        if not self.done:
            self.conn.send(protocol.event(self.id, kind, data))

    def reply(self, result: Any = None) -> None:
        if self.done:
            return
        if self.write:
            self.conn.server.before_reply()
        self._finish(protocol.reply(self.id, result))

    def fail(self, err: ApmError) -> None:
        if self.done:
            return
        if self.write:
            self.conn.server.before_reply()
        self._finish(protocol.error(self.id, err))

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call `callback` if the client goes away before the reply (cancel waits)."""
        self._close_callbacks.append(callback)

    def _finish(self, data: bytes) -> None:
        self.done = True
        self._close_callbacks.clear()
        self.conn.send(data)
        self.conn.request_finished(self)

    def _client_gone(self) -> None:
        callbacks, self._close_callbacks = self._close_callbacks, []
        self.done = True
        for cb in callbacks:
            try:
                cb()
            except Exception:
                log.exception("error in on_close callback of %s", self.cmd)


class Connection:
    """One accepted client: buffers in and out, one request in flight at a time."""

    def __init__(self, server: ControlServer, sock: socket.socket, peer: Peer) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.decoder = protocol.Decoder()
        self.outbuf = bytearray()
        self.queue: List[Dict[str, Any]] = []
        self.current: Optional[Request] = None
        self.closed = False
        self.close_after_flush = False
        self.idle_timer: Optional[Timer] = None
        server.loop.add_reader(self.fd, self.on_readable)
        self._arm_idle()

    # ---------------------------------------------------------------- reading

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            self.close()
            return
        try:
            messages = self.decoder.feed(data)
        except ProtocolError as exc:
            self.send(protocol.error(None, exc))
            self.close_after_flush = True
            self.server.loop.remove_reader(self.fd)
            if not self.outbuf:  # the error went out at once: no writer callback will close us
                self.close()
            return
        self.queue.extend(messages)
        self.pump()

    def pump(self) -> None:
        while self.current is None and self.queue and not self.closed:
            msg = self.queue.pop(0)
            self.server.dispatch(self, msg)
        if self.current is None:
            self._arm_idle()

    def request_started(self, request: Request) -> None:
        self.current = request
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def request_finished(self, request: Request) -> None:
        if self.current is request:
            self.current = None
            self.server.loop.call_soon(self.pump)

    def _arm_idle(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        self.idle_timer = self.server.loop.call_later(self.server.idle_timeout, self.close)

    # ---------------------------------------------------------------- writing

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.outbuf:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.close()
                return
            data = data[sent:]
            if not data:
                return
        self.outbuf += data
        if len(self.outbuf) > MAX_OUTBUF:
            log.warning("dropping client pid %s: it stopped reading (%d bytes queued)", self.peer.pid, len(self.outbuf))
            self.close()
            return
        self.server.loop.add_writer(self.fd, self.on_writable)

    def on_writable(self) -> None:
        try:
            sent = self.sock.send(self.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        del self.outbuf[:sent]
        if not self.outbuf:
            self.server.loop.remove_writer(self.fd)
            if self.close_after_flush:
                self.close()

    def flush_blocking(self, timeout: float = 2.0) -> None:
        """Push out what is queued before the daemon exits."""
        if self.closed or not self.outbuf:
            return
        try:
            self.sock.setblocking(True)
            self.sock.settimeout(timeout)
            self.sock.sendall(bytes(self.outbuf))
            self.outbuf.clear()
        except OSError:
            pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        self.server.loop.remove_reader(self.fd)
        self.server.loop.remove_writer(self.fd)
        if self.current is not None:
            self.current._client_gone()
            self.current = None
        try:
            self.sock.close()
        except OSError:
            pass
        self.server.connection_closed(self)


class ControlServer:
    """Listens on the abstract socket and dispatches requests to `Commands`."""

    def __init__(
        self,
        loop: EventLoop,
        address: str,
        commands: Commands,
        daemon_uid: Optional[int] = None,
        before_reply: Optional[Callable[[], None]] = None,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.loop = loop
        self.address = address
        self.commands = commands
        self.daemon_uid = os.geteuid() if daemon_uid is None else daemon_uid
        self._before_reply = before_reply
        self.idle_timeout = idle_timeout
        self.connections: Dict[int, Connection] = {}
        self.sock: Optional[socket.socket] = None

    def listen(self) -> None:
        """Bind the socket; raises ApmError when another daemon already holds the name."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(self.address)
        except OSError as exc:
            sock.close()
            name = "@" + self.address.lstrip("\0")
            if exc.errno == errno.EADDRINUSE:
                raise ApmError(
                    f"another apm daemon is already listening on {name}",
                    hint="use `apm exit daemon` to stop it, or set APM_SOCKET to run a second one",
                ) from None
            raise ApmError(f"cannot bind the control socket {name}: {exc.strerror}") from None
        sock.listen(128)
        sock.setblocking(False)
        self.sock = sock
        self.loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        assert self.sock is not None
        for _ in range(64):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("cannot accept a control connection: %s", exc.strerror)
                    return
                raise
            conn.setblocking(False)
            if len(self.connections) >= MAX_CONNECTIONS:
                log.warning("refusing a control connection: %d already open", len(self.connections))
                conn.close()
                continue
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid, uid, gid = struct.unpack("3i", creds)
            peer = Peer(pid=pid, uid=uid, gid=gid, can_write=authorize(uid, gid, pid, self.daemon_uid))
            self.connections[conn.fileno()] = Connection(self, conn, peer)

    def dispatch(self, conn: Connection, msg: Dict[str, Any]) -> None:
        msg_id = msg.get("id")
        cmd = msg.get("cmd")
        args = msg.get("args", {})
        if not isinstance(cmd, str) or not cmd:
            conn.send(protocol.error(msg_id, ProtocolError("request has no 'cmd' string", hint="see docs/protocol.md")))
            return
        if not isinstance(args, dict):
            conn.send(
                protocol.error(msg_id, ProtocolError(f"'args' of {cmd!r} must be an object, got {type(args).__name__}"))
            )
            return
        command = self.commands.get(cmd)
        if command is None:
            close = difflib.get_close_matches(cmd, self.commands.names(), n=3)
            hint = ("did you mean " + " or ".join(close) + "?") if close else "see docs/protocol.md for the commands"
            conn.send(protocol.error(msg_id, UsageError(f"unknown command {cmd!r}", hint=hint)))
            return
        if command.write and not conn.peer.can_write:
            user = conn.peer.username
            conn.send(
                protocol.error(
                    msg_id,
                    PermissionDenied(
                        f"user {user} (uid {conn.peer.uid}) may not run {cmd!r} on this daemon",
                        hint=f"ask an administrator to add you to the apm group: usermod -aG apm {user}",
                    ),
                )
            )
            return
        request = Request(conn, msg_id, cmd, args, command.write)
        conn.request_started(request)
        try:
            command.handler(request)
        except ApmError as exc:
            request.fail(exc)
        except Exception as exc:
            log.exception("internal error handling %r", cmd)
            request.fail(
                ApmError(
                    f"internal error while handling {cmd!r}: {type(exc).__name__}: {exc}",
                    hint="this is a bug in apm: the daemon log has the details",
                )
            )

    def before_reply(self) -> None:
        if self._before_reply is not None:
            self._before_reply()

    def connection_closed(self, conn: Connection) -> None:
        self.connections.pop(conn.fd, None)

    def flush_all(self) -> None:
        for conn in list(self.connections.values()):
            conn.flush_blocking()

    def close(self) -> None:
        for conn in list(self.connections.values()):
            conn.close()
        if self.sock is not None:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

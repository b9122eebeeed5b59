"""The daemon <-> proxy process channel: JSON messages over a SOCK_SEQPACKET socketpair.

SEQPACKET keeps message boundaries, so one `recvmsg` is exactly one message
with exactly its own file descriptors (listening sockets travel this way, with
SCM_RIGHTS).  Sends never block: what the socket does not take waits in a
queue until the owner's loop reports the socket writable.

Messages, daemon -> process:
  {"op": "configure", "worker", "options", "vanguard", "listeners": [...], "bans"}  + one fd per listener
  {"op": "upstreams", "worker", "targets": [{"index", "host", "port", "state": live|draining}]}
  {"op": "remove", "worker"}
  {"op": "stats"}                   ask for a stats push now
  {"op": "shutdown"}
process -> daemon:
  {"op": "hello", "pid", "index"}
  {"op": "stats", "sites": {worker: snapshot}}
  {"op": "drain", "worker", "key", "inflight", "tunnels"}   counts of a draining/removed target
  {"op": "log", "worker", "level", "msg"}
"""

from __future__ import annotations

import json
import os
import socket
from collections import deque
from typing import Any, Deque, Dict, List, Sequence, Tuple

MAX_MESSAGE = 1 << 20
BUFFER = 4 << 20

Message = Dict[str, Any]


def socketpair() -> Tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for s in (a, b):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    return a, b


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)
        self.queue: Deque[Tuple[bytes, Sequence[int]]] = deque()
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, msg: Message, fds: Sequence[int] = ()) -> bool:
        """Queue and try to send; returns True when something is left for `flush()`."""
        data = json.dumps(msg, separators=(",", ":")).encode()
        if len(data) > MAX_MESSAGE:
            raise ValueError(f"control message {msg.get('op')} is {len(data)} bytes (limit {MAX_MESSAGE})")
        if self.closed:
            return False
        self.queue.append((data, list(fds)))
        return self.flush()

    def flush(self) -> bool:
        while self.queue and not self.closed:
            data, fds = self.queue[0]
            try:
                if fds:
                    socket.send_fds(self.sock, [data], list(fds))
                else:
                    self.sock.send(data)
            except BlockingIOError:
                return True
            except OSError:
                self.closed = True
                self.queue.clear()
                return False
            self.queue.popleft()
        return False

    def receive(self) -> List[Tuple[Message, List[int]]]:
        """Every message waiting now.  Raises EOFError when the other side is gone."""
        out: List[Tuple[Message, List[int]]] = []
        while True:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.sock, MAX_MESSAGE, 64)
            except BlockingIOError:
                return out
            except OSError as exc:
                self.closed = True
                raise EOFError(str(exc)) from None
            if not data:
                self.closed = True
                if out:
                    return out
                raise EOFError("channel closed")
            try:
                msg = json.loads(data)
            except ValueError:
                msg = None
            if isinstance(msg, dict):
                out.append((msg, list(fds)))
            else:
                for fd in fds:
                    os.close(fd)

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

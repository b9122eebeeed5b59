"""systemd's sd_notify protocol (Type=notify units), without libsystemd."""

from __future__ import annotations

import os
import socket
from typing import Mapping, Optional


def notify(state: str, env: Optional[Mapping[str, str]] = None) -> bool:
    """Send e.g. "READY=1" to $NOTIFY_SOCKET; returns False when not under systemd."""
    env = os.environ if env is None else env
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True

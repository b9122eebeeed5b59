"""The proxy's vocabulary shared by the daemon side and the proxy processes.

`ListenerSpec` is one `server` address of a worker, `Upstream` one instance the
proxy may forward to.  `listeners_from_config()` turns a worker's effective
config (the option table's canonical values) into ListenerSpecs, and
`resolve_options()` fills the proxy's per-worker knobs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from alter.config.options import parse_server

# Per-worker proxy knobs.  The first group are worker options from the option
# table (same names, same canonical units: milliseconds); the second group are
# proxy-internal timeouts the daemon may pass in `options` (tests do) but that
# are not user-facing options.
OPTION_DEFAULTS: Dict[str, Any] = {
    "keep_alive": 120_000,
    "trust_proxy": True,
    "lowercase_hdrs": False,
    "max_conns": 0,
    "trace_header": None,
    "drain_timeout": 0,
    "tcp_steering": True,
    # internal
    "header_timeout": 10_000,  # whole request head must arrive within this (slowloris)
    "body_timeout": 60_000,  # max silence while a body streams either way
    "upstream_timeout": 60_000,  # max wait for an instance's response head (504 after)
    "tunnel_idle": 0,  # close idle WebSocket/TCP tunnels after this; 0 = never
    "connect_timeout": 5_000,  # TCP listeners: max wait for an instance to accept
}

SCHEMES = ("http", "https", "ws", "wss", "tcp")


def resolve_options(raw: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    out = dict(OPTION_DEFAULTS)
    for key, value in (raw or {}).items():
        if key in OPTION_DEFAULTS and value is not None:
            out[key] = value
    return out


class UpstreamState(str, enum.Enum):
    """What the daemon says about an instance.

    ACCEPTING: the instance runs and should take traffic -- the proxy confirms
    with a TCP connect before sending any (see ProxyManager), DRAINING: finish
    what is in flight, take nothing new, DOWN: gone.
    """

    ACCEPTING = "accepting"
    DRAINING = "draining"
    DOWN = "down"


@dataclass(frozen=True)
class Upstream:
    """One instance as an upstream: `index` is the 0-based instance index (shown as name#index+1)."""

    index: int
    host: str
    port: int
    state: str = UpstreamState.ACCEPTING.value
    kind: str = "port"  # "port" today; "connector" (IPC sessions) later
    pid: int = 0  # the instance's main process (kernel steering finds its listening socket there)

    @property
    def key(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ListenerSpec:
    """One `server` address: scheme (http/https/ws/wss/tcp), bind host and port, TLS files."""

    scheme: str
    host: str
    port: int
    tls: bool = False
    tls_cert: Optional[str] = None
    tls_key: Optional[str] = None
    tls_ca: Optional[str] = None

    @property
    def id(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def bind_key(self) -> str:
        return f"{self.host}|{self.port}"

    @property
    def secure(self) -> bool:
        return self.tls or self.scheme in ("https", "wss")

    @classmethod
    def parse(cls, server: str, **tls: Any) -> ListenerSpec:
        scheme, host, port = parse_server(server)
        return cls(scheme=scheme, host=host, port=port, **tls)

    def wire(self, slot: int, max_conns: int) -> Dict[str, Any]:
        """The form sent to proxy processes."""
        return {
            "id": self.id,
            "scheme": self.scheme,
            "host": self.host,
            "port": self.port,
            "tls": {"cert": self.tls_cert, "key": self.tls_key, "ca": self.tls_ca} if self.secure else None,
            "slot": slot,
            "max_conns": max_conns,
        }


def listeners_from_config(config: Dict[str, Any]) -> List[ListenerSpec]:
    """A worker's `server` list plus its tls* options -> ListenerSpecs (https/wss imply TLS)."""
    tls = bool(config.get("tls"))
    out = []
    for server in config.get("server") or []:
        out.append(
            ListenerSpec.parse(
                server,
                tls=tls,
                tls_cert=config.get("tls_cert"),
                tls_key=config.get("tls_key"),
                tls_ca=config.get("tls_ca"),
            )
        )
    return out


def options_from_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """The proxy-relevant subset of a worker's effective config."""
    return {k: config[k] for k in OPTION_DEFAULTS if k in config}


@dataclass
class DrainRequest:
    """A pending drain (daemon side)."""

    worker: str
    keys: List[str]
    callback: Any
    started: float
    tunnel_deadline: float
    hard_deadline: float
    reports: Dict[int, Dict[str, int]] = field(default_factory=dict)
    done: bool = False

"""The option table: every worker, daemon and sub-block option, declared once.

The apm.conf parser, `apm run`/`apm update` flags, `apm info`, `apm check`, the
GUI edit form, the API schema and docs/options.md all read these tables.  To
add an option, add one `Option(...)` line here; nothing else needs a list of
names.

Values are stored canonically (see `Kind`): durations are int milliseconds,
sizes int bytes, lists are lists.  A worker config is a plain dict holding only
the options the user set (so saveconf writes what a human wrote); `effective()`
fills in defaults.
"""

from __future__ import annotations

import difflib
import enum
import ipaddress
import re
import shlex
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from alter.errors import ConfigError


class Kind(enum.Enum):
    STR = "string"
    INT = "integer"
    FLOAT = "number"
    BOOL = "boolean"
    DURATION = "duration (ms)"
    SIZE = "size"
    LIST = "list"
    INTLIST = "integer list"
    ENUM = "choice"
    BLOCK = "block"


LIST_KINDS = (Kind.LIST, Kind.INTLIST)

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_DURATION_UNITS = {"": 1, "ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
_DURATION_RE = re.compile(r"^\s*(\d+)\s*(ms|s|m|h)?\s*$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")

Validator = Callable[[Any], None]  # raises ValueError("what is wrong") on a bad value


@dataclass(frozen=True)
class Option:
    """One configurable setting."""

    name: str
    kind: Kind
    default: Any
    help: str
    section: str
    choices: Tuple[str, ...] = ()
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    validator: Optional[Validator] = None
    required: bool = False
    secret: bool = False  # never shown unmasked (API, info, logs)
    cli: bool = True  # offered as an `apm run` / `apm update` flag
    block: str = ""  # for Kind.BLOCK: the name of the sub-table in BLOCKS
    repeat_block: bool = False  # block may appear several times (dashboard module)
    since: str = ""  # issue/feature that gives the option its behaviour ("" = built)

    @property
    def multiple(self) -> bool:
        return self.kind in LIST_KINDS

    def describe_type(self) -> str:
        if self.kind is Kind.ENUM:
            return "one of " + ", ".join(self.choices)
        return self.kind.value


# --------------------------------------------------------------------------- validators


def _check_name(value: str) -> None:
    if not _NAME_RE.match(value):
        raise ValueError(
            "a worker name is 1-128 characters of letters, digits, '_', '-', '.', '@', starting with a letter or digit"
        )


def _check_env(values: List[str]) -> None:
    for item in values:
        key, sep, _ = item.partition("=")
        if not sep or not _ENV_KEY_RE.match(key):
            raise ValueError(f"{item!r} is not KEY=value (KEY: letters, digits, '_')")


def _check_env_name(value: str) -> None:
    if not _ENV_KEY_RE.match(value):
        raise ValueError(f"{value!r} is not a valid environment variable name")


def _check_cidrs(values: List[str]) -> None:
    for item in values:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR range") from None


def _check_methods(values: List[str]) -> None:
    for item in values:
        if not re.match(r"^[A-Z]+$", item):
            raise ValueError(f"{item!r} is not an HTTP method name")


def _check_servers(values: List[str]) -> None:
    for item in values:
        parse_server(item)


def _check_host_port(value: str) -> None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port")


def _check_url(value: str) -> None:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"{value!r} is not an http:// or https:// URL")


def _check_health(value: str) -> None:
    if value.lower() not in ("on", "off", "") and not re.match(r"^https?://", value):
        raise ValueError(f"{value!r} is neither a URL nor 'on'")


def _check_syslog(value: str) -> None:
    if not re.match(r"^(syslog|udp|tcp)://[^\s]+$|^unix://?/|^/|^local$", value):
        raise ValueError(
            f"{value!r} is not a syslog destination (syslog://host:port, udp://host:port, tcp://host:port, or /dev/log)"
        )


def _check_cmd(value: str) -> None:
    split_cmd(value)  # raises ValueError on an empty or badly quoted command


def _check_cron(value: str) -> None:
    fields = value.split()
    if value.startswith("@"):
        if value not in ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly", "@reboot"):
            raise ValueError(f"{value!r} is not a known @-schedule")
        return
    if len(fields) != 5:
        raise ValueError(f"{value!r} is not a 5-field cron expression (min hour day month weekday)")
    for item in fields:
        if not re.match(r"^[\d*,/\-A-Za-z]+$", item):
            raise ValueError(f"cron field {item!r} has characters cron does not use")


_SERVER_RE = re.compile(r"^(?:(https?|wss?|tcp)://)?(\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]*)?:(\d{1,5})/?$")


def parse_server(value: str) -> Tuple[str, str, int]:
    """`http://0.0.0.0:3000` -> ("http", "0.0.0.0", 3000); `:8080` -> ("http", "0.0.0.0", 8080)."""
    m = _SERVER_RE.match(value.strip())
    if not m:
        raise ValueError(
            f"{value!r} is not a server address: use http://host:port, https://, ws://, "
            "wss://, tcp://host:port or :port"
        )
    scheme = (m.group(1) or "http").lower()
    host = (m.group(2) or "0.0.0.0").strip("[]")
    port = int(m.group(3))
    if not 0 < port < 65536:
        raise ValueError(f"{value!r}: port {port} is outside 1-65535")
    return scheme, host, port


# --------------------------------------------------------------------------- tables


def _o(name: str, kind: Kind, default: Any, section: str, help: str, **kw: Any) -> Option:
    return Option(name=name, kind=kind, default=default, help=help, section=section, **kw)


S, I, F, B, D, Z, L, IL, E, BL = (  # noqa: E741 - short kind names keep the table readable
    Kind.STR,
    Kind.INT,
    Kind.FLOAT,
    Kind.BOOL,
    Kind.DURATION,
    Kind.SIZE,
    Kind.LIST,
    Kind.INTLIST,
    Kind.ENUM,
    Kind.BLOCK,
)

WORKER_OPTIONS_LIST: List[Option] = [
    # Identity
    _o(
        "name",
        S,
        None,
        "Identity",
        "Worker name, used in all CLI output and log prefixes. Defaults to the executable's name.",
        validator=_check_name,
    ),
    _o("exec", S, None, "Identity", "Executable to run, looked up in the target user's PATH.", required=True),
    _o("params", L, [], "Identity", "Arguments passed to the executable. Multiple values supported."),
    _o(
        "cmd",
        S,
        None,
        "Identity",
        "Shorthand for exec + params as one shell-quoted string (`cmd node server.js;`).",
        cli=False,
        validator=_check_cmd,
    ),
    _o(
        "path",
        S,
        None,
        "Identity",
        "Working directory for the child. Environment variables are expanded. Defaults to the caller's directory for `apm run`, the config file's directory for config files.",
    ),
    _o("instances", I, 1, "Identity", "Number of parallel child processes to run.", minimum=1, maximum=4096),
    _o("user", S, None, "Identity", "Run children as this OS user (with its groups, HOME and PATH). Root daemon only."),
    _o(
        "namespace", S, "default", "Identity", "Group label shown in the sidebar and `apm list`.", validator=_check_name
    ),
    _o(
        "enabled", B, True, "Identity", "A disabled worker is kept but never started (boot, restart policy, start all)."
    ),
    # Environment
    _o(
        "env",
        L,
        [],
        "Environment",
        "Environment variables for the children, KEY=value. Multiple values supported.",
        validator=_check_env,
    ),
    _o(
        "env_index",
        S,
        None,
        "Environment",
        "Name of an environment variable that receives the 0-based instance index.",
        validator=_check_env_name,
    ),
    _o("env_file", S, None, "Environment", "Path to a KEY=VALUE file, read by the daemon before dropping privileges."),
    # Restart on clean exit
    _o("restart", B, False, "Restart on clean exit", "Restart the process when it exits with code 0."),
    _o(
        "restart_delay",
        D,
        250,
        "Restart on clean exit",
        "Milliseconds to wait before restarting after a clean exit.",
        minimum=0,
    ),
    _o("max_restarts", I, 0, "Restart on clean exit", "Maximum clean-exit restarts. 0 = unlimited.", minimum=0),
    # Restart on error exit
    _o(
        "restart_err",
        B,
        False,
        "Restart on error exit",
        "Restart the process when it exits with a non-zero code or is killed by a signal.",
    ),
    _o(
        "err_delay",
        D,
        500,
        "Restart on error exit",
        "Milliseconds to wait before the first restart after an error exit; later ones back off exponentially (see docs/restart-policy.md).",
        minimum=0,
    ),
    _o("max_err_restarts", I, 0, "Restart on error exit", "Maximum error-exit restarts. 0 = unlimited.", minimum=0),
    _o(
        "err_grace",
        D,
        None,
        "Restart on error exit",
        "Milliseconds of uptime required before a restart counts against the limit.",
        minimum=0,
    ),
    _o(
        "restart_on_exit_codes",
        IL,
        [],
        "Restart on error exit",
        "Exit codes that trigger a restart. When set, overrides both restart and restart_err.",
    ),
    _o(
        "startup_grace",
        D,
        2000,
        "Restart on error exit",
        "Milliseconds `apm run/start/restart` wait for a fast-exit failure to surface on the first attempt.",
        minimum=0,
    ),
    _o(
        "augur_full_scan",
        B,
        False,
        "Restart on error exit",
        "Run the dependency scan before every start and abort when something is missing.",
        since="augur",
    ),
    # Shutdown
    _o("kill_timeout", D, 2000, "Shutdown", "Milliseconds to wait after SIGTERM before SIGKILL.", minimum=0),
    # Startup dependencies
    _o("depends_on", L, [], "Startup dependencies", "Worker names that must be running before this worker starts."),
    _o(
        "depends_timeout",
        D,
        30000,
        "Startup dependencies",
        "Milliseconds to wait for dependencies; after that the worker starts anyway, with a warning.",
        minimum=0,
    ),
    # Schedules
    _o(
        "schedule",
        S,
        None,
        "Schedule",
        "Cron expression: the worker is a job that runs on this schedule.",
        validator=_check_cron,
        since="cron",
    ),
    _o(
        "restart_cron",
        S,
        None,
        "Schedule",
        "Cron expression: restart the worker on this schedule (PM2's cron_restart).",
        validator=_check_cron,
        since="cron",
    ),
    # Health check
    _o(
        "health_check",
        S,
        None,
        "Health check",
        "A URL to probe (pull mode), or `on` (push mode via APM_HEALTH_URL).",
        validator=_check_health,
        since="health",
    ),
    _o("health_check_interval", D, 5000, "Health check", "Milliseconds between probes.", minimum=100, since="health"),
    _o(
        "health_check_timeout",
        D,
        3000,
        "Health check",
        "Milliseconds to wait for a single pull-mode probe.",
        minimum=1,
        since="health",
    ),
    _o(
        "health_check_threshold",
        I,
        3,
        "Health check",
        "Consecutive failures before the worker is marked unhealthy.",
        minimum=1,
        since="health",
    ),
    # Connection drain
    _o(
        "drain_timeout",
        D,
        0,
        "Connection drain",
        "Milliseconds to let active connections finish before a stop/restart. 0 = stop immediately.",
        minimum=0,
    ),
    # Memory limit
    _o(
        "memory_limit",
        Z,
        None,
        "Memory limit",
        "Per-child memory cap enforced with cgroups (e.g. 256M, 1G). Root daemon only.",
    ),
    # Logging
    _o("log", S, None, "Logging", "Path to the stdout log file. Default: <log dir>/<worker>/out.log."),
    _o("err_log", S, None, "Logging", "Path to the stderr log file. Default: the same file as log."),
    _o(
        "prefix",
        S,
        None,
        "Logging",
        "String prepended to each log line (çN- colours allowed). Default: the worker name; `#N` is appended for multi-instance workers.",
    ),
    _o(
        "log_time_format",
        S,
        "ç214-%Y-%m-%d %Tç59-.%FçR-",
        "Logging",
        "Timestamp format for log lines: strftime tokens, %F for microseconds, çN- colours.",
    ),
    _o("strip_ansi", B, False, "Logging", "Strip ANSI escape codes from log output."),
    _o(
        "syslog",
        S,
        None,
        "Logging",
        "Forward logs to syslog: syslog://host:port (UDP), tcp://host:port, or /dev/log.",
        validator=_check_syslog,
    ),
    _o("syslog_tag", S, None, "Logging", "Tag for syslog messages. Default: the worker name."),
    _o(
        "log_max_size",
        Z,
        None,
        "Logging",
        "Rotate the log file when it exceeds this size (e.g. 10M). Default: the daemon's (10M).",
    ),
    _o(
        "log_max_files",
        I,
        None,
        "Logging",
        "Number of rotated log files to keep. Default: the daemon's (5).",
        minimum=1,
        maximum=1000,
    ),
    # Proxy / HTTP
    _o(
        "server",
        L,
        [],
        "Proxy / HTTP",
        "Listener for the proxy: http://, https://, ws://, wss://, tcp://host:port or :port. Multiple values supported.",
        validator=_check_servers,
    ),
    _o("lowercase_hdrs", B, False, "Proxy / HTTP", "Lowercase HTTP header names before forwarding."),
    _o("trust_proxy", B, True, "Proxy / HTTP", "Trust X-Forwarded-For / X-Real-IP for the client IP."),
    _o(
        "keep_alive",
        D,
        120000,
        "Proxy / HTTP",
        "HTTP keep-alive idle timeout in milliseconds.",
        minimum=0,
    ),
    _o(
        "max_conns",
        I,
        0,
        "Proxy / HTTP",
        "Maximum concurrent connections per server. 0 = unlimited.",
        minimum=0,
    ),
    _o(
        "tcp_steering",
        B,
        True,
        "Proxy / HTTP",
        "tcp:// servers: let the kernel hand each new connection straight to an instance (BPF sk_lookup) "
        "when the server needs nothing from the proxy (no TLS, no vanguard, no max_conns). "
        "Off: every connection is relayed by the proxy processes.",
    ),
    _o(
        "trace_header",
        S,
        None,
        "Proxy / HTTP",
        "Header (e.g. x-request-id) that receives a unique ID per forwarded request.",
    ),
    _o(
        "session_persist",
        B,
        False,
        "Proxy / HTTP",
        "Persist session state across rolling restarts.",
        since="connectors",
    ),
    _o(
        "session_wait",
        D,
        5000,
        "Proxy / HTTP",
        "Milliseconds to wait for a new instance to accept a migrated session.",
        minimum=0,
        since="connectors",
    ),
    # TLS
    _o("tls", B, False, "TLS", "Enable TLS on all of this worker's listeners."),
    _o("tls_cert", S, None, "TLS", "Path to the TLS certificate (PEM)."),
    _o("tls_key", S, None, "TLS", "Path to the TLS private key (PEM)."),
    _o(
        "tls_ca",
        S,
        None,
        "TLS",
        "CA certificate for mutual TLS: client certificates are required and verified.",
    ),
    # File watcher
    _o(
        "watch",
        L,
        [],
        "File watcher",
        "Patterns of paths whose change restarts the worker (*.ext, prefix*, *word*, exact).",
        since="watcher",
    ),
    _o("watch_ignore", L, [], "File watcher", "Patterns of paths excluded from watching.", since="watcher"),
    _o(
        "watch_delay",
        D,
        200,
        "File watcher",
        "Debounce delay in milliseconds before a watch restart.",
        minimum=0,
        since="watcher",
    ),
    _o("watch_conf", B, False, "File watcher", "Reload this worker when its own config file changes on disk."),
    # Rolling restart
    _o("rolling", B, False, "Rolling restart", "Restart instances one at a time."),
    _o("rolling_delay", D, 1000, "Rolling restart", "Milliseconds between restarting each instance.", minimum=0),
    # Stats
    _o("stats_interval", D, None, "Stats", "Milliseconds between stats collection cycles.", minimum=100),
    # IPC
    _o(
        "listen",
        S,
        None,
        "Inter-worker IPC",
        "Channel name this worker listens on for inter-worker IPC.",
        since="connectors",
    ),
    _o(
        "ipc_timeout",
        D,
        500,
        "Inter-worker IPC",
        "Default timeout in milliseconds for request() calls.",
        minimum=0,
        since="connectors",
    ),
    # Sub-blocks
    _o(
        "on_crash",
        BL,
        None,
        "Crash webhook",
        "POST/GET a URL when a child crashes.",
        block="on_crash",
        cli=False,
        since="webhooks",
    ),
    _o(
        "vanguard",
        BL,
        None,
        "Vanguard",
        "Request firewall in front of the worker's listeners.",
        block="vanguard",
        cli=False,
    ),
    _o(
        "statsd",
        BL,
        None,
        "StatsD",
        "Forward worker metrics to a StatsD endpoint.",
        block="statsd",
        cli=False,
        since="statsd",
    ),
    _o(
        "dashboard",
        BL,
        None,
        "Dashboard",
        "Custom metric panels shown in the GUI.",
        block="dashboard",
        cli=False,
        since="dashboard",
    ),
]

VANGUARD_OPTIONS_LIST: List[Option] = [
    _o("allow_ip", L, [], "Vanguard", "CIDR allowlist: only matching client IPs are served.", validator=_check_cidrs),
    _o(
        "ban_ip",
        L,
        [],
        "Vanguard",
        "CIDR blocklist: matching client IPs are rejected (403, or silent close for TCP).",
        validator=_check_cidrs,
    ),
    _o("ban_path", L, [], "Vanguard", "Path patterns (query string stripped): *.ext, prefix*, *word*, exact."),
    _o("ban_response", S, "Forbidden", "Vanguard", "Response body for blocked requests."),
    _o("allow_method", L, [], "Vanguard", "HTTP method allowlist; others get 405.", validator=_check_methods),
    _o(
        "ban_method",
        L,
        [],
        "Vanguard",
        "HTTP method blocklist (405), checked before allow_method.",
        validator=_check_methods,
    ),
    _o(
        "rate_limit",
        F,
        None,
        "Vanguard",
        "Token-bucket rate in requests/second per real client IP (429 past it).",
        minimum=0,
    ),
    _o("rate_burst", I, None, "Vanguard", "Burst capacity. Default: rate_limit.", minimum=1),
    _o(
        "ban_ttl",
        D,
        0,
        "Vanguard",
        "Milliseconds to auto-ban an IP that exceeds the rate limit. 0 = no ban.",
        minimum=0,
    ),
    _o("log", B, True, "Vanguard", "Log one line per blocked request."),
    _o(
        "log_summary",
        I,
        0,
        "Vanguard",
        "Seconds between aggregate summary lines of blocked traffic. 0 = off.",
        minimum=0,
    ),
]

ON_CRASH_OPTIONS_LIST: List[Option] = [
    _o("url", S, None, "Crash webhook", "Destination URL.", required=True, validator=_check_url),
    _o("method", E, "POST", "Crash webhook", "POST sends a JSON body; GET sends none.", choices=("POST", "GET")),
    _o("debounce", D, 5000, "Crash webhook", "Minimum milliseconds between calls per worker (floor 5000).", minimum=0),
    _o("log_lines", I, 0, "Crash webhook", "Trailing log lines to include in the payload.", minimum=0, maximum=1000),
    _o("log_source", E, "err", "Crash webhook", "Which log to tail.", choices=("err", "out")),
    _o("secret", S, None, "Crash webhook", "HMAC-SHA256 key for the X-APM-Signature header.", secret=True),
]

STATSD_OPTIONS_LIST: List[Option] = [
    _o("host", S, None, "StatsD", "StatsD UDP endpoint as host:port.", required=True, validator=_check_host_port),
    _o("prefix", S, None, "StatsD", "Metric namespace. Default: apm.<worker>."),
    _o("interval", I, 1, "StatsD", "Flush interval in seconds.", minimum=1, maximum=3600),
]

DASHBOARD_OPTIONS_LIST: List[Option] = [
    _o("name", S, None, "Dashboard", "Tab label. Default: the worker name."),
    _o("cols", I, 6, "Dashboard", "Grid columns.", minimum=1, maximum=48),
    _o("rows", I, 3, "Dashboard", "Grid rows.", minimum=1, maximum=48),
    _o("module", BL, None, "Dashboard", "One panel of the dashboard.", block="module", repeat_block=True, cli=False),
]

MODULE_OPTIONS_LIST: List[Option] = [
    _o(
        "type",
        E,
        None,
        "Dashboard module",
        "Module type.",
        choices=("led", "counter", "text", "graph", "gauge", "heatmap"),
        required=True,
    ),
    _o("id", I, None, "Dashboard module", "Integer ID, unique within the dashboard.", required=True, minimum=0),
    _o("x", I, None, "Dashboard module", "Grid column (0-based).", required=True, minimum=0),
    _o("y", I, None, "Dashboard module", "Grid row (0-based).", required=True, minimum=0),
    _o("w", I, None, "Dashboard module", "Width in grid cells.", required=True, minimum=1),
    _o("h", I, None, "Dashboard module", "Height in grid cells.", required=True, minimum=1),
    _o("name", S, None, "Dashboard module", "Label shown inside the module."),
    _o("unit", S, None, "Dashboard module", "Unit suffix (%, ms, req/s)."),
    _o("min", F, 0, "Dashboard module", "Lower end of the value range."),
    _o("max", F, 100, "Dashboard module", "Upper end of the value range."),
    _o("color", S, None, "Dashboard module", "Accent colour (hex or CSS)."),
    _o("base_color", S, None, "Dashboard module", "Base colour for heatmap cells."),
    _o("source", E, None, "Dashboard module", "Built-in metric feed.", choices=("cpu", "ram", "conn", "ior", "iow")),
]

DAEMON_OPTIONS_LIST: List[Option] = [
    _o("gui_port", I, 6789, "Daemon", "Port of the web GUI and HTTP API. 0 disables it.", minimum=0, maximum=65535),
    _o(
        "gui_bind", S, "127.0.0.1", "Daemon", "Address the GUI binds to. A non-loopback address needs a password first."
    ),
    _o(
        "gui_password",
        S,
        None,
        "Daemon",
        "GUI password (hashed on load; prefer `apm gui` setup, this file is plaintext).",
        secret=True,
    ),
    _o("gui_tls_cert", S, None, "Daemon", "Certificate (PEM) to serve the GUI over HTTPS."),
    _o("gui_tls_key", S, None, "Daemon", "Private key (PEM) for gui_tls_cert."),
    _o("auto_reload", B, False, "Daemon", "Reload loaded config files when they change on disk."),
    _o("log_max_size", Z, 10 * 1024**2, "Daemon", "Default log_max_size for every worker."),
    _o("log_max_files", I, 5, "Daemon", "Default log_max_files for every worker.", minimum=1, maximum=1000),
    _o("log_daily", B, True, "Daemon", "Roll every worker log over at midnight into a dated archive."),
    _o(
        "log_retention_days",
        I,
        30,
        "Daemon",
        "Delete dated log archives older than this many days. 0 = keep forever.",
        minimum=0,
    ),
]

TOP_LEVEL_OPTIONS_LIST: List[Option] = [
    _o("telemetry", B, False, "Top level", "Accepted for compatibility and ignored: apm never phones home."),
]


def _table(options: Sequence[Option]) -> Dict[str, Option]:
    return {o.name: o for o in options}


WORKER_OPTIONS = _table(WORKER_OPTIONS_LIST)
DAEMON_OPTIONS = _table(DAEMON_OPTIONS_LIST)
TOP_LEVEL_OPTIONS = _table(TOP_LEVEL_OPTIONS_LIST)
BLOCKS: Dict[str, Dict[str, Option]] = {
    "worker": WORKER_OPTIONS,
    "daemon": DAEMON_OPTIONS,
    "vanguard": _table(VANGUARD_OPTIONS_LIST),
    "on_crash": _table(ON_CRASH_OPTIONS_LIST),
    "statsd": _table(STATSD_OPTIONS_LIST),
    "dashboard": _table(DASHBOARD_OPTIONS_LIST),
    "module": _table(MODULE_OPTIONS_LIST),
}

# --------------------------------------------------------------------------- coercion


def normalize_name(name: str) -> str:
    """`--restart-err`, `restart_err` and `Restart_Err` all name one option."""
    return name.strip().lstrip("-").replace("-", "_").lower()


def lookup(name: str, table: Optional[Dict[str, Option]] = None) -> Option:
    """Find an option by (normalised) name or raise a ConfigError with a suggestion."""
    table = WORKER_OPTIONS if table is None else table
    key = normalize_name(name)
    if key in table:
        return table[key]
    raise ConfigError(f"unknown option {name!r}", hint=suggest(key, table))


def suggest(name: str, table: Optional[Dict[str, Option]] = None) -> str:
    table = WORKER_OPTIONS if table is None else table
    close = difflib.get_close_matches(normalize_name(name), list(table), n=3, cutoff=0.6)
    return ("did you mean " + " or ".join(close) + "?") if close else "see `apm help options` or docs/options.md"


def parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def parse_size(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"expected a size like 256M or 1G, got {raw!r}")
    if isinstance(raw, int):
        return raw
    m = _SIZE_RE.match(str(raw))
    if not m:
        raise ValueError(f"expected a size like 512K, 256M or 1G, got {raw!r}")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).upper()]


def format_size(value: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if value and value % _SIZE_UNITS[unit] == 0:
            return f"{value // _SIZE_UNITS[unit]}{unit}"
    return str(value)


def parse_duration(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"expected milliseconds, got {raw!r}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    m = _DURATION_RE.match(str(raw))
    if not m:
        raise ValueError(f"expected milliseconds (e.g. 500, or 2s / 5m / 1h), got {raw!r}")
    return int(m.group(1)) * _DURATION_UNITS[m.group(2) or ""]


def _parse_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"expected a whole number, got {raw!r}")
    if isinstance(raw, int):
        return raw
    text = str(raw).strip()
    if not re.match(r"^[+-]?\d+$", text):
        raise ValueError(f"expected a whole number, got {raw!r}")
    return int(text)


def _parse_float(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"expected a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"expected a finite number, got {raw!r}")
    return value


def _split_list(raw: Any) -> List[str]:
    """Config/CLI list values: a list, or comma-separated text (empty items dropped)."""
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    out: List[str] = []
    for item in items:
        if isinstance(item, (dict, list, tuple)):
            raise ValueError(f"expected text, got {item!r}")
        out.extend(part.strip() for part in str(item).split(",") if part.strip())
    return out


def coerce(option: Option, raw: Any) -> Any:
    """Turn text (config/CLI) or JSON (API) into the option's canonical value.

    Raises ValueError with a message that says what was expected; callers add
    where (file:line:col, flag name, API field).
    """
    kind = option.kind
    if raw is None:
        return None
    if kind is Kind.BLOCK:
        raise ValueError(f"{option.name} is a block: write `{option.name} {{ ... }}`")
    if kind is Kind.STR:
        if isinstance(raw, (list, tuple)):
            if len(raw) != 1:
                raise ValueError("expected one value, got a list")
            raw = raw[0]
        if isinstance(raw, (dict, bool)) or raw is None:
            raise ValueError(f"expected text, got {raw!r}")
        value: Any = str(raw)
        if "\0" in value:
            raise ValueError("text may not contain NUL bytes")
    elif kind is Kind.BOOL:
        value = parse_bool(_single(raw))
    elif kind is Kind.INT:
        value = _parse_int(_single(raw))
    elif kind is Kind.FLOAT:
        value = _parse_float(_single(raw))
    elif kind is Kind.DURATION:
        value = parse_duration(_single(raw))
    elif kind is Kind.SIZE:
        value = parse_size(_single(raw))
    elif kind is Kind.ENUM:
        text = str(_single(raw)).strip()
        match = [c for c in option.choices if c.lower() == text.lower()]
        if not match:
            raise ValueError(f"expected one of {', '.join(option.choices)}, got {raw!r}")
        value = match[0]
    elif kind is Kind.LIST:
        value = _split_list(raw) if option.name not in ("params", "env") else _list_no_split(raw)
        if option.name in ("allow_method", "ban_method"):
            value = [v.upper() for v in value]
    elif kind is Kind.INTLIST:
        value = [_parse_int(v) for v in _split_list(raw)]
    else:  # pragma: no cover - every Kind is handled above
        raise ValueError(f"unhandled kind {kind}")
    _check_range(option, value)
    if option.validator is not None and value is not None:
        option.validator(value)
    return value


def _list_no_split(raw: Any) -> List[str]:
    """params and env keep commas inside values (`--foo=a,b`, `KEY=a,b`): one item per value."""
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    out = []
    for item in items:
        if isinstance(item, (dict, list, tuple)) or item is None:
            raise ValueError(f"expected text, got {item!r}")
        out.append(str(item))
    return out


def _single(raw: Any) -> Any:
    if isinstance(raw, (list, tuple)):
        if len(raw) != 1:
            raise ValueError(f"expected one value, got {len(raw)}")
        return raw[0]
    if isinstance(raw, dict):
        raise ValueError("expected a value, got an object")
    return raw


def _check_range(option: Option, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if option.minimum is not None and value < option.minimum:
        raise ValueError(f"{value} is below the minimum {option.minimum:g}")
    if option.maximum is not None and value > option.maximum:
        raise ValueError(f"{value} is above the maximum {option.maximum:g}")


def format_value(option: Option, value: Any) -> List[str]:
    """Canonical value -> the text a human would write in apm.conf (one item per value)."""
    if value is None:
        return []
    kind = option.kind
    if kind is Kind.BOOL:
        return ["true" if value else "false"]
    if kind is Kind.SIZE:
        return [format_size(int(value))]
    if kind is Kind.FLOAT:
        number = float(value)
        return [str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)]
    if kind in LIST_KINDS:
        return [str(v) for v in value]
    return [str(value)]


# --------------------------------------------------------------------------- worker configs


def split_cmd(cmd: str) -> Tuple[str, List[str]]:
    """`cmd "node server.js --port 3"` -> ("node", ["server.js", "--port", "3"])."""
    try:
        words = shlex.split(cmd)
    except ValueError as exc:
        raise ValueError(f"cannot split {cmd!r}: {exc}") from None
    if not words:
        raise ValueError("cmd is empty")
    return words[0], words[1:]


def coerce_block(block: str, values: Dict[str, Any], where: str = "") -> Tuple[Dict[str, Any], List[str]]:
    """Coerce and validate a dict of raw values for one block kind.

    Returns (clean values, warnings).  Unknown options warn and are dropped
    ("never crash on a bad optional field"); bad values and missing required
    ones raise ConfigError naming the option, the value and what to write.
    """
    table = BLOCKS[block]
    clean: Dict[str, Any] = {}
    warnings: List[str] = []
    for key, raw in values.items():
        name = normalize_name(key)
        option = table.get(name)
        if option is None:
            warnings.append(
                f"{where + ': ' if where else ''}unknown {block} option {key!r} ignored ({suggest(name, table)})"
            )
            continue
        if option.kind is Kind.BLOCK:
            sub = raw if isinstance(raw, list) and option.repeat_block else [raw]
            subs = []
            for item in sub:
                if not isinstance(item, dict):
                    raise ConfigError(f"{block} option {option.name} must be a block {{ ... }}", where=where)
                sub_clean, sub_warn = coerce_block(option.block, item, where)
                subs.append(sub_clean)
                warnings.extend(sub_warn)
            clean[option.name] = subs if option.repeat_block else subs[0]
            continue
        try:
            clean[option.name] = coerce(option, raw)
        except ValueError as exc:
            raise ConfigError(
                f"{block} option {option.name}: {exc}",
                hint=f"{option.name} takes {option.describe_type()}: {option.help}",
                where=where,
            ) from None
    if block == "worker" and "cmd" in clean:
        try:
            exec_, params = split_cmd(clean.pop("cmd"))
        except ValueError as exc:
            raise ConfigError(
                f"worker option cmd: {exc}", hint="write `cmd <program> <args...>;`", where=where
            ) from None
        clean.setdefault("exec", exec_)
        clean.setdefault("params", params)
    for option in table.values():
        if option.required and clean.get(option.name) in (None, "", []):
            raise ConfigError(
                f"{block} is missing required option {option.name}",
                hint=f"add `{option.name} <value>;` ({option.help})",
                where=where,
            )
    if block == "worker" and not clean.get("name"):
        clean["name"] = default_name(clean["exec"])
        try:
            _check_name(clean["name"])
        except ValueError as exc:
            raise ConfigError(
                f"worker name {clean['name']!r}: {exc}", hint="set `name` explicitly", where=where
            ) from None
    if block == "dashboard":
        ids = [m.get("id") for m in clean.get("module", [])]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ConfigError(
                f"dashboard module ids must be unique; repeated: {dupes}",
                hint="give each module its own id",
                where=where,
            )
    return clean, warnings


def default_name(exec_: str) -> str:
    base = exec_.rstrip("/").rsplit("/", 1)[-1] or "worker"
    return re.sub(r"[^A-Za-z0-9_.@-]", "_", base)


def effective(config: Dict[str, Any], table: Optional[Dict[str, Option]] = None) -> Dict[str, Any]:
    """Config with every default filled in (the daemon's view)."""
    table = WORKER_OPTIONS if table is None else table
    out = {name: option.default for name, option in table.items() if option.kind is not Kind.BLOCK}
    out.pop("cmd", None)
    for key, value in config.items():
        out[key] = value
    return out


def mask_secrets(config: Dict[str, Any], block: str = "worker") -> Dict[str, Any]:
    """Copy of a config with secret values replaced, for the API, `apm info` and logs."""
    table = BLOCKS[block]
    out: Dict[str, Any] = {}
    for key, value in config.items():
        option = table.get(key)
        if option is not None and option.secret and value:
            out[key] = "********"
        elif option is not None and option.kind is Kind.BLOCK and isinstance(value, dict):
            out[key] = mask_secrets(value, option.block)
        elif option is not None and option.kind is Kind.BLOCK and isinstance(value, list):
            out[key] = [mask_secrets(v, option.block) for v in value]
        else:
            out[key] = value
    return out


def schema(block: str = "worker") -> Dict[str, Any]:
    out = []
    for option in BLOCKS[block].values():
        entry: Dict[str, Any] = {
            "name": option.name,
            "type": option.kind.name.lower(),
            "default": option.default,
            "help": option.help,
            "section": option.section,
            "required": option.required,
            "multiple": option.multiple,
            "secret": option.secret,
        }
        if option.choices:
            entry["choices"] = list(option.choices)
        if option.minimum is not None:
            entry["minimum"] = option.minimum
        if option.maximum is not None:
            entry["maximum"] = option.maximum
        if option.block:
            entry["block"] = option.block
        out.append(entry)
    return {"block": block, "options": out}

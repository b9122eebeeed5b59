"""THE table of API routes.  Adding an endpoint = adding one `Route(...)` here.

Each route says its method, path (with `{param}`s), handler, who may call it
and, for the docs (docs/api.md, docs/openapi.json), a summary, its query
parameters and body fields.

Access levels:
    PUBLIC   anyone (the page before login; nothing here reveals state)
    LOCKED   a session, even a locked one, or an API token (status, unlock, lock, logout)
    USER     an unlocked session or an API token
    SESSION  an unlocked browser session only (passwords, PIN, API tokens: a token cannot mint tokens)

Every mutating method (POST, PUT, PATCH, DELETE) from a session needs the
session's CSRF token in the `X-CSRF-Token` header, and is refused when an
`Origin` header names another origin.  Mutating session requests count as
activity for the inactivity lock.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Optional, Pattern, Tuple
from urllib.parse import unquote

from alter.daemon.history import HISTORY_MAX
from alter.errors import NotFound
from alter.web import api_auth, api_logs, api_system, api_workers
from alter.web.errors import MethodNotAllowed

PUBLIC = "public"
LOCKED = "locked"
USER = "user"
SESSION = "session"
PREFIX = "/api/v1"
MUTATING = ("POST", "PUT", "PATCH", "DELETE")


class Route:
    __slots__ = ("method", "path", "handler", "access", "summary", "tag", "query", "body", "regex", "status")

    def __init__(
        self,
        method: str,
        path: str,
        handler: Callable[[Any], Any],
        access: str,
        summary: str,
        tag: str,
        query: Optional[Dict[str, str]] = None,
        body: Optional[Dict[str, str]] = None,
        status: int = 200,
    ) -> None:
        self.method = method
        self.path = PREFIX + path
        self.handler = handler
        self.access = access
        self.summary = summary
        self.tag = tag
        self.query = query or {}
        self.body = body or {}
        self.status = status
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        self.regex: Pattern[str] = re.compile("^" + pattern + "$")

    @property
    def mutating(self) -> bool:
        return self.method in MUTATING


W = "/workers/{name}"
WAIT = {"wait": "boolean: answer once every instance survived startup_grace (or fail with StartFailed)"}

ROUTES: List[Route] = [
    # -------------------------------------------------------------- auth
    Route(
        "GET",
        "/auth/status",
        api_auth.status,
        PUBLIC,
        "What the page should show: setup, login, lock screen or app",
        "auth",
    ),
    Route(
        "POST",
        "/auth/setup",
        api_auth.setup,
        PUBLIC,
        "First run: set the password with the one-time setup token; starts a session",
        "auth",
        body={"setup_token": "string, printed by `apm gui`", "password": "string, at least 8 characters"},
    ),
    Route(
        "POST",
        "/auth/login",
        api_auth.login,
        PUBLIC,
        "Log in with the password; starts a session",
        "auth",
        body={"password": "string"},
    ),
    Route("POST", "/auth/logout", api_auth.logout, LOCKED, "End this session", "auth"),
    Route("POST", "/auth/lock", api_auth.lock, LOCKED, "Lock this session now", "auth"),
    Route(
        "POST",
        "/auth/unlock",
        api_auth.unlock,
        LOCKED,
        "Unlock a locked session with the PIN or the password (the PIN never logs in fresh)",
        "auth",
        body={"pin": "string of 4 or 6 digits (or)", "password": "string"},
    ),
    Route(
        "POST", "/auth/activity", api_auth.activity, USER, "The user is active: postpone the inactivity lock", "auth"
    ),
    Route(
        "POST",
        "/auth/password",
        api_auth.change_password,
        SESSION,
        "Change the password; other sessions end, this one gets a new cookie",
        "auth",
        body={"current": "string", "new": "string, at least 8 characters"},
    ),
    Route(
        "PUT",
        "/auth/pin",
        api_auth.set_pin,
        SESSION,
        "Set the quick-unlock PIN",
        "auth",
        body={"pin": "string of 4 or 6 digits", "password": "string, the current password"},
    ),
    Route("DELETE", "/auth/pin", api_auth.remove_pin, SESSION, "Remove the PIN", "auth"),
    Route("GET", "/auth/tokens", api_auth.list_tokens, SESSION, "API tokens (id, name, created, last_used)", "auth"),
    Route(
        "POST",
        "/auth/tokens",
        api_auth.create_token,
        SESSION,
        "Create an API token; the reply holds the token, shown only this once",
        "auth",
        body={"name": "string, optional label"},
        status=201,
    ),
    Route("DELETE", "/auth/tokens/{id}", api_auth.revoke_token, SESSION, "Revoke an API token", "auth"),
    # -------------------------------------------------------------- workers
    Route(
        "GET",
        "/workers",
        api_workers.list_workers,
        USER,
        "Every worker with its instances (WorkerStatus list)",
        "workers",
    ),
    Route(
        "POST",
        "/workers",
        api_workers.create_worker,
        USER,
        "Create and start a worker (origin: gui)",
        "workers",
        body={"config": "object of worker options (GET /schema/worker); exec is required", **WAIT},
        status=201,
    ),
    Route(
        "POST",
        "/workers/stopall",
        api_workers.stop_all,
        USER,
        "Stop every worker (the daemon keeps running)",
        "workers",
    ),
    Route("GET", W, api_workers.get_worker, USER, "One worker: status plus every option's effective value", "workers"),
    Route(
        "PATCH",
        W,
        api_workers.update_worker,
        USER,
        "Change options (null removes one); restarts when needed unless restart is false",
        "workers",
        body={"config": "object of options to change", "restart": "boolean, default true", **WAIT},
    ),
    Route("DELETE", W, api_workers.delete_worker, USER, "Stop and remove a worker", "workers"),
    Route("POST", W + "/start", api_workers.start_worker, USER, "Start (name or name#N)", "workers", body=dict(WAIT)),
    Route("POST", W + "/stop", api_workers.stop_worker, USER, "Stop; answers once stopped (name or name#N)", "workers"),
    Route(
        "POST", W + "/restart", api_workers.restart_worker, USER, "Restart (rolling if set)", "workers", body=dict(WAIT)
    ),
    Route(
        "POST",
        W + "/reload",
        api_workers.reload_worker,
        USER,
        "Reload: restart with the current config",
        "workers",
        body=dict(WAIT),
    ),
    Route(
        "POST", W + "/enable", api_workers.enable_worker, USER, "Enable (starts it if it is wanted running)", "workers"
    ),
    Route(
        "POST", W + "/disable", api_workers.disable_worker, USER, "Disable (stops it; skipped by start all)", "workers"
    ),
    Route(
        "POST",
        W + "/signal",
        api_workers.signal_worker,
        USER,
        "Send a signal to the running instances (or one)",
        "workers",
        body={"signal": "SIGHUP, HUP or a number", "instance": "integer, 1-based, optional"},
    ),
    Route("POST", W + "/rename", api_workers.rename_worker, USER, "Rename", "workers", body={"new": "string"}),
    Route(
        "POST",
        W + "/copy",
        api_workers.copy_worker,
        USER,
        "Duplicate under a new name",
        "workers",
        body={"new": "string"},
        status=201,
    ),
    Route(
        "GET",
        W + "/env",
        api_workers.worker_env,
        USER,
        "The environment an instance gets",
        "workers",
        query={"instance": "1-based, default 1"},
    ),
    Route(
        "GET",
        W + "/history",
        api_workers.restart_history,
        USER,
        "Restart history: starts, exits, crashes, backoffs, restarts and stops, newest first",
        "workers",
        query={"limit": f"1-{HISTORY_MAX}, default {HISTORY_MAX}: the last N lifecycle events (name#N: one instance)"},
    ),
    Route(
        "GET",
        W + "/metrics",
        api_workers.worker_metrics,
        USER,
        "CPU/memory history for the charts",
        "workers",
        query={"range": "1h (5 s points, default) or 24h (1 min averages)"},
    ),
    Route(
        "GET",
        "/schema/worker",
        api_workers.worker_schema,
        USER,
        "Every worker option (the edit form is built from it)",
        "workers",
    ),
    # -------------------------------------------------------------- logs
    Route(
        "GET",
        W + "/logs",
        api_logs.tail,
        USER,
        "The last lines of the files and the ring buffer, in time order",
        "logs",
        query={
            "lines": "1-5000, default 200",
            "stream": "out, err or all",
            "instance": "1-based",
            "color": "boolean, default true: keep ANSI colours",
        },
    ),
    Route(
        "GET",
        W + "/logs/download",
        api_logs.download,
        USER,
        "Every log file, oldest first, as one text/plain attachment",
        "logs",
        query={"strip": "boolean: remove ANSI colours"},
    ),
    Route(
        "DELETE",
        W + "/logs",
        api_logs.clear,
        USER,
        "Clear: truncate the log, delete rotated files, empty the ring",
        "logs",
    ),
    Route(
        "GET",
        "/logs/search",
        api_logs.search_logs,
        USER,
        "Search log files with a regular expression",
        "logs",
        query={
            "q": "regular expression (required)",
            "worker": "one worker, or all",
            "ignore_case": "boolean",
            "context": "lines before/after, 0-20",
            "limit": "1-2000, default 500",
            "strip": "boolean, default true: match the text without colours",
        },
    ),
    Route("GET", "/logs", api_logs.library, USER, "Log Library: every worker's log files, sizes and counters", "logs"),
    Route(
        "GET",
        "/logs/volume",
        api_logs.volume,
        USER,
        "Log Volume: lines per hour per worker and stream",
        "logs",
        query={"worker": "one worker (default all)", "hours": "1-168, default 24"},
    ),
    Route("GET", "/logs/alerts", api_logs.get_alerts, USER, "Log alert patterns (Settings → Log Alerts)", "logs"),
    Route(
        "PUT",
        "/logs/alerts",
        api_logs.set_alerts,
        USER,
        "Replace the log alert patterns",
        "logs",
        body={"alerts": "array of {name, pattern, cooldown_ms, ...} (see docs/logs.md)"},
    ),
    # -------------------------------------------------------------- live
    Route(
        "GET",
        "/stream",
        api_system.stream,
        USER,
        "The page's live stream (text/event-stream): snapshot, then deltas",
        "live",
        query={
            "workers": "boolean, default true: worker status changes",
            "stats": "boolean, default true: CPU/memory once a second",
            "notify": "boolean, default true: notifications",
            "logs": "comma-separated worker names, or * for all",
            "tail": "0-5000: backlog lines per named worker; with logs=* the newest N of all workers, in time order",
        },
    ),
    Route(
        "GET",
        "/notifications",
        api_system.notifications,
        USER,
        "Recent notifications (the bell)",
        "live",
        query={"after": "only ids above this"},
    ),
    # -------------------------------------------------------------- system
    Route("GET", "/health", api_system.health, PUBLIC, "Liveness probe", "system"),
    Route("GET", "/ping", api_system.ping, USER, "Round trip for the Browser → Server latency card", "system"),
    Route(
        "GET",
        "/system/info",
        api_system.info,
        USER,
        "Server Info: CPU, RAM, OS, kernel, network, load, daemon",
        "system",
    ),
    Route("GET", "/system/stats", api_system.stats, USER, "Host CPU and memory (status bar), worker counts", "system"),
    Route("GET", "/system/latency", api_system.latency, USER, "TCP connect time to the latency targets", "system"),
    Route(
        "GET",
        "/system/config",
        api_system.config,
        USER,
        "Daemon options (secrets masked) and the GUI listener",
        "system",
    ),
    Route("POST", "/system/save", api_system.save, USER, "Write the daemon state to disk now", "system"),
    Route("POST", "/system/shutdown", api_system.shutdown, SESSION, "Stop every worker and the daemon", "system"),
    # -------------------------------------------------------------- settings
    Route("GET", "/settings", api_system.get_settings, USER, "GUI settings: general, ui, security", "settings"),
    Route(
        "PATCH",
        "/settings",
        api_system.update_settings,
        USER,
        "Change settings (all or nothing); security needs a session",
        "settings",
        body={"general": "object", "ui": "object", "security": "object"},
    ),
    Route(
        "GET", "/settings/schema", api_system.settings_schema, USER, "Every setting: type, default, limits", "settings"
    ),
]


def match(method: str, path: str, routes: Optional[List[Route]] = None) -> Tuple[Route, Dict[str, str]]:
    """The route for (method, path) and its decoded params; NotFound or MethodNotAllowed."""
    allowed: List[str] = []
    for route in ROUTES if routes is None else routes:
        m = route.regex.match(path)
        if m is None:
            continue
        if route.method == method:
            return route, {k: unquote(v) for k, v in m.groupdict().items()}
        allowed.append(route.method)
    if allowed:
        raise MethodNotAllowed(
            f"{method} is not allowed on {path}",
            ", ".join(sorted(set(allowed))),
            hint="allowed: " + ", ".join(sorted(set(allowed))),
        )
    raise NotFound(f"no API endpoint {path}", hint="see docs/api.md for the endpoints")

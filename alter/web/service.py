"""GuiService: the web GUI as the daemon holds it (`daemon.gui`).

    service = GuiService(daemon)     # in Daemon._register_commands (via web_handlers)
    service.autostart()              # Daemon.start(): gui_port != 0 -> listen
    service.start(port, bind)        # `apm gui` (loop thread)
    service.stop() / close()

Where the listener's settings come from, lowest first: the daemon options
(`gui_port`, `gui_bind`, `gui_tls_cert`, `gui_tls_key`, `gui_password`), then
the environment (`APM_GUI_PORT`, `APM_GUI_BIND`, `APM_GUI_TLS_CERT`,
`APM_GUI_TLS_KEY`: test/ops overrides read at daemon start), then the flags
of `apm gui --port/--bind` (this run of the GUI only).

The GUI refuses a non-loopback address while no password exists.
`start`/`stop`/`status` run on the loop thread; `guard`, `static_file` and
the rest are called from the HTTP threads.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, Mapping, Optional

from alter.config import options
from alter.errors import ApmError, ConfigError, PermissionDenied, UsageError
from alter.web import routes
from alter.web.assets import Assets
from alter.web.auth import AuthManager
from alter.web.bridge import LoopBridge
from alter.web.errors import CsrfRejected, Unauthorized
from alter.web.history import History
from alter.web.message import Call, Principal
from alter.web.notify import Notifications
from alter.web.ratelimit import Policy, RateLimiter
from alter.web.server import GuiHTTPServer, is_loopback, split_host, tls_context
from alter.web.settings import Settings
from alter.web.sse import StreamHub
from alter.web.stats import StatsSampler
from alter.web.sysinfo import HostLoad, Prober
from alter.web.tokens import same

log = logging.getLogger("apm.web")

COOKIE = "apm_session"
CSRF_HEADER = "X-CSRF-Token"
COOKIE_MAX_AGE = 7 * 24 * 3600
ENV_KEYS = {
    "port": "APM_GUI_PORT",
    "bind": "APM_GUI_BIND",
    "tls_cert": "APM_GUI_TLS_CERT",
    "tls_key": "APM_GUI_TLS_KEY",
}


class GuiService:
    def __init__(self, daemon: Any, env: Optional[Mapping[str, str]] = None) -> None:
        self.daemon = daemon
        self.env = dict(os.environ if env is None else env)
        state_dir = daemon.paths.state_dir
        self.settings = Settings(os.path.join(state_dir, "settings.json"))
        self.auth = AuthManager(
            os.path.join(state_dir, "auth.json"),
            lock_timeout=lambda: int(self.settings.get("security", "lock_timeout")),
            limiter=RateLimiter(Policy.from_env(self.env)),
        )
        self.bridge = LoopBridge(daemon)
        self.history = History()
        self.hub: Optional[StreamHub] = None
        self.sampler: Optional[StatsSampler] = None
        self.notifications = Notifications(self._publish_notification)
        self.prober = Prober()
        self._host_load = HostLoad()
        self._host_lock = threading.Lock()
        self.server: Optional[GuiHTTPServer] = None
        self.listening: Optional[Dict[str, Any]] = None  # bind/port/tls of the running listener (for HTTP threads)
        self.thread: Optional[threading.Thread] = None
        self.runtime: Dict[str, Any] = {}  # `apm gui --port/--bind` for this run
        self.assets = Assets()  # the GUI files and their content hash, read once by the GUI thread
        self._config_password: Optional[str] = None
        self.auth.on_session_end.append(self._session_ended)
        self.settings.on_change(lambda _values: self.settings_changed())
        daemon.bus.subscribe("daemon.config", self._daemon_config_changed)

    # ------------------------------------------------------------------ config

    def config(self, runtime: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """The listener's effective settings (see the module doc for the order)."""
        dcfg = self.daemon.daemon_config
        out: Dict[str, Any] = {
            "port": dcfg.get("gui_port"),
            "bind": dcfg.get("gui_bind"),
            "tls_cert": dcfg.get("gui_tls_cert"),
            "tls_key": dcfg.get("gui_tls_key"),
        }
        for key, var in ENV_KEYS.items():
            value = self.env.get(var, "").strip()
            if value:
                out[key] = value
        out.update({k: v for k, v in (self.runtime if runtime is None else runtime).items() if v is not None})
        try:
            out["port"] = int(out["port"] if out["port"] is not None else options.DAEMON_OPTIONS["gui_port"].default)
        except (TypeError, ValueError):
            raise ConfigError(f"GUI port {out['port']!r} is not a number", hint="set APM_GUI_PORT to 0-65535") from None
        if not 0 <= out["port"] <= 65535:
            raise ConfigError(f"GUI port {out['port']} is out of range", hint="use 1-65535, or 0 to disable the GUI")
        out["bind"] = str(out["bind"] or options.DAEMON_OPTIONS["gui_bind"].default).strip()
        return out

    @property
    def running(self) -> bool:
        return self.listening is not None

    def url(self) -> Optional[str]:
        listening = self.listening
        if listening is None:
            return None
        host = listening["bind"]
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if listening['tls'] else 'http'}://{host}:{listening['port']}/"

    def status(self) -> Dict[str, Any]:
        """The listener's state (HTTP threads call this only while it runs: it then reads no daemon state)."""
        state = self.auth.state()
        listening = self.listening
        where = listening if listening is not None else self.config()
        return {
            "running": listening is not None,
            "url": self.url(),
            "bind": where["bind"],
            "port": where["port"],
            "tls": bool(listening and listening["tls"]),
            "password_set": state["password_set"],
            "setup_required": state["setup_required"],
        }

    # ------------------------------------------------------------------ lifecycle (loop thread)

    def autostart(self) -> None:
        """At daemon start: listen unless gui_port is 0; a failure is logged, never fatal."""
        try:
            cfg = self.config()
        except ApmError as exc:
            log.error("GUI not started: %s", exc)
            return
        if cfg["port"] == 0:
            log.info("GUI disabled (gui_port 0); `apm gui` starts it on demand")
            return
        try:
            status = self.start()
        except ApmError as exc:
            log.error("GUI not started: %s", exc)
            return
        self.announce(status)

    def announce(self, status: Dict[str, Any]) -> Optional[str]:
        """Log the URL, and a fresh setup token while no password exists (returned too)."""
        log.info("GUI: %s", status["url"])
        token: Optional[str] = None
        if status["setup_required"]:
            try:
                token = self.auth.issue_setup_token()
            except ApmError:
                return None
            log.info(
                "GUI first run: open %s and enter the setup token %s to choose a password "
                "(single use, valid 1 h; `apm gui` prints a new one)",
                status["url"],
                token,
            )
        return token

    def start(self, port: Optional[int] = None, bind: Optional[str] = None) -> Dict[str, Any]:
        """Listen (no-op when already listening with the same settings); ApmError says why not.

        A running listener is replaced only once the new one is bound, so a refused change
        (no password for a public address, port taken...) leaves the GUI as it was.
        """
        wanted = dict(self.runtime)
        if port is not None:
            wanted["port"] = port
        if bind is not None:
            wanted["bind"] = bind
        if self.server is not None and wanted == self.runtime:
            return self.status()
        cfg = self.config(wanted)
        cfg["port"] = cfg["port"] or options.DAEMON_OPTIONS["gui_port"].default  # 0 = not at start-up; on demand: 6789
        self._apply_config_password()
        tls = self._check(cfg)
        listening = self.listening
        if listening is not None and (listening["bind"], listening["port"]) == (cfg["bind"], cfg["port"]):
            self.stop()  # same address: it must be free before binding again
        server = self._bind(cfg, tls)
        if self.server is not None:
            self.stop()
        self.runtime = wanted
        self._activate(server, cfg["bind"], tls)
        return self.status()

    def _check(self, cfg: Dict[str, Any]) -> Optional[Any]:
        """The password rule and the TLS files; returns the TLS context (or None)."""
        bind = cfg["bind"]
        if not is_loopback(bind) and not self.auth.password_set:
            raise PermissionDenied(
                f"refusing to serve the GUI on {bind}: no GUI password is set yet, and anyone who can reach "
                f"{bind} could claim it",
                hint="set one first: `apm gui --bind 127.0.0.1` prints a setup token for the page (or an SSH "
                "tunnel to it), or set gui_password in apm.conf; then bind " + bind,
            )
        if cfg["tls_cert"] or cfg["tls_key"]:
            if not (cfg["tls_cert"] and cfg["tls_key"]):
                raise ConfigError("GUI TLS needs both gui_tls_cert and gui_tls_key", hint="set both, or neither")
            return tls_context(str(cfg["tls_cert"]), str(cfg["tls_key"]))
        return None

    def _bind(self, cfg: Dict[str, Any], tls: Any) -> GuiHTTPServer:
        bind, port = cfg["bind"], cfg["port"]
        try:
            return GuiHTTPServer((bind.strip("[]"), port), self, tls)
        except OSError as exc:
            raise ApmError(
                f"cannot listen on {bind}:{port} for the GUI: {exc.strerror or exc}",
                hint="another program may use the port: pick another with `apm gui --port N` or gui_port "
                "in apm.conf (0 disables the GUI)",
            ) from None

    def _activate(self, server: GuiHTTPServer, bind: str, tls: Any) -> None:
        self.server = server
        self.listening = {"bind": bind, "port": server.port, "tls": tls is not None, "loopback": is_loopback(bind)}
        self.bridge.closed = False
        self._attach()
        self.thread = threading.Thread(target=self._serve, args=(server,), name="apm-gui", daemon=True)
        self.thread.start()

    def _serve(self, server: GuiHTTPServer) -> None:
        try:
            self.assets.load()  # once: read and hash the GUI files before the first page asks
        except Exception:
            log.exception("GUI: cannot read the dashboard's files")
        server.serve()

    def _daemon_config_changed(self, kind: str, data: Dict[str, Any]) -> None:
        """apm.conf's daemon block changed (`apm boot` / `reload`): follow the gui_* options."""
        changed = set(data.get("changed") or [])
        if "gui_password" in changed and self.daemon.daemon_config.get("gui_password"):
            self._apply_config_password()
        if not changed & {"gui_port", "gui_bind", "gui_tls_cert", "gui_tls_key"}:
            return
        if self.runtime:
            log.info("GUI: apm.conf changed the listener, but `apm gui --port/--bind` overrides it for now")
            return
        try:
            port = self.config()["port"]
        except ApmError as exc:
            log.error("GUI: %s", exc)
            return
        if self.server is not None:
            self.stop()
        if port == 0:
            return
        try:
            self.announce(self.start())
        except ApmError as exc:
            log.error("GUI not started: %s", exc)

    def _apply_config_password(self) -> None:
        plain = self.daemon.daemon_config.get("gui_password")
        if plain and plain != self._config_password:
            self.auth.apply_config_password(str(plain))
            self._config_password = str(plain)

    def _attach(self) -> None:
        sup = self.daemon.supervisor
        if self.hub is None:
            self.sampler = StatsSampler(self.daemon.loop, sup, self.history, self._publish_stats)
            self.hub = StreamHub(self.daemon.loop, sup, self.daemon.bus, self.sampler, self.notifications)
        self.hub.attach()
        assert self.sampler is not None
        self.sampler.start()

    def stop(self) -> Dict[str, Any]:
        server, self.server = self.server, None
        self.listening = None
        if self.hub is not None:
            self.hub.detach("bye")
        if self.sampler is not None:
            self.sampler.stop()
        if server is not None:
            server.stop()
            log.info("GUI stopped")
        self.runtime = {}
        return self.status()

    def close(self) -> None:
        """Daemon exit: streams get `bye`, the listener closes, auth state is saved."""
        try:
            self.stop()
        finally:
            self.bridge.closed = True
            self.auth.flush()

    def reset_password(self) -> Dict[str, Any]:
        token = self.auth.reset()
        status = self.status()
        if self.listening is not None and not self.listening["loopback"]:
            self.stop()
            status = self.status()
            status["stopped"] = "the GUI listened on a non-loopback address without a password: stopped"
        status["setup_token"] = token
        return status

    # ------------------------------------------------------------------ loop-side glue

    def _publish_stats(self, payload: Dict[str, Any]) -> None:
        if self.hub is not None:
            self.hub.publish_stats(payload)

    def _publish_notification(self, item: Dict[str, Any]) -> None:
        if self.hub is not None:
            self.hub.publish_notification(item)

    def settings_view(self) -> Dict[str, Any]:
        """What GET /api/v1/settings answers (and the stream's `settings` event carries): no secrets."""
        out: Dict[str, Any] = self.settings.all()
        state = self.auth.state()
        out["security"].update(
            {"password_set": state["password_set"], "has_pin": state["has_pin"], "tokens": len(self.auth.list_tokens())}
        )
        return out

    def settings_changed(self) -> None:
        """Settings (or the security facts in them) changed: every open stream gets `settings` (any thread)."""
        hub = self.hub
        if hub is None or self.bridge.closed or not self.running:
            return

        def publish() -> None:  # on the loop, so the last event always carries the latest values
            hub.publish_settings(self.settings_view())

        self.daemon.loop.call_soon_threadsafe(publish)

    def _session_ended(self, owner: str) -> None:
        hub = self.hub
        if hub is not None and not self.bridge.closed:
            self.daemon.loop.call_soon_threadsafe(hub.end_owner, owner, "logout")

    # ------------------------------------------------------------------ HTTP-thread helpers

    def host_load(self) -> Dict[str, Any]:
        with self._host_lock:
            return self._host_load.sample()

    def static_file(self, rel: str) -> bytes:
        return self.assets.get(rel)[0]

    def session_cookie(self, sid: str) -> str:
        secure = "; Secure" if self.listening is not None and self.listening["tls"] else ""
        age = COOKIE_MAX_AGE if sid else 0
        return f"{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{secure}"

    def check_host(self, host_header: str) -> None:
        """DNS-rebinding guard: on a loopback bind, only loopback Host names are served."""
        listening = self.listening
        if listening is None or not listening["loopback"]:
            return
        host = split_host(host_header)
        if host and not is_loopback(host):
            raise PermissionDenied(
                f"unexpected Host {host_header[:100]!r} for a GUI bound to {listening['bind']}",
                hint="open the GUI as http://127.0.0.1:<port>/ or http://localhost:<port>/",
            )

    def _origin_ok(self, call: Call) -> bool:
        origin = call.headers.get("Origin")
        fetch_site = call.headers.get("Sec-Fetch-Site")
        if fetch_site and fetch_site not in ("same-origin", "none"):
            return False
        if origin is None:
            return True
        scheme = "https" if self.listening is not None and self.listening["tls"] else "http"
        host = call.headers.get("Host", "")
        return bool(host) and origin == f"{scheme}://{host}"

    def _principal(self, call: Call) -> Optional[Principal]:
        authorization = call.headers.get("Authorization")
        if authorization is not None:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise Unauthorized(
                    "the Authorization header must be `Bearer <token>`", hint="create one: apm token create"
                )
            principal = self.auth.find_token(value.strip())
            if principal is None:
                raise Unauthorized(
                    "this API token is not valid (revoked or mistyped)", hint="list them: apm token list"
                )
            return principal
        cookie = _cookie(call.headers.get("Cookie", ""), COOKIE)
        if cookie:
            session = self.auth.find_session(cookie)
            if session is not None:
                return Principal("session", session=session)
        return None

    def guard(self, call: Call, route: routes.Route) -> None:
        """Authenticate and authorize one API call (raises the right 4xx error)."""
        if route.mutating and not self._origin_ok(call):
            raise CsrfRejected(
                "cross-origin request refused", hint="the API accepts changes only from the dashboard's own origin"
            )
        try:
            call.principal = self._principal(call)
        except Unauthorized:
            if route.access != routes.PUBLIC:
                raise
            call.principal = None
        principal = call.principal
        if route.access == routes.PUBLIC:
            if route.mutating:
                _require_json(call)
            return
        if principal is None:
            raise Unauthorized("log in first", hint="POST /api/v1/auth/login, or send Authorization: Bearer <token>")
        if route.access == routes.SESSION and principal.kind != "session":
            raise PermissionDenied(
                f"{route.method} {route.path} needs a dashboard session",
                hint="API tokens cannot change passwords, PINs or tokens, or shut the daemon down",
            )
        session = principal.session
        if session is None:
            return
        if route.mutating:
            sent = call.headers.get(CSRF_HEADER) or ""
            if not sent or not same(sent, session.csrf):
                raise CsrfRejected(
                    f"missing or wrong {CSRF_HEADER} header", hint="send the csrf value of /api/v1/auth/status"
                )
        if route.access != routes.LOCKED:
            self.auth.require_unlocked(session)
            if route.mutating:
                self.auth.activity(session)

    def stream_check(self, principal: Principal) -> Optional[str]:
        """Why a live stream must end now ("locked", "logout"), or None."""
        if principal.session is not None:
            if not self.auth.alive(principal.session):
                return "logout"
            if self.auth.is_locked(principal.session):
                return "locked"
            return None
        tokens = {t["id"] for t in self.auth.list_tokens()}
        return None if principal.token_id in tokens else "logout"


def _require_json(call: Call) -> None:
    """Session-less mutating calls (login, setup) must be JSON: no cross-site form posts."""
    media = call.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        from alter.web.errors import UnsupportedMediaType

        raise UnsupportedMediaType("send JSON (Content-Type: application/json)")
    if not isinstance(call.body, dict):
        raise UsageError("the body must be a JSON object")


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return ""

"""/api/v1 system endpoints: health, ping, server info, host stats, latency, config, shutdown,
notifications, settings and the live stream."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Dict, List

from alter import __version__
from alter.config import options
from alter.errors import PermissionDenied
from alter.web import settings as settings_mod
from alter.web import sse, sysinfo
from alter.web.message import Call, Streamed


def health(call: Call) -> Any:
    return {"ok": True}


def ping(call: Call) -> Any:
    return {"pong": True, "server_time": round(time.time(), 3)}


def _daemon_facts(service: Any) -> Dict[str, Any]:
    daemon = service.daemon
    workers = daemon.supervisor.list() if daemon.supervisor is not None else []
    counts: Dict[str, int] = {}
    for w in workers:
        counts[w["status"]] = counts.get(w["status"], 0) + 1
    return {
        "version": __version__,
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "started_at": daemon.started_at,
        "uptime": round(time.time() - daemon.started_at, 1),
        "workers": len(workers),
        "by_status": counts,
        "instances_running": sum(w["instances_running"] for w in workers),
        "state_dir": daemon.paths.state_dir,
        "log_dir": daemon.paths.log_dir,
        "daemon_log": daemon.paths.daemon_log,
    }


def info(call: Call) -> Any:
    service = call.service
    facts = service.bridge.run(_daemon_facts, service)
    host = sysinfo.host_info()
    return {"host": host, "daemon": facts, "gui": service.status()}


def stats(call: Call) -> Any:
    service = call.service
    facts = service.bridge.run(_daemon_facts, service)
    return {
        "host": service.host_load(),
        "daemon": {k: facts[k] for k in ("workers", "by_status", "instances_running", "uptime")},
    }


def latency(call: Call) -> Any:
    service = call.service
    targets: List[str] = service.settings.get("general", "latency_targets")
    return {"targets": service.prober.run(targets), "timeout_ms": int(service.prober.timeout * 1000)}


def config(call: Call) -> Any:
    service = call.service
    daemon_config = service.bridge.run(lambda: dict(service.daemon.daemon_config))
    return {"daemon": options.mask_secrets(daemon_config, "daemon"), "gui": service.status()}


def shutdown(call: Call) -> Any:
    return call.service.bridge.call("exit", timeout=180.0)


def save(call: Call) -> Any:
    daemon = call.service.daemon

    def flush() -> Any:
        daemon.saver.changed()
        daemon.saver.flush()
        return {"saved": daemon.saver.last_error is None, "error": daemon.saver.last_error}

    return call.service.bridge.run(flush)


def notifications(call: Call) -> Any:
    after = call.int_arg("after", 0, 0, 2**62)
    service = call.service
    return {"notifications": service.bridge.run(service.notifications.recent, after)}


# ---------------------------------------------------------------------------------------------- settings


def get_settings(call: Call) -> Any:
    return call.service.settings_view()


def update_settings(call: Call) -> Any:
    body = call.body
    if "security" in body and (call.principal is None or call.principal.kind != "session"):
        raise PermissionDenied(
            "security settings need a browser session", hint="log in to the dashboard to change them"
        )
    call.service.settings.update(body)  # every open stream gets a `settings` event (GuiService)
    return get_settings(call)


def settings_schema(call: Call) -> Any:
    return settings_mod.schema()


# ---------------------------------------------------------------------------------------------- stream


def stream(call: Call) -> Any:
    """The page's one live connection (Server-Sent Events)."""
    service = call.service
    logs = {n for n in (call.arg("logs") or "").split(",") if n}
    want = sse.Want(
        workers=call.bool_arg("workers", True),
        stats=call.bool_arg("stats", True),
        notify=call.bool_arg("notify", True),
        logs=logs,
        tail=call.int_arg("tail", 0, 0, 5000),
    )
    principal = call.principal
    assert principal is not None  # the route needs a login
    owner = principal.session.key if principal.session is not None else "token:" + principal.token_id
    client = sse.StreamClient(owner, want)
    service.bridge.run(service.hub.add_client, client)

    def still_ok() -> Any:
        return service.stream_check(principal)

    def run(handler: Any) -> None:
        try:
            handler.begin_stream(200, "text/event-stream; charset=utf-8", [("X-Accel-Buffering", "no")], length=None)
        except OSError:
            service.daemon.loop.call_soon_threadsafe(service.hub.remove_client, client)
            return
        handler.stream_timeout()
        sse.serve_stream(handler.write_flush, client, service.bridge, service.hub, still_ok)

    return Streamed(run)

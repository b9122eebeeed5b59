"""/api/v1/workers*: list, create, update, delete, actions, restart and CPU/memory history, env, schema.

Everything goes through the control-command handlers (bridge.call), so the
API validates and fails exactly like the CLI.  Workers created here get the
origin `{"kind": "gui"}`.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from alter.config import options
from alter.daemon.history import HISTORY_MAX
from alter.errors import UsageError
from alter.web.bridge import LoopRequest
from alter.web.message import Call, Response

LONG = 150.0  # seconds: stop/remove wait for kill_timeout (default 5 s) and more
START = 60.0  # run/start/restart with wait: startup_grace and a margin


def _wait(call: Call) -> bool:
    return bool(call.field("wait", bool, required=False, default=False))


def list_workers(call: Call) -> Any:
    """Like the `list` command, with CPU and memory from the stats sampler's cache (no /proc reads)."""
    service = call.service
    hub = service.hub
    if hub is None:
        return service.bridge.call("list")
    return service.bridge.run(lambda: {"workers": hub.statuses()})


def get_worker(call: Call) -> Any:
    return call.service.bridge.call("info", {"name": call.params["name"]})


def create_worker(call: Call) -> Any:
    config = call.field("config", dict)
    wait = _wait(call)
    service = call.service
    sup = service.daemon.supervisor

    def before() -> Any:
        return set(sup.workers)

    def after(req: LoopRequest) -> None:
        origin = {"kind": "gui", "file": None}
        new = [n for n in sup.workers if n not in (req.before or set())]
        for name in new:
            sup.set_origin(name, origin)
        result = req.pending[1] if req.pending is not None and req.pending[0] == "ok" else None
        if isinstance(result, dict) and result.get("name") in new:
            result["origin"] = dict(origin)

    result = service.bridge.call(
        "run", {"config": config, "wait": wait}, timeout=START if wait else 10.0, before=before, after=after
    )
    return Response.json(result, status=201)


def update_worker(call: Call) -> Any:
    args: Dict[str, Any] = {"name": call.params["name"], "config": call.field("config", dict)}
    restart = call.field("restart", bool, required=False)
    if restart is not None:
        args["restart"] = restart
    args["wait"] = _wait(call)
    return call.service.bridge.call("update", args, timeout=START if args["wait"] else 10.0)


def delete_worker(call: Call) -> Any:
    return call.service.bridge.call("remove", {"name": call.params["name"]}, timeout=LONG)


def start_worker(call: Call) -> Any:
    wait = _wait(call)
    return call.service.bridge.call(
        "start", {"name": call.params["name"], "wait": wait}, timeout=START if wait else 10.0
    )


def stop_worker(call: Call) -> Any:
    return call.service.bridge.call("stop", {"name": call.params["name"]}, timeout=LONG)


def restart_worker(call: Call) -> Any:
    wait = _wait(call)
    name = call.params["name"]
    return call.service.bridge.call("restart", {"name": name, "wait": wait}, timeout=START if wait else LONG)


def reload_worker(call: Call) -> Any:
    """Reload = restart with the current config (rolling when the worker sets `rolling`)."""
    return restart_worker(call)


def _set_enabled(call: Call, value: bool) -> Any:
    args = {"name": call.params["name"], "config": {"enabled": value}, "wait": False}
    return call.service.bridge.call("update", args, timeout=LONG)


def enable_worker(call: Call) -> Any:
    return _set_enabled(call, True)


def disable_worker(call: Call) -> Any:
    return _set_enabled(call, False)


def signal_worker(call: Call) -> Any:
    name = call.params["name"]
    instance = call.field("instance", int, required=False)
    target = f"{name}#{instance}" if instance is not None else name
    if "signal" not in call.body:
        raise UsageError("field 'signal' is required", hint="a name like SIGHUP or a number")
    return call.service.bridge.call("signal", {"target": target, "signal": call.body["signal"]})


def rename_worker(call: Call) -> Any:
    return call.service.bridge.call("rename", {"name": call.params["name"], "new": call.field("new", str)})


def copy_worker(call: Call) -> Any:
    result = call.service.bridge.call("copy", {"name": call.params["name"], "new": call.field("new", str)})
    return Response.json(result, status=201)


def worker_env(call: Call) -> Any:
    args: Dict[str, Any] = {"name": call.params["name"]}
    instance: Optional[int] = call.int_arg("instance", 0, 0, 100_000) or None
    if instance is not None:
        args["index"] = instance
    return call.service.bridge.call("env", args)


def stop_all(call: Call) -> Any:
    return call.service.bridge.call("stopall", timeout=LONG)


def worker_metrics(call: Call) -> Any:
    """`?range=1h|24h`: the CPU/memory series of the worker page's charts."""
    span = call.arg("range", "1h") or "1h"
    if span not in ("1h", "24h"):
        raise UsageError(f"range must be 1h or 24h, got {span!r}", hint="use ?range=1h or ?range=24h")
    name = call.params["name"]
    service = call.service

    def read() -> Any:
        service.daemon.supervisor.get(name)  # NotFound with suggestions
        return service.history.series(name, span)

    return service.bridge.run(read)


def restart_history(call: Call) -> Any:
    """{"worker", "events": [newest first]} through the `history` control command."""
    raw = call.arg("limit")
    limit = HISTORY_MAX
    if raw is not None:
        text = raw.strip()
        if not (len(text) <= 4 and text.isascii() and text.isdigit() and 1 <= int(text) <= HISTORY_MAX):
            raise UsageError(
                f"query parameter 'limit' must be a whole number from 1 to {HISTORY_MAX}, got {raw[:40]!r}",
                hint=f"e.g. ?limit=20 (the last {HISTORY_MAX} events of each worker are kept)",
            )
        limit = int(text)
    return call.service.bridge.call("history", {"name": call.params["name"], "limit": limit})


def worker_schema(call: Call) -> Any:
    return options.schema("worker")

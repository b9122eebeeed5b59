"""WorkerStatus dicts exactly as docs/protocol.md describes them (plus a few extra fields).

Extra fields beyond the protocol table: per instance `error` (why it could
not be spawned) and `last_exit.oom` / `last_exit.pid`; per worker `desired`
("running" | "stopped"), `waiting_for` (pending depends_on names) and
`log_error` (why the log cannot be written right now, else null).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from alter.config import options
from alter.supervise.states import InstanceState

if TYPE_CHECKING:
    from alter.supervise.instance import Instance
    from alter.supervise.worker import Worker


Usage = Callable[[int], Tuple[Optional[float], Optional[int]]]  # pid -> (cpu %, rss bytes), like ProcessOps.usage


def instance_status(inst: Instance, now_mono: float, usage: Optional[Usage] = None) -> Dict[str, Any]:
    alive = inst.state in (InstanceState.RUNNING, InstanceState.STOPPING) and inst.pid is not None
    cpu: Optional[float] = None
    memory: Optional[int] = None
    if alive and inst.pid is not None:
        cpu, memory = (usage or inst.ops.usage)(inst.pid)
    uptime = round(max(0.0, now_mono - inst._started_mono), 3) if alive else None
    return {
        "index": inst.index + 1,
        "pid": inst.pid if alive else None,
        "status": inst.state.value,
        "started_at": inst.started_at if alive else None,
        "uptime": uptime,
        "cpu": cpu,
        "memory": memory,
        "restarts": {"clean": inst.counters.clean, "error": inst.counters.error},
        "last_exit": dict(inst.last_exit) if inst.last_exit else None,
        "next_start_at": inst.next_start_at if inst.state is InstanceState.BACKOFF else None,
        "port": inst.port if alive else None,
        "error": inst.error if inst.state is InstanceState.FAILED else None,
    }


def worker_status(worker: Worker, usage: Optional[Usage] = None) -> Dict[str, Any]:
    """`usage`: where CPU and memory come from (default the ProcessOps; the web GUI passes its sampler's cache)."""
    now = worker.loop.time()
    instances: List[Dict[str, Any]] = [instance_status(i, now, usage) for i in worker.instances]
    clean = sum(i.counters.clean for i in worker.instances)
    error = sum(i.counters.error for i in worker.instances)
    deps = worker._deps
    return {
        "name": worker.name,
        "revision": worker.sup.bus.count,
        "namespace": worker.eff.get("namespace") or "default",
        "status": worker.compute_status().value,
        "enabled": worker.enabled,
        "desired": worker.desired,
        "instances_wanted": worker.instance_count(),
        "instances_running": sum(1 for i in worker.wanted if i.state is InstanceState.RUNNING),
        "origin": dict(worker.origin),
        "restarts": {"clean": clean, "error": error},
        "config": options.mask_secrets(worker.config),
        "waiting_for": deps.pending() if deps is not None else [],
        "log_error": log_error(worker.log),
        "instances": instances,
    }


def log_error(log: Any) -> Optional[str]:
    """Why the worker's log cannot be written right now (disk full, bad path), or None."""
    status = getattr(log, "status", None)
    if not callable(status):
        return None
    try:
        error = status().get("error")
    except Exception:
        return None
    return str(error) if error else None


def log_info(log: Any) -> Dict[str, Any]:
    """`apm info`'s "logs": the pipeline's status() plus every file (oldest first) with its size."""
    status = getattr(log, "status", None)
    files = getattr(log, "files", None)
    if not callable(status) or not callable(files):
        return {"files": [], "error": "output is kept in memory only (the log could not be opened)"}
    data: Dict[str, Any] = dict(status())
    listed: List[Dict[str, Any]] = []
    for path in files():
        try:
            size: Optional[int] = os.path.getsize(path)
        except OSError:
            size = None
        listed.append({"path": path, "size": size})
    data["files"] = listed
    return data


def effective_options(worker: Worker) -> Dict[str, Any]:
    """Every option's effective value (defaults filled in, secrets masked), for `apm info`."""
    return options.mask_secrets(options.effective(worker.config))

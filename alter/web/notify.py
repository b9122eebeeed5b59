"""The notifications bell: bus events turned into short messages, the last 200 kept.

Kinds: `crash` (error exit not asked for), `restart` (an instance started
again), `start` / `stop` (a worker reached running / stopped), `errored`,
`failed` (could not spawn), `alert` (a log alert matched).  Runs on the loop.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional

KEEP = 200


def describe(kind: str, data: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """(bus kind, data) -> notification fields, or None for events the bell ignores."""
    worker = str(data.get("worker") or "")
    label = f"{worker}#{data.get('instance')}" if data.get("instance") is not None else worker
    if kind == "instance.crash":
        if data.get("signal"):
            why = f"killed by {data['signal']}"
        else:
            why = f"exit code {data.get('code')}"
        extra = " (out of memory)" if data.get("oom") else ""
        return {
            "kind": "crash",
            "level": "error",
            "message": f"{label} crashed: {why}{extra} after {data.get('runtime_ms')} ms",
        }
    if kind == "instance.start" and int(data.get("attempt") or 0) > 1:
        return {"kind": "restart", "level": "warning", "message": f"{label} restarted (pid {data.get('pid')})"}
    if kind == "instance.failed":
        return {"kind": "failed", "level": "error", "message": f"{label} could not start: {data.get('error')}"}
    if kind == "worker.state":
        status, old = data.get("status"), data.get("old")
        if status == "running" and old != "running":
            return {"kind": "start", "level": "info", "message": f"{worker} is running"}
        if status == "stopped" and old != "stopped":
            return {"kind": "stop", "level": "info", "message": f"{worker} stopped"}
        if status == "errored" and old != "errored":
            return {"kind": "errored", "level": "error", "message": f"{worker} errored"}
        return None
    if kind == "log.alert":
        line = str(data.get("line") or "")[:300]
        return {
            "kind": "alert",
            "level": "warning",
            "message": f"{worker}: log alert {data.get('name') or data.get('pattern')}: {line}",
            "alert": {"name": data.get("name"), "pattern": data.get("pattern"), "stream": data.get("stream")},
        }
    return None


class Notifications:
    def __init__(self, publish: Callable[[Dict[str, Any]], None], wall: Callable[[], float] = time.time) -> None:
        self.publish = publish
        self.wall = wall
        self.items: Deque[Dict[str, Any]] = deque(maxlen=KEEP)
        self.seq = 0

    def on_event(self, kind: str, data: Dict[str, Any]) -> None:
        fields = describe(kind, data)
        if fields is None:
            return
        self.seq += 1
        item = {
            "id": self.seq,
            "ts": round(self.wall(), 3),
            "worker": data.get("worker"),
            "instance": data.get("instance"),
        }
        item.update(fields)
        self.items.append(item)
        self.publish(item)

    def recent(self, after: int = 0, limit: int = KEEP) -> List[Dict[str, Any]]:
        return [dict(i) for i in self.items if i["id"] > after][-limit:]

"""/api/v1 log endpoints: tail, search, download, clear, Log Library, Log Volume, log alerts.

Tail, search, clear, volume and alerts reuse the control commands (`log`,
`grep`, `flush`, `logvolume`, `alerts.*`: alter/daemon/log_handlers.py), so
the CLI and the API read logs the same way.  Downloads and the Log Library
ask the loop only for the list of files and read them on the HTTP thread.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional, Tuple

from alter.errors import UsageError
from alter.logs.colors import strip_ansi
from alter.web.message import Call, Streamed

MAX_TAIL = 5000
MAX_MATCHES = 2000
MAX_PATTERN = 500
CHUNK = 256 * 1024
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.@-]")


def _log_of(service: Any, name: str) -> Any:
    worker = service.daemon.supervisor.get(name)
    return worker, worker.log


def _files(wl: Any) -> List[str]:
    files = getattr(wl, "files", None)
    return list(files()) if callable(files) else []


def _stream_arg(call: Call) -> Optional[str]:
    stream = call.arg("stream")
    if stream in (None, "", "all"):
        return None
    if stream not in ("out", "err"):
        raise UsageError(f"stream must be out, err or all, got {stream!r}")
    return stream


def tail(call: Call) -> Any:
    """The last lines from the files and the ring buffer, in time order (the `log` command's replay)."""
    name = call.params["name"]
    n = call.int_arg("lines", 200, 1, MAX_TAIL)
    instance = call.int_arg("instance", 0, 0, 100_000)
    target = f"{name}#{instance}" if instance else name
    args = {
        "targets": [target],
        "n": n,
        "follow": False,
        "stream": _stream_arg(call),
        "color": call.bool_arg("color", True),
    }
    _, events = call.service.bridge.call_events("log", args, timeout=30.0)
    lines: List[Dict[str, Any]] = []
    for kind, data in events:
        if kind == "lines" and isinstance(data, dict):
            lines.extend(data.get("lines") or [])
    return {"worker": name, "lines": lines[-n:]}


def search_logs(call: Call) -> Any:
    """A regex over every current and rotated file (the `grep` command)."""
    pattern = call.arg("q") or ""
    if not pattern:
        raise UsageError("query parameter 'q' (a regular expression) is required", hint="e.g. ?q=ERROR|WARN")
    if len(pattern) > MAX_PATTERN:
        raise UsageError(f"the pattern is too long ({len(pattern)} characters, limit {MAX_PATTERN})")
    args: Dict[str, Any] = {
        "pattern": pattern,
        "ignore_case": call.bool_arg("ignore_case", False),
        "context": call.int_arg("context", 0, 0, 20),
        "max": call.int_arg("limit", 500, 1, MAX_MATCHES),
        "raw": not call.bool_arg("strip", True),
    }
    worker = call.arg("worker") or ""
    if worker and worker not in ("*", "all"):
        args["name"] = worker
    summary, events = call.service.bridge.call_events("grep", args, timeout=60.0)
    matches: List[Dict[str, Any]] = []
    for kind, data in events:  # `matches` batches (docs/protocol.md, "grep")
        if kind == "matches" and isinstance(data, dict):
            matches.extend(data.get("matches") or [])
    return {"pattern": pattern, "matches": matches, "summary": summary, "truncated": bool(summary.get("truncated"))}


def download(call: Call) -> Any:
    """Every log file of the worker, oldest first, as one text/plain attachment."""
    name = call.params["name"]
    strip = call.bool_arg("strip", False)
    service = call.service

    def collect() -> Tuple[str, List[str]]:
        worker, wl = _log_of(service, name)
        return worker.name, _files(wl)

    worker_name, files = service.bridge.run(collect)
    sized: List[Tuple[str, int]] = []
    for path in files:
        try:
            sized.append((path, os.path.getsize(path)))
        except OSError:
            continue
    filename = _SAFE_NAME.sub("_", worker_name) + ".log"
    headers = [("Content-Disposition", f'attachment; filename="{filename}"')]

    def run(handler: Any) -> None:
        total = None if strip else sum(size for _, size in sized)
        handler.begin_stream(200, "text/plain; charset=utf-8", headers, length=total)
        for path, size in sized:
            try:
                f = open(path, "rb")  # noqa: SIM115 - closed by the `with f:` below
            except OSError:
                if total is not None:
                    handler.wfile.write(b"\n" * size)  # keep Content-Length honest
                continue
            with f:
                left = size
                while left > 0:
                    data = f.read(min(CHUNK, left))
                    if not data:
                        handler.wfile.write(b"\n" * left if total is not None else b"")
                        break
                    left -= len(data)
                    handler.wfile.write(strip_ansi(data) if strip else data)

    return Streamed(run)


def clear(call: Call) -> Any:
    """Empty the worker's files and ring buffer (the `flush` command)."""
    result = call.service.bridge.call("flush", {"name": call.params["name"]})
    return {"cleared": (result.get("flushed") or [call.params["name"]])[0]}


def library(call: Call) -> Any:
    """Log Library: every worker's log files with sizes, and its line counters."""
    service = call.service

    def collect() -> List[Dict[str, Any]]:
        out = []
        for w in service.daemon.supervisor.workers.values():
            status = getattr(w.log, "status", None)
            info = status() if status is not None else {}
            out.append(
                {
                    "worker": w.name,
                    "namespace": w.eff.get("namespace") or "default",
                    "files": _files(w.log),
                    "lines": info.get("lines"),
                    "bytes": info.get("bytes"),
                    "error": info.get("error"),
                }
            )
        return out

    rows = service.bridge.run(collect)
    for row in rows:
        files = []
        for path in row["files"]:
            try:
                st = os.stat(path)
            except OSError:
                continue
            files.append({"path": path, "size": st.st_size, "mtime": st.st_mtime})
        row["files"] = files
        row["size"] = sum(f["size"] for f in files)
    return {"workers": rows}


def volume(call: Call) -> Any:
    """Lines per hour per worker and stream over the last `hours` (the `logvolume` command)."""
    args: Dict[str, Any] = {"hours": call.int_arg("hours", 24, 1, 7 * 24)}
    worker = call.arg("worker") or ""
    if worker and worker not in ("*", "all"):
        args["name"] = worker
    return call.service.bridge.call("logvolume", args)


def get_alerts(call: Call) -> Any:
    return call.service.bridge.call("alerts.list")


def set_alerts(call: Call) -> Any:
    alerts = call.body.get("alerts")
    return call.service.bridge.call("alerts.set", {"alerts": alerts})

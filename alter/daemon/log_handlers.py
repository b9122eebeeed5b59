"""Control-socket commands for reading and managing worker logs (docs/protocol.md, "Log commands").

    register_log_commands(commands, daemon)

    log         replay + follow lines (log_follow.py)           streamed `lines` events
    grep        regex search of current and rotated files        streamed `matches`/`text` events, then a summary
                (`plan: true`: the files and line heads only; the CLI then searches what it can read)
    flush       empty a worker's files and ring buffer
    logvolume   lines per hour per worker (the Log Volume chart)
    alerts.list / alerts.set   the log alert patterns (persisted in the daemon state)
    events      every bus event (worker states, crashes, log.alert, log.error ...) as `event` events

Logs can hold secrets, so everything but `logvolume` (counts only) needs
write rights, like `info`.  Replaying reads files in a helper thread
(log_follow.py); searching runs in a process of its own (grep_worker.py), whose
results the loop relays as they come, so the loop keeps answering meanwhile and
a slow client holds the search back instead of filling the daemon's memory.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

import alter
from alter.daemon.handlers import _arg, json_type
from alter.daemon.log_follow import LIVE_QUEUE, LogFollow, queued_bytes
from alter.errors import ApmError, NotFound, UsageError
from alter.logs import search

log = logging.getLogger("apm.logs")

GREP_MAX = 1_000_000
GREP_DEFAULT_MAX = 1000
MAX_CONTEXT = 100
READ_CHUNK = 1024 * 1024
HISTORY = 500  # recent bus events kept for `events` with `n`
MAX_HOURS = 7 * 24


# ---------------------------------------------------------------------------------------------- grep


def head_samples(wl: Any) -> List[str]:
    """Rendered line heads of a worker (latin-1 text), for the search's colour-code guard (alter/grepcore.py).

    Two times far apart (other digits, month and day names), every stream, a continuation and an
    instance number: what decides which characters can sit next to a colour code in the files.
    """
    head = getattr(wl, "head", None)
    if head is None:
        return []
    out: List[str] = []
    now = time.time()
    for ts in (now, now - 40 * 86400 - 3 * 3600 - 7 * 60 - 11.5):
        for stream, index, cont in (("out", 2, False), ("err", 1, True), ("apm", 0, False), ("out", 1, False)):
            out.append(bytes(head(ts, stream, index, cont, True)).decode("latin-1"))
    return out


class GrepJob:
    """One `grep` request: validated on the loop, searched by a grep_worker process, relayed on the loop.

    The worker writes finished protocol frames (`matches` events); the loop passes them to the client
    untouched and stops reading while the client has LIVE_QUEUE bytes unread (the worker then blocks
    on its full pipe: backpressure without buffering).  Its last line is the summary (the reply).
    """

    def __init__(self, daemon: Any, req: Any) -> None:
        self.loop = daemon.loop
        self.req = req
        sup = daemon.supervisor
        self.pattern: str = _arg(req, "pattern", str)
        ignore_case: bool = _arg(req, "ignore_case", bool, required=False, default=False)
        context: int = _arg(req, "context", int, required=False, default=0)
        if not 0 <= context <= MAX_CONTEXT:
            raise UsageError(f"grep: context must be between 0 and {MAX_CONTEXT} lines, got {context}")
        limit = _arg(req, "max", int, required=False, default=GREP_DEFAULT_MAX)
        if not 0 <= limit <= GREP_MAX:
            raise UsageError(f"grep: max must be between 0 (no limit) and {GREP_MAX}, got {limit}")
        raw: bool = _arg(req, "raw", bool, required=False, default=False)
        color: bool = _arg(req, "color", bool, required=False, default=True)
        search.compile_pattern(self.pattern, ignore_case)  # UsageError naming the bad regex
        name = _arg(req, "name", str, required=False)
        if name is not None:
            if "#" in name and not sup.exists(name):
                raise UsageError(
                    f"grep: {name!r}: grep searches a worker's files (every instance); give the name without #N",
                    hint=f"to search one instance, put it in the pattern: apm grep '{name} .*ERROR'",
                )
            names = [sup.get(name).name]
        else:
            names = sorted(sup.workers)
        fmt = _arg(req, "format", str, required=False, default="matches")
        if fmt not in ("matches", "text"):
            raise UsageError(f"grep: format must be 'matches' or 'text', got {fmt!r}")
        self.plan_only: bool = _arg(req, "plan", bool, required=False, default=False)
        # (worker, files oldest first, rendered line heads)
        files: List[Tuple[str, List[str], List[str]]] = []
        for worker in names:
            wl = sup.worker_log(worker)
            listed = getattr(wl, "files", None)
            files.append((worker, listed() if callable(listed) else [], head_samples(wl)))
        self.job = {
            "id": req.id,
            "pattern": self.pattern,
            "ignore_case": ignore_case,
            "context": context,
            "max": limit or None,
            "raw": raw,
            "color": color,
            "format": fmt,
            "files": files,
        }
        self.proc: Optional[subprocess.Popen] = None
        self.fd = -1
        self.buf = b""
        self.reading = False

    def start(self) -> None:
        if self.plan_only:
            # The caller searches the files itself (the CLI, when it can read them): what and how.
            plan = {k: v for k, v in self.job.items() if k not in ("id", "format")}
            self.req.reply({"plan": plan})
            return
        with tempfile.TemporaryFile() as job:
            job.write(json.dumps(self.job).encode())
            job.seek(0)
            env = dict(os.environ)
            root = os.path.dirname(os.path.dirname(os.path.abspath(alter.__file__ or "")))
            env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            try:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "alter.daemon.grep_worker"],
                    stdin=job,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env=env,
                    close_fds=True,
                )
            except OSError as exc:
                raise ApmError(f"grep: cannot start the search process: {exc.strerror or exc}") from None
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.req.on_close(self._stop)
        self._resume()

    def _resume(self) -> None:
        if self.fd < 0 or self.reading:
            return
        if queued_bytes(self.req) > LIVE_QUEUE:
            self.loop.call_later(0.05, self._resume)  # the client is behind: the worker waits on its pipe
            return
        self.reading = True
        self.loop.add_reader(self.fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._finish(None)
            return
        lines = (self.buf + data).split(b"\n")
        self.buf = lines.pop()
        for line in lines:
            if line.startswith(b'{"summary"'):
                self._finish(json.loads(line)["summary"])
                return
            if line.startswith(b'{"error"'):
                self._finish(None, str(json.loads(line)["error"]))
                return
            if line and not self.req.done:
                self.req.conn.send(line + b"\n")  # a finished `matches` frame of this request
        if queued_bytes(self.req) > LIVE_QUEUE:
            self.loop.remove_reader(self.fd)
            self.reading = False
            self.loop.call_later(0.05, self._resume)

    def _finish(self, summary: Optional[Dict[str, Any]], error: str = "") -> None:
        self._stop()
        if summary is not None:
            self.req.reply(summary)
        else:
            why = error or "the search process ended without a result"
            log.error("grep %r failed: %s", self.pattern, why)
            self.req.fail(ApmError(f"grep failed: {why}", hint="see the daemon log"))

    def _stop(self) -> None:
        if self.fd >= 0:
            if self.reading:
                self.loop.remove_reader(self.fd)
                self.reading = False
            self.fd = -1
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    proc.kill()
                except OSError:
                    pass
            if proc.stdout is not None:
                proc.stdout.close()
            try:
                proc.wait(timeout=0)  # the daemon's SIGCHLD handler may have reaped it already
            except (subprocess.TimeoutExpired, ChildProcessError, OSError):
                pass


# ---------------------------------------------------------------------------------------------- events


def _kind_matches(wanted: Optional[List[str]], kind: str) -> bool:
    if not wanted:
        return True
    return any(k in ("*", kind) or kind.startswith(k if k.endswith(".") else k + ".") for k in wanted)


class EventHistory:
    """The last HISTORY bus events, for `events` clients that connect after the fact."""

    def __init__(self, bus: Any) -> None:
        self.items: Deque[Dict[str, Any]] = deque(maxlen=HISTORY)
        bus.subscribe("*", self._on_event)

    def _on_event(self, kind: str, data: Dict[str, Any]) -> None:
        self.items.append({"kind": kind, "ts": time.time(), "data": dict(data)})

    def recent(self, kinds: Optional[List[str]], n: int) -> List[Dict[str, Any]]:
        picked = [e for e in self.items if _kind_matches(kinds, e["kind"])]
        return picked[-n:] if n else []


# ---------------------------------------------------------------------------------------------- registration


def register_log_commands(commands: Any, daemon: Any) -> None:
    """Register log, grep, flush, logvolume, alerts.list, alerts.set and events."""
    sup = daemon.supervisor
    history = EventHistory(daemon.bus)

    def log_(req: Any) -> None:
        LogFollow(daemon, req).start()

    def grep(req: Any) -> None:
        GrepJob(daemon, req).start()

    def flush(req: Any) -> None:
        name = _arg(req, "name", str)
        names = sorted(sup.workers) if name == "all" and not sup.exists("all") else [sup.get(name).name]
        for worker in names:
            wl = sup.worker_log(worker)
            clear = getattr(wl, "clear", None)
            if callable(clear):
                clear()
        req.reply({"flushed": names})

    def logvolume(req: Any) -> None:
        name = _arg(req, "name", str, required=False)
        hours = _arg(req, "hours", int, required=False, default=24)
        if not 1 <= hours <= MAX_HOURS:
            raise UsageError(f"logvolume: hours must be between 1 and {MAX_HOURS}, got {hours}")
        if name is not None and not sup.exists(name) and name not in daemon.volume.names():
            sup.get(name)  # NotFound with "did you mean"
            raise NotFound(f"no log volume for {name!r}")
        now = time.time()
        since = (int(now // 3600) - hours + 1) * 3600
        rows = daemon.volume.query(name, since=since)
        totals: Dict[str, Dict[str, int]] = {}
        for row in rows:
            t = totals.setdefault(row["worker"], {"out": 0, "err": 0, "apm": 0})
            for stream in t:
                t[stream] += row.get(stream, 0)
        req.reply({"since": since, "until": now, "hours": hours, "rows": rows, "totals": totals})

    def alerts_list(req: Any) -> None:
        req.reply({"alerts": daemon.alerts.alerts()})

    def alerts_set(req: Any) -> None:
        alerts = req.args.get("alerts")
        if not isinstance(alerts, list):
            raise UsageError(
                f"alerts.set: argument 'alerts' must be an array of alert objects, got {json_type(alerts)}",
                hint='e.g. {"alerts": [{"name": "errors", "pattern": "ERROR|FATAL", "cooldown_ms": 60000}]}',
            )
        daemon.alerts.set_alerts(alerts)  # ConfigError naming the bad one; nothing changes then
        daemon.saver.changed()
        req.reply({"alerts": daemon.alerts.alerts()})

    def events(req: Any) -> None:
        follow = _arg(req, "follow", bool, required=False, default=True)
        kinds = req.args.get("kinds")
        if kinds is not None and (not isinstance(kinds, list) or not all(isinstance(k, str) and k for k in kinds)):
            raise UsageError(
                f"events: argument 'kinds' must be an array of event kinds, got {json_type(kinds)}",
                hint='e.g. ["log.alert", "instance."] (a kind, or a prefix)',
            )
        n = _arg(req, "n", int, required=False, default=0 if follow else 100)
        if not 0 <= n <= HISTORY:
            raise UsageError(f"events: n must be between 0 and {HISTORY}, got {n}")
        recent = history.recent(kinds, n)
        if not follow:
            req.reply({"events": recent})
            return
        for item in recent:
            req.event("event", item)

        def on_event(kind: str, data: Dict[str, Any]) -> None:
            if req.done or not _kind_matches(kinds, kind) or queued_bytes(req) > LIVE_QUEUE:
                return
            req.event("event", {"kind": kind, "ts": time.time(), "data": data})

        req.on_close(daemon.bus.subscribe("*", on_event))

    commands.register("log", log_)
    commands.register("grep", grep)
    commands.register("flush", flush)
    commands.register("logvolume", logvolume, write=False)
    commands.register("alerts.list", alerts_list)
    commands.register("alerts.set", alerts_set)
    commands.register("events", events)

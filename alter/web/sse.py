"""The live stream: one Server-Sent Events connection per page, deltas only.

    GET /api/v1/stream?workers=1&stats=1&notify=1&logs=api,web&tail=200

Loop side (`StreamHub`): one bus subscription and one stats sampler for all
pages.  Worker changes are coalesced for 100 ms and sent as the full status
of just the workers that changed; stats once a second, only what changed;
log lines coalesced for 100 ms per worker.  Each message is encoded once and
the same bytes are queued for every page that wants it.

Thread side (`StreamClient` + `serve_stream`): each page has a bounded queue
(`MAX_QUEUED` messages / `MAX_QUEUED_BYTES`) that its own HTTP thread drains
into the socket, so a slow page never blocks the loop.  When a queue
overflows it is emptied and the page gets `resync` followed by a fresh
`snapshot`.  See docs/api.md, "Live stream", for every event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

from alter import __version__
from alter.errors import ApmError
from alter.supervise.status import worker_status
from alter.web.message import json_text

log = logging.getLogger("apm.web")

MAX_QUEUED = 2000
MAX_QUEUED_BYTES = 8 * 1024 * 1024
HEARTBEAT = 15.0
COALESCE = 0.1
MAX_LOG_LINES = 2000  # per worker per flush; older ones are counted in "dropped"
MAX_CLIENTS = 64
RETRY_MS = 3000


def frame(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json_text(data)}\n\n".encode()


class Want:
    """What one page subscribed to."""

    __slots__ = ("workers", "stats", "notify", "logs", "tail")

    def __init__(self, workers: bool = True, stats: bool = True, notify: bool = True, logs: Any = (), tail: int = 0):
        self.workers = workers
        self.stats = stats
        self.notify = notify
        self.logs: Set[str] = set(logs)
        self.tail = tail

    def wants_log(self, name: str) -> bool:
        return "*" in self.logs or name in self.logs


class StreamClient:
    """A page's queue: the loop pushes encoded frames, the page's HTTP thread takes them."""

    def __init__(self, owner: str, want: Want) -> None:
        self.owner = owner  # session key or "token:<id>": whose logout closes this stream
        self.want = want
        self._cond = threading.Condition()
        self._items: Deque[bytes] = deque()
        self._bytes = 0
        self.overflowed = False
        self.closed = False
        self.reason = ""
        self.dropped = 0  # frames lost to overflows (stats for the benchmark)

    def push(self, data: bytes) -> None:
        with self._cond:
            if self.closed or self.overflowed:
                return
            if len(self._items) >= MAX_QUEUED or self._bytes + len(data) > MAX_QUEUED_BYTES:
                self.dropped += len(self._items) + 1
                self._items.clear()
                self._bytes = 0
                self.overflowed = True
            else:
                self._items.append(data)
                self._bytes += len(data)
            self._cond.notify()

    def take(self, timeout: float) -> Tuple[List[bytes], str]:
        """Wait up to `timeout`; (frames, state) with state "", "overflow" or "closed"."""
        with self._cond:
            if not (self._items or self.closed or self.overflowed):
                self._cond.wait(timeout)
            items = list(self._items)
            self._items.clear()
            self._bytes = 0
            if self.closed:
                return items, "closed"
            if self.overflowed:
                return [], "overflow"
            return items, ""

    def reset(self) -> None:
        with self._cond:
            self._items.clear()
            self._bytes = 0
            self.overflowed = False

    def close(self, reason: str) -> None:
        with self._cond:
            if not self.closed:
                self.closed = True
                self.reason = reason
            self._cond.notify()


class StreamHub:
    """Loop side of the live stream (every method runs on the loop thread)."""

    def __init__(self, loop: Any, supervisor: Any, bus: Any, sampler: Any, notifications: Any) -> None:
        self.loop = loop
        self.sup = supervisor
        self.bus = bus
        self.sampler = sampler
        self.notifications = notifications
        self.clients: Set[StreamClient] = set()
        self._dirty: Set[str] = set()
        self._removed: Set[str] = set()
        self._flush_timer: Any = None
        self._log_subs: Dict[str, Tuple[Any, Callable[[], None]]] = {}
        self._pending_logs: Dict[str, List[Dict[str, Any]]] = {}
        self._dropped_logs: Dict[str, int] = {}
        self._log_timer: Any = None
        self._unsub: Optional[Callable[[], None]] = None

    # ------------------------------------------------------------------ lifecycle

    def attach(self) -> None:
        if self._unsub is None:
            self._unsub = self.bus.subscribe("*", self._on_event)

    def detach(self, reason: str = "bye") -> None:
        if self._unsub is not None:
            self._unsub()
            self._unsub = None
        for timer in (self._flush_timer, self._log_timer):
            if timer is not None:
                timer.cancel()
        self._flush_timer = self._log_timer = None
        for client in list(self.clients):
            client.close(reason)
            if client.want.stats:
                self.sampler.watch(-1)
        self.clients.clear()
        self._reconcile_logs()

    def add_client(self, client: StreamClient) -> None:
        if len(self.clients) >= MAX_CLIENTS:
            raise ApmError(f"too many live streams open ({MAX_CLIENTS})", hint="close some dashboard tabs")
        self.clients.add(client)
        client.push(
            frame("hello", {"version": __version__, "server_time": round(time.time(), 3), "heartbeat": HEARTBEAT})
        )
        client.push(self._snapshot(client))
        if client.want.stats:
            self.sampler.watch(+1)
        if client.want.logs:
            self._reconcile_logs()
            self._backlog(client)

    def remove_client(self, client: StreamClient) -> None:
        if client not in self.clients:
            return
        self.clients.discard(client)
        if client.want.stats:
            self.sampler.watch(-1)
        if client.want.logs:
            self._reconcile_logs()

    def resync(self, client: StreamClient) -> None:
        """The page fell behind: start it over from a snapshot."""
        client.reset()
        client.push(frame("resync", {"reason": "the page fell behind; here is a fresh snapshot"}))
        client.push(self._snapshot(client))

    def end_owner(self, owner: str, reason: str = "logout") -> None:
        for client in list(self.clients):
            if client.owner == owner:
                client.close(reason)

    def statuses(self, names: Optional[List[str]] = None) -> List[Dict[str, Any]]:
        """WorkerStatus of every worker (or of `names`), CPU and memory from the sampler's cache."""
        usage = getattr(self.sampler, "usage", None)
        workers = self.sup.workers
        chosen = workers.values() if names is None else [workers[n] for n in names if n in workers]
        return [worker_status(w, usage) for w in chosen]

    def _snapshot(self, client: StreamClient) -> bytes:
        data: Dict[str, Any] = {"server_time": round(time.time(), 3)}
        if client.want.workers:
            data["workers"] = self.statuses()
        if client.want.stats:
            data["stats"] = self.sampler.snapshot()
        return frame("snapshot", data)

    # ------------------------------------------------------------------ bus events

    def _on_event(self, kind: str, data: Dict[str, Any]) -> None:
        if self.notifications is not None:
            self.notifications.on_event(kind, data)
        name = data.get("worker")
        if not isinstance(name, str):
            return
        if kind == "worker.removed":
            self._removed.add(name)
            self._dirty.discard(name)
            self.sampler.removed(name)
            self._reconcile_logs()
        elif kind == "worker.renamed":
            old = str(data.get("old"))
            self._removed.add(old)
            self._dirty.add(name)
            self.sampler.renamed(old, name)
            self._reconcile_logs()
        elif kind.startswith(("worker.", "instance.")):
            self._dirty.add(name)
            if kind == "worker.added":
                self._reconcile_logs()
        else:
            return
        if not any(c.want.workers for c in self.clients):
            self._dirty.clear()
            self._removed.clear()
            return
        if self._flush_timer is None:
            self._flush_timer = self.loop.call_later(COALESCE, self._flush_workers)

    def _flush_workers(self) -> None:
        self._flush_timer = None
        names = self._dirty | self._removed
        self._dirty, self._removed = set(), set()
        ordered = sorted(names)
        statuses = self.statuses(ordered)
        gone = [name for name in ordered if not self.sup.exists(name)]
        if statuses:
            self._broadcast(frame("workers", {"workers": statuses}), lambda c: c.want.workers)
        if gone:
            self._broadcast(frame("removed", {"names": gone}), lambda c: c.want.workers)

    def publish_stats(self, payload: Dict[str, Any]) -> None:
        if self.clients:
            self._broadcast(frame("stats", payload), lambda c: c.want.stats)

    def publish_settings(self, settings: Dict[str, Any]) -> None:
        """Settings changed (any page, or the CLI): every stream gets them, whatever it subscribed to."""
        if self.clients:
            self._broadcast(frame("settings", settings), lambda c: True)

    def publish_notification(self, item: Dict[str, Any]) -> None:
        if self.clients:
            self._broadcast(frame("notify", item), lambda c: c.want.notify)

    def _broadcast(self, data: bytes, wants: Callable[[StreamClient], bool]) -> None:
        for client in self.clients:
            if wants(client):
                client.push(data)

    # ------------------------------------------------------------------ logs

    def _wanted_logs(self) -> Set[str]:
        names: Set[str] = set()
        for client in self.clients:
            if "*" in client.want.logs:
                return set(self.sup.workers)
            names |= client.want.logs
        return {n for n in names if n in self.sup.workers}

    def _reconcile_logs(self) -> None:
        wanted = self._wanted_logs()
        for name in list(self._log_subs):
            worker = self.sup.workers.get(name)
            current = getattr(worker, "log", None) if worker is not None else None
            if name not in wanted or current is not self._log_subs[name][0]:
                self._log_subs.pop(name)[1]()
        for name in wanted:
            if name in self._log_subs:
                continue
            wl = getattr(self.sup.workers[name], "log", None)
            subscribe = getattr(wl, "subscribe", None)
            if subscribe is None:
                continue

            def on_lines(batch: List[Dict[str, Any]], name: str = name) -> None:
                self._on_lines(name, batch)

            self._log_subs[name] = (wl, subscribe(on_lines))

    def _on_lines(self, name: str, batch: List[Dict[str, Any]]) -> None:
        pending = self._pending_logs.setdefault(name, [])
        pending.extend(batch)
        if len(pending) > MAX_LOG_LINES:
            cut = len(pending) - MAX_LOG_LINES
            self._dropped_logs[name] = self._dropped_logs.get(name, 0) + cut
            del pending[:cut]
        if self._log_timer is None:
            self._log_timer = self.loop.call_later(COALESCE, self._flush_logs)

    def _flush_logs(self) -> None:
        self._log_timer = None
        pending, self._pending_logs = self._pending_logs, {}
        dropped, self._dropped_logs = self._dropped_logs, {}
        for name, lines in pending.items():
            data: Dict[str, Any] = {"worker": name, "lines": [_line(x) for x in lines]}
            if dropped.get(name):
                data["dropped"] = dropped[name]
            self._broadcast(frame("log", data), lambda c, n=name: c.want.wants_log(n))  # type: ignore[misc]

    def _backlog(self, client: StreamClient) -> None:
        if client.want.tail <= 0:
            return
        if "*" in client.want.logs:
            self._backlog_all(client)
            return
        for name in sorted(client.want.logs):
            worker = self.sup.workers.get(name)
            tail = getattr(getattr(worker, "log", None), "tail", None)
            if tail is None:
                continue
            lines = tail(client.want.tail)
            client.push(frame("log", {"worker": name, "lines": [_line(x) for x in lines], "backlog": True}))

    def _backlog_all(self, client: StreamClient) -> None:
        """logs=*: the last `tail` lines across every worker, in time order, as runs of one worker's lines
        (one `log` frame per run, every frame queued as ONE item so a long backlog cannot overflow the queue)."""
        sources: Dict[str, Callable[[int], List[Dict[str, Any]]]] = {}
        for name, worker in self.sup.workers.items():
            tail = getattr(getattr(worker, "log", None), "tail", None)
            if tail is not None:
                sources[name] = tail
        merged = merged_tail(sources, client.want.tail)
        frames: List[bytes] = []
        i = 0
        while i < len(merged):
            name = merged[i][0]
            j = i
            while j < len(merged) and merged[j][0] == name:
                j += 1
            lines = [_line(line) for _, line in merged[i:j]]
            frames.append(frame("log", {"worker": name, "lines": lines, "backlog": True}))
            i = j
        if frames:
            client.push(b"".join(frames))


def merged_tail(sources: Dict[str, Callable[[int], List[Dict[str, Any]]]], n: int) -> List[Tuple[str, Dict[str, Any]]]:
    """The newest `n` lines of all `sources` (name -> tail(k), oldest first), merged oldest first by `ts`.

    Bounded work: each source is asked for about n / len(sources) lines first, and only a source whose
    oldest line so far could still be among the newest n is asked again, for twice as many.
    """
    if n <= 0 or not sources:
        return []
    order = {name: i for i, name in enumerate(sorted(sources))}
    want = {name: min(n, max(16, -(-n // len(sources)))) for name in sources}
    got: Dict[str, List[Dict[str, Any]]] = {}
    ask = set(sources)
    while True:
        for name in ask:
            got[name] = sources[name](want[name])
        merged = sorted(
            (
                (_ts(line), order[name], pos, name, line)
                for name, lines in got.items()
                for pos, line in enumerate(lines)
            ),
            key=lambda item: item[:3],
        )
        cut = merged[-n][0] if len(merged) >= n else float("-inf")
        ask = {
            name
            for name, lines in got.items()
            if lines and len(lines) >= want[name] and want[name] < n and _ts(lines[0]) >= cut
        }
        if not ask:
            return [(item[3], item[4]) for item in merged[-n:]]
        for name in ask:
            want[name] = min(n, want[name] * 2)


def _ts(line: Dict[str, Any]) -> float:
    ts = line.get("ts")
    return float(ts) if isinstance(ts, (int, float)) else 0.0


def _line(line: Dict[str, Any]) -> Dict[str, Any]:
    out = {"ts": line.get("ts"), "index": line.get("index"), "stream": line.get("stream"), "text": line.get("text")}
    if line.get("cont"):
        out["cont"] = True
    return out


# ---------------------------------------------------------------------------------------------- thread side


def serve_stream(
    write: Callable[[bytes], None],
    client: StreamClient,
    bridge: Any,
    hub: StreamHub,
    still_ok: Callable[[], Optional[str]],
    heartbeat: float = HEARTBEAT,
) -> None:
    """Drain `client` (already added to the hub) into the socket until it closes, the page goes
    away or `still_ok()` names a reason to stop."""
    try:
        write(f"retry: {RETRY_MS}\n\n".encode())
        while True:
            items, state = client.take(heartbeat)
            reason = still_ok()
            if reason:
                write(b"".join(items) + frame(reason, {"reason": reason}))
                return
            if state == "overflow":
                bridge.run(hub.resync, client)
                continue
            if state == "closed":
                write(b"".join(items) + frame(client.reason or "bye", {"reason": client.reason or "bye"}))
                return
            write(b"".join(items) if items else b": hb\n\n")
    except (OSError, ValueError, ApmError):
        return  # the page went away (or the socket timed out, or the daemon is exiting)
    finally:
        if not bridge.closed:
            try:
                bridge.loop.call_soon_threadsafe(hub.remove_client, client)
            except Exception:
                pass

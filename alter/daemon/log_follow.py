"""The `log` command: replay the last lines of one or more workers, then follow them live.

    {"cmd": "log", "args": {"targets": ["api", "web#2"], "n": 20, "follow": true,
                            "stream": null, "since": null, "color": true}}

1. On the loop: resolve the targets, subscribe to each worker's live lines
   (buffered until the replay is out), open every log file and note its size
   (`log_replay.snapshot`), take the ring buffer's recent lines.
2. In a helper thread: read the files backwards from those sizes, parse the
   lines, add ring lines newer than the files' last line (lines a full disk
   kept out of the files), merge every worker in time order, keep the last n.
3. Back on the loop: send the replay as `lines` events, then the live lines
   buffered meanwhile, then a `following` event; from then on every read
   chunk of a followed worker is one `lines` event.  Without `follow` the
   reply `{"lines": count}` ends the request after the replay.

Each line is a line dict (docs/logs.md) plus `head`: the timestamp, prefix and
marker as the worker writes them.  `color: false` drops every escape sequence
(apm's colours and the child's own).  A client that reads too slowly (more
than LIVE_QUEUE bytes waiting) misses lines: they are counted and announced
with a `skipped` event, the worker is never slowed down.  Workers removed,
renamed or re-created while followed are tracked (`notice` events).
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from alter.daemon.handlers import _arg, json_type
from alter.daemon.log_replay import LineParser, Source, read_set, snapshot
from alter.errors import ApmError, UsageError
from alter.logs.colors import strip_ansi, strip_ansi_text
from alter.logs.ring import RING_LINES

log = logging.getLogger("apm.logs")

DEFAULT_LINES = 20
MAX_LINES = 100_000  # replayed at most (also the default with `since`)
MAX_TARGETS = 100
BATCH_LINES = 1000
BATCH_BYTES = 1024 * 1024
LIVE_QUEUE = 8 * 1024 * 1024  # bytes waiting for a client before live lines are skipped
PENDING_MAX = 50_000  # live lines buffered while the replay is being read

# A replayed line before it becomes a dict: (ts, worker, stream, index, cont, head or None, text)
Row = Tuple[float, str, str, int, bool, Optional[bytes], Any]


def queued_bytes(req: Any) -> int:
    """Bytes of this request's connection not yet taken by the client."""
    return len(getattr(req.conn, "outbuf", b""))


def parse_log_args(req: Any) -> Dict[str, Any]:
    targets = req.args.get("targets")
    if not isinstance(targets, list) or not targets:
        raise UsageError(
            f"log: argument 'targets' must be a non-empty array of worker names, got {json_type(targets)}",
            hint='e.g. {"targets": ["api", "web#2"]}',
        )
    if len(targets) > MAX_TARGETS:
        raise UsageError(f"log: at most {MAX_TARGETS} targets, got {len(targets)}")
    for t in targets:
        if not isinstance(t, str) or not t:
            raise UsageError(f"log: every target must be a worker name (api) or instance (api#2), got {json_type(t)}")
    since = req.args.get("since")
    if since is not None and (
        isinstance(since, bool) or not isinstance(since, (int, float)) or not math.isfinite(since) or since < 0
    ):
        raise UsageError(
            f"log: argument 'since' must be epoch seconds (a number >= 0), got {json_type(since)}",
            hint="e.g. 1795268718.5; the CLI turns --since 10m into that",
        )
    n = _arg(req, "n", int, required=False, default=MAX_LINES if since is not None else DEFAULT_LINES)
    if not 0 <= n <= MAX_LINES:
        raise UsageError(f"log: n must be between 0 and {MAX_LINES}, got {n}", hint="the number of lines to replay")
    stream = req.args.get("stream")
    if stream not in (None, "out", "err"):
        raise UsageError(f'log: stream must be "out", "err" or null, got {json_type(stream)}')
    return {
        "targets": targets,
        "n": n,
        "since": float(since) if since is not None else None,
        "stream": stream,
        "follow": _arg(req, "follow", bool, required=False, default=True),
        "color": _arg(req, "color", bool, required=False, default=True),
    }


class LogFollow:
    """One `log` request, from replay to the end of the connection."""

    def __init__(self, daemon: Any, req: Any) -> None:
        self.daemon = daemon
        self.sup = daemon.supervisor
        self.loop = daemon.loop
        self.req = req
        a = parse_log_args(req)
        self.n: int = a["n"]
        self.since: Optional[float] = a["since"]
        self.stream: Optional[str] = a["stream"]
        self.follow: bool = a["follow"]
        self.color: bool = a["color"]
        # worker name -> wanted instances (1-based), None = all
        self.targets: Dict[str, Optional[Set[int]]] = {}
        for target in a["targets"]:
            worker, index = self.sup.target(target)
            if index is None or (worker.name in self.targets and self.targets[worker.name] is None):
                self.targets[worker.name] = None
            else:
                wanted = self.targets.setdefault(worker.name, set())
                assert wanted is not None
                wanted.add(index + 1)
        self.unsubs: Dict[str, Callable[[], None]] = {}
        self.bus_unsubs: List[Callable[[], None]] = []
        self.pending: Optional[List[Dict[str, Any]]] = []  # live lines waiting for the replay; None once live
        self.skipped = 0
        self.closed = False

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        jobs: List[Tuple[str, LineParser, List[Source], List[Dict[str, Any]], float]] = []
        try:
            for name in self.targets:
                wl = self.sup.worker_log(name)
                if not hasattr(wl, "file_sets"):
                    continue  # a worker whose log could not be opened: nothing to replay
                cfg = getattr(wl, "config", {})
                fmt = cfg.get("log_time_format")
                parser = LineParser(name, cfg.get("prefix"), "" if fmt is None else str(fmt))
                ring = wl.tail(min(self.n, RING_LINES), self.stream) if self.n else []
                jobs.append((name, parser, snapshot(wl), ring, parser.time.resolution))
        except BaseException:
            for job in jobs:
                for source in job[2]:
                    source.close()
            raise
        # Files and ring are frozen above and the subscription starts now, in the same loop
        # callback: no line can fall between the replay and the live lines, none can be in both.
        self.req.on_close(self.close)
        if self.follow:
            for name in self.targets:
                self._subscribe(name)
            bus = self.daemon.bus
            self.bus_unsubs.append(bus.subscribe("worker.removed", self._on_worker_event))
            self.bus_unsubs.append(bus.subscribe("worker.added", self._on_worker_event))
            self.bus_unsubs.append(bus.subscribe("worker.renamed", self._on_worker_event))
        if not self.n:
            for job in jobs:
                for source in job[2]:
                    source.close()
            self._replayed([])
            return
        thread = threading.Thread(target=self._replay_thread, args=(jobs,), name="apm-log-replay", daemon=True)
        thread.start()

    def _want(self, name: str) -> Callable[[str, int], bool]:
        wanted = self.targets.get(name)
        stream = self.stream

        def want(s: str, index: int) -> bool:
            if stream is not None and s != stream:
                return False
            return wanted is None or index == 0 or index in wanted

        return want

    # ------------------------------------------------------------------ helper thread

    def _replay_thread(self, jobs: List[Tuple[str, LineParser, List[Source], List[Dict[str, Any]], float]]) -> None:
        try:
            rows = self._read(jobs)
        except Exception as exc:
            log.exception("log replay failed")
            self.loop.call_soon_threadsafe(self._failed, exc)
            return
        finally:
            for job in jobs:
                for source in job[2]:
                    source.close()
        self.loop.call_soon_threadsafe(self._replayed, rows)

    def _read(self, jobs: List[Tuple[str, LineParser, List[Source], List[Dict[str, Any]], float]]) -> List[Row]:
        lists: List[List[Row]] = []
        cancelled = self._is_closed
        for name, parser, sources, ring, resolution in jobs:
            want = self._want(name)
            covered: Set[str] = set()
            for source in sources:
                got, newest, seen = read_set(source, parser, want, self.n, self.since, cancelled)
                rows: List[Row] = [(ts, name, s, i, c, head, text) for ts, s, i, c, head, text in got]
                # Ring lines newer than the files' last line: what could not be written (disk full).
                cut = None if not seen else (newest or 0.0) + resolution
                extra: List[Row] = [
                    (d["ts"], name, d["stream"], d["index"], bool(d.get("cont")), None, d["text"])
                    for d in ring
                    if d["stream"] in source.streams
                    and (cut is None or d["ts"] > cut)
                    and want(d["stream"], d["index"])
                    and (self.since is None or d["ts"] >= self.since)
                ]
                lists.append(rows + extra if extra else rows)
                covered |= source.streams
            rest: List[Row] = [
                (d["ts"], name, d["stream"], d["index"], bool(d.get("cont")), None, d["text"])
                for d in ring
                if d["stream"] not in covered
                and want(d["stream"], d["index"])
                and (self.since is None or d["ts"] >= self.since)
            ]
            if rest:
                lists.append(rest)
        merged = list(heapq.merge(*lists, key=lambda row: row[0])) if len(lists) > 1 else (lists[0] if lists else [])
        return merged[-self.n :] if self.n else []

    def _is_closed(self) -> bool:
        return self.closed

    # ------------------------------------------------------------------ back on the loop

    def _failed(self, exc: Exception) -> None:
        if self.closed:
            return
        self.req.fail(ApmError(f"reading the logs failed: {type(exc).__name__}: {exc}", hint="see the daemon log"))
        self.close()

    def _replayed(self, rows: List[Row]) -> None:
        if self.closed or self.req.done:
            return
        count = 0
        batch: List[Dict[str, Any]] = []
        size = 0
        for row in rows:
            d = self._row_dict(row)
            batch.append(d)
            size += len(d["text"]) + len(d["head"]) + 80
            if len(batch) >= BATCH_LINES or size >= BATCH_BYTES:
                self.req.event("lines", {"lines": batch})
                count += len(batch)
                batch, size = [], 0
        if batch:
            self.req.event("lines", {"lines": batch})
            count += len(batch)
        if not self.follow:
            self.req.reply({"lines": count})
            self.close()
            return
        pending, self.pending = self.pending or [], None
        for start in range(0, len(pending), BATCH_LINES):
            self._send(pending[start : start + BATCH_LINES])
        self.req.event("following", {"workers": sorted(self.targets)})

    def _row_dict(self, row: Row) -> Dict[str, Any]:
        ts, name, stream, index, cont, head, text = row
        if head is None:
            head = self._head(name, ts, stream, index, cont)
        if isinstance(text, bytes):
            text = (strip_ansi(text) if not self.color else text).decode("utf-8", "replace")
        elif not self.color:
            text = strip_ansi_text(text)
        d: Dict[str, Any] = {
            "ts": ts,
            "worker": name,
            "index": index,
            "stream": stream,
            "text": text,
            "head": (strip_ansi(head) if not self.color else head).decode("utf-8", "replace"),
        }
        if cont:
            d["cont"] = True
        return d

    def _head(self, name: str, ts: float, stream: str, index: int, cont: bool) -> bytes:
        try:
            wl = self.sup.worker_log(name)
        except ApmError:
            return b""
        head = getattr(wl, "head", None)
        return head(ts, stream, index, cont, self.color) if head is not None else b""

    # ------------------------------------------------------------------ live

    def _subscribe(self, name: str) -> None:
        if name in self.unsubs:
            return
        try:
            wl = self.sup.worker_log(name)
        except ApmError:
            return
        if not hasattr(wl, "subscribe"):
            return
        want = self._want(name)
        last: List[Any] = [None, b""]  # (key, head) of the previous line: a chunk's lines share it

        def on_lines(lines: List[Dict[str, Any]]) -> None:
            if self.pending is None and queued_bytes(self.req) > LIVE_QUEUE:
                self.skipped += sum(1 for d in lines if want(d["stream"], d["index"]))  # the client is behind
                return
            out: List[Dict[str, Any]] = []
            for d in lines:
                stream, index = d["stream"], d["index"]
                if not want(stream, index):
                    continue
                cont = bool(d.get("cont"))
                key = (d["ts"], stream, index, cont)
                if key != last[0]:
                    last[0], last[1] = key, wl.head(d["ts"], stream, index, cont, self.color).decode("utf-8", "replace")
                    if not self.color:
                        last[1] = strip_ansi_text(last[1])
                line = {
                    "ts": d["ts"],
                    "worker": d["worker"],
                    "index": index,
                    "stream": stream,
                    "text": d["text"] if self.color else strip_ansi_text(d["text"]),
                    "head": last[1],
                }
                if cont:
                    line["cont"] = True
                out.append(line)
            if not out:
                return
            if self.pending is not None:
                self.pending.extend(out)
                if len(self.pending) > PENDING_MAX:
                    drop = len(self.pending) - PENDING_MAX
                    del self.pending[:drop]
                    self.skipped += drop
                return
            self._send(out)

        self.unsubs[name] = wl.subscribe(on_lines)

    def _send(self, lines: List[Dict[str, Any]]) -> None:
        if self.closed or self.req.done or not lines:
            return
        if queued_bytes(self.req) > LIVE_QUEUE:
            self.skipped += len(lines)
            return
        if self.skipped:
            self.req.event(
                "skipped", {"lines": self.skipped, "message": f"{self.skipped} lines skipped: output too slow"}
            )
            self.skipped = 0
        self.req.event("lines", {"lines": lines})

    def _notice(self, message: str) -> None:
        if not self.closed and not self.req.done:
            self.req.event("notice", {"message": message})

    def _on_worker_event(self, kind: str, data: Dict[str, Any]) -> None:
        name = data.get("worker")
        if not isinstance(name, str):
            return
        if kind == "worker.removed" and name in self.targets:
            unsub = self.unsubs.pop(name, None)
            if unsub is not None:
                unsub()
            self._notice(f"worker {name} was removed; its lines show again if it comes back")
        elif kind == "worker.added" and name in self.targets and name not in self.unsubs:
            self._subscribe(name)
            self._notice(f"worker {name} was added: following it")
        elif kind == "worker.renamed" and data.get("old") in self.targets:
            old = str(data["old"])
            unsub = self.unsubs.pop(old, None)
            if unsub is not None:
                unsub()
            self.targets[name] = self.targets.pop(old)
            self._subscribe(name)
            self._notice(f"worker {old} was renamed to {name}: following it")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for unsub in list(self.unsubs.values()) + self.bus_unsubs:
            try:
                unsub()
            except Exception:
                log.exception("unsubscribing a log follower failed")
        self.unsubs.clear()
        self.bus_unsubs.clear()
        self.pending = None

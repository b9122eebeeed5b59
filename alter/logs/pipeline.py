"""WorkerLog: one worker's log pipeline (what the supervision engine talks to).

    wl = WorkerLog(loop, "api", effective_cfg, daemon_cfg, paths, bus)
    w = wl.open_stream(index=1, stream="out", instances=3)   # per instance and stream
    w.feed(os.read(fd, 65536))                               # any chunking
    w.close()                                                # EOF: flushes a partial last line
    wl.system("started pid 4242", index=1)

Per read chunk, not per line: one wall-clock timestamp for the whole chunk
(its lines arrived together), the line head (timestamp + prefix + marker) is
built once, and the file output is `head + body.replace(b"\\n", b"\\n" + head)`
handed to one `os.writev` (big ones on the file's writer thread, files.py).
The hot path (`_emit_chunk`) copies nothing else: the body is the pending
partial line + `data[:end]` (`LineAssembler.take`), the replace runs over the
read chunk itself and is cut with a memoryview, the line count comes from the
length the replace added, the ring buffer keeps the pieces and joins them only
when read.  Alerts run one compiled MULTILINE regex over the chunk; only live
subscribers and syslog need per-line work, and only when they exist.

Files: stdout goes to `log` (default <log_dir>/<worker>/out.log); stderr goes
to `err_log`, which defaults to the same file as `log` (interleaved in arrival
order, stderr lines marked with a red `!`).  apm's own lines go to the `log`
file.  See docs/logs.md.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from alter.config.options import DAEMON_OPTIONS
from alter.logs import layout
from alter.logs.alerts import LogAlerts
from alter.logs.colors import strip_ansi
from alter.logs.files import LogFile, Policy
from alter.logs.lines import LineAssembler
from alter.logs.ring import RING_LINES, LineRing, block_dicts, join_parts, line_dict
from alter.logs.syslog import SyslogSink
from alter.logs.timefmt import TimeFormat
from alter.logs.volume import LogVolume, WorkerVolume

log = logging.getLogger("apm.logs")

STREAMS = ("out", "err")
Subscriber = Callable[[List[Dict[str, Any]]], None]


def _daemon_default(daemon_config: Dict[str, Any], name: str) -> Any:
    value = daemon_config.get(name)
    return DAEMON_OPTIONS[name].default if value is None else value


class StreamWriter:
    """One instance's stdout or stderr: bytes in, whole lines out to the WorkerLog."""

    __slots__ = ("owner", "index", "stream", "instances", "sink", "tail", "cont_tail", "_asm", "closed")

    def __init__(self, owner: WorkerLog, index: int, stream: str, instances: int) -> None:
        self.owner = owner
        self.index = index
        self.stream = stream
        self.instances = instances
        self.sink: Optional[LogFile] = None
        self.tail = b""
        self.cont_tail = b""
        self._asm = LineAssembler()
        self.closed = False

    def feed(self, data: bytes) -> None:
        """Raw bytes as read from the child's pipe, in any chunking.  Never raises for I/O trouble."""
        if self.closed or not data:
            return
        got = self._asm.take(data)
        if got is not None:
            self.owner._emit_chunk(self, got[0], data, got[1], got[2])
            return
        blocks = self._asm.feed(data)
        if blocks:
            self.owner._emit(self, blocks)

    def close(self) -> None:
        """End of the stream: write the partial last line (a newline is added)."""
        if self.closed:
            return
        self.closed = True
        blocks = self._asm.close()
        if blocks:
            self.owner._emit(self, blocks)
        self.owner._writers.discard(self)


class WorkerLog:
    def __init__(
        self,
        loop: Any,
        worker_name: str,
        config: Dict[str, Any],
        daemon_config: Dict[str, Any],
        paths: Any,
        bus: Any = None,
        *,
        alerts: Optional[LogAlerts] = None,
        volume: Optional[LogVolume] = None,
        wall_clock: Callable[[], float] = time.time,
        ring_lines: int = RING_LINES,
    ) -> None:
        self.loop = loop
        self.name = worker_name
        self.paths = paths
        self.bus = bus
        self.daemon_config = dict(daemon_config or {})
        self.wall = wall_clock
        self.alerts = alerts
        self.volume: WorkerVolume = volume.worker(worker_name) if volume is not None else WorkerVolume()
        self.ring = LineRing(worker_name, ring_lines)
        self.lines = 0
        self.bytes = 0
        self._subs: List[Subscriber] = []
        self._writers: set[StreamWriter] = set()
        self._files: Dict[str, LogFile] = {}
        self._syslog: Optional[SyslogSink] = None
        self._syslog_key: Tuple[Optional[str], str] = (None, "")
        self._instances = 1
        self._tails: Dict[Tuple[str, int, int], Tuple[bytes, bytes]] = {}
        self._heads: Dict[Tuple[str, int, int, bool], Tuple[TimeFormat, bytes, bytes]] = {}  # for readers (head())
        self._closed = False
        self.config: Dict[str, Any] = {}
        self.out_path = ""
        self.err_path = ""
        self._apply(config)

    # ------------------------------------------------------------------ configuration

    def _resolve_path(self, value: Optional[str], default: str) -> str:
        if not value:
            return default
        path = os.path.expanduser(os.path.expandvars(value))
        if not os.path.isabs(path):
            base = self.config.get("path") or os.path.join(self.paths.log_dir, self.name)
            path = os.path.join(os.path.expanduser(os.path.expandvars(str(base))), path)
        return os.path.abspath(path)

    def _policy(self) -> Policy:
        cfg, dcfg = self.config, self.daemon_config
        max_size = cfg.get("log_max_size")
        max_files = cfg.get("log_max_files")
        return Policy(
            max_size=int(_daemon_default(dcfg, "log_max_size") if max_size is None else max_size),
            max_files=int(_daemon_default(dcfg, "log_max_files") if max_files is None else max_files),
            daily=bool(_daemon_default(dcfg, "log_daily")),
            retention_days=int(_daemon_default(dcfg, "log_retention_days")),
        )

    def _apply(self, config: Dict[str, Any]) -> None:
        self.config = dict(config)
        cfg = self.config
        self._strip = bool(cfg.get("strip_ansi"))
        fmt = cfg.get("log_time_format")
        self._time = TimeFormat("" if fmt is None else str(fmt), color=not self._strip)
        self._prefix: Optional[str] = cfg.get("prefix") or None
        self._tails.clear()
        self._heads.clear()
        default_dir = os.path.join(self.paths.log_dir, self.name)
        self.out_path = self._resolve_path(cfg.get("log"), os.path.join(default_dir, "out.log"))
        self.err_path = self._resolve_path(cfg.get("err_log"), self.out_path)
        policy = self._policy()
        wanted = {self.out_path, self.err_path}
        for path in list(self._files):
            if path not in wanted:
                self._files.pop(path).close()
        for path in (self.out_path, self.err_path):
            existing = self._files.get(path)
            if existing is not None:
                existing.set_policy(policy)
                continue
            sink = LogFile(
                self.loop,
                path,
                policy,
                self.wall,
                on_error=self._on_file_error,
                on_resume=self._on_file_resume,
                notice=self._notice,
            )
            self._files[path] = sink
            sink.open()
        for w in self._writers:
            self._bind(w)
        dest = cfg.get("syslog") or None
        tag = str(cfg.get("syslog_tag") or self.name)
        if (dest, tag) != self._syslog_key:
            if self._syslog is not None:
                self._syslog.close()
                self._syslog = None
            if dest:
                try:
                    self._syslog = SyslogSink(self.loop, dest, tag)
                except ValueError as exc:
                    log.warning("worker %s: syslog disabled: %s", self.name, exc)
            self._syslog_key = (dest, tag)

    def reconfigure(self, config: Dict[str, Any]) -> None:
        """Apply new effective options (paths, format, rotation, syslog); the ring is kept."""
        self._apply(config)

    def set_daemon_config(self, daemon_config: Dict[str, Any]) -> None:
        self.daemon_config = dict(daemon_config or {})
        self._apply(self.config)

    def set_alerts(self, alerts: List[Dict[str, Any]]) -> None:
        """Alert definitions for this worker (usually the daemon shares one LogAlerts instead)."""
        if self.alerts is None:
            self.alerts = LogAlerts(clock=self.loop.time)
        self.alerts.set_alerts(alerts)

    def _tails_for(self, stream: str, index: int, instances: int) -> Tuple[bytes, bytes]:
        key = (stream, index, instances)
        got = self._tails.get(key)
        if got is None:
            got = layout.tails(self.name, self._prefix, index, instances, stream, not self._time.empty, not self._strip)
            self._tails[key] = got
        return got

    def _bind(self, w: StreamWriter) -> None:
        w.sink = self._files.get(self.err_path if w.stream == "err" else self.out_path)
        w.tail, w.cont_tail = self._tails_for(w.stream, w.index, w.instances)

    # ------------------------------------------------------------------ streams

    def open_stream(self, index: int, stream: str, instances: int) -> StreamWriter:
        if stream not in STREAMS:
            raise ValueError(f"stream must be 'out' or 'err', got {stream!r}")
        self._instances = max(1, instances)
        w = StreamWriter(self, index, stream, max(1, instances))
        self._bind(w)
        self._writers.add(w)
        return w

    def system(self, message: str, index: Optional[int] = None) -> None:
        """apm's own line(s) about this worker ("started pid 123"), written to the `log` file."""
        if self._closed:
            return
        w = StreamWriter(self, index or 0, "apm", self._instances if index else 1)
        self._bind(w)
        text = message.rstrip("\n").replace("\r\n", "\n")
        self._emit(w, [(text.encode("utf-8", "replace") + b"\n", False)])

    def _notice(self, text: str) -> bytes:
        tail, _ = self._tails_for("apm", 0, 1)
        return self._time.format(self.wall()) + tail + text.encode("utf-8", "replace") + b"\n"

    # ------------------------------------------------------------------ the hot path

    def _emit_chunk(self, w: StreamWriter, lead: bytes, data: bytes, end: int, cont: bool) -> None:
        """The hot path: the whole lines `lead + data[:end]` of one read (no line longer than the limit).

        Nothing is copied but by the one `replace` that inserts the heads; the line count comes from
        the length it added (no separate `count` pass); the ring keeps `lead`/`data` as they are.
        """
        if self._strip and (b"\x1b" in data or b"\x1b" in lead):
            self._emit(w, [(join_parts(lead, data, end), cont)])
            return
        ts = self.wall()
        stream, index = w.stream, w.index
        sink = w.sink
        if sink is not None:
            stamp = self._time.format(ts)
            tail = w.tail
            nl_head = b"\n" + stamp + tail
            rep = data.replace(b"\n", nl_head)
            grow = len(nl_head) - 1
            nlines = (len(rep) - len(data)) // grow
            cut = len(rep) - (len(data) - end) - grow  # just after the last whole line's newline
            head = stamp + (w.cont_tail if cont else tail)
            sink.write((head, lead, memoryview(rep)[:cut]), len(head) + len(lead) + cut, nlines, ts)
        else:
            nlines = data.count(b"\n", 0, end)
        self.lines += nlines
        self.bytes += len(lead) + end
        self.ring.append_parts(ts, stream, index, lead, data, end, nlines, cont)
        self.volume.add(stream, ts, nlines)
        alerts = self.alerts
        scan = alerts is not None and stream != "apm" and alerts.active
        if scan or self._syslog is not None or self._subs:
            block = join_parts(lead, data, end)
            if scan:
                assert alerts is not None
                alerts.scan(self.name, index, stream, ts, block, self._publish)
            if self._syslog is not None:
                try:
                    self._syslog.send_block(ts, stream, index, block)
                except Exception:
                    log.exception("worker %s: syslog forwarding failed", self.name)
            if self._subs:
                self._deliver(block_dicts(self.name, (ts, stream, index, block, nlines, cont)))

    def _emit(self, w: StreamWriter, blocks: List[Tuple[bytes, bool]]) -> None:
        ts = self.wall()
        stream, index = w.stream, w.index
        batch: Optional[List[Dict[str, Any]]] = [] if self._subs else None
        for block, cont in blocks:
            nlines = block.count(b"\n")
            self.lines += nlines
            self.bytes += len(block)
            sink = w.sink
            if sink is not None:
                stamp = self._time.format(ts)
                body = strip_ansi(block) if self._strip else block
                head = stamp + (w.cont_tail if cont else w.tail)
                if nlines == 1:
                    sink.write((head, body), len(head) + len(body), 1, ts)
                else:
                    nl_head = b"\n" + stamp + w.tail
                    rep = body.replace(b"\n", nl_head)
                    view = memoryview(rep)[: len(rep) - len(nl_head) + 1]
                    sink.write((head, view), len(head) + len(view), nlines, ts)
            self.ring.append(ts, stream, index, block, nlines, cont)
            self.volume.add(stream, ts, nlines)
            alerts = self.alerts
            if alerts is not None and stream != "apm" and alerts.active:
                alerts.scan(self.name, index, stream, ts, block, self._publish)
            if self._syslog is not None:
                try:
                    self._syslog.send_block(ts, stream, index, block)
                except Exception:
                    log.exception("worker %s: syslog forwarding failed", self.name)
            if batch is not None:
                batch.extend(block_dicts(self.name, (ts, stream, index, block, nlines, cont)))
        if batch:
            self._deliver(batch)

    def _deliver(self, batch: List[Dict[str, Any]]) -> None:
        for cb in list(self._subs):
            try:
                cb(batch)
            except Exception:
                log.exception("worker %s: log subscriber %r failed", self.name, cb)

    def _publish(self, topic: str, payload: Dict[str, Any]) -> None:
        if self.bus is None:
            return
        try:
            self.bus.publish(topic, payload)
        except Exception:
            log.exception("worker %s: publishing %s failed", self.name, topic)

    # ------------------------------------------------------------------ file failures

    def _on_file_error(self, sink: LogFile) -> None:
        self._publish("log.error", {"worker": self.name, "path": sink.path, "error": sink.error, "errno": sink.errno})

    def _on_file_resume(self, sink: LogFile, text: str) -> None:
        # The notice is already in the file; show it everywhere else too.
        ts = self.wall()
        block = text.encode("utf-8", "replace") + b"\n"
        self.ring.append(ts, "apm", 0, block, 1)
        self.volume.add("apm", ts, 1)
        if self._subs:
            self._deliver([line_dict(self.name, ts, 0, "apm", text)])
        self._publish("log.resumed", {"worker": self.name, "path": sink.path, "message": text})

    # ------------------------------------------------------------------ reading / control

    def tail(self, n: int = 200, stream: Optional[str] = None, index: Optional[int] = None) -> List[Dict[str, Any]]:
        return self.ring.tail(n, stream, index)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Live lines: `callback(list_of_line_dicts)` once per read chunk.  Returns unsubscribe()."""
        self._subs.append(callback)

        def unsubscribe() -> None:
            try:
                self._subs.remove(callback)
            except ValueError:
                pass

        return unsubscribe

    def _sinks(self) -> List[LogFile]:
        out: List[LogFile] = []
        for path in (self.out_path, self.err_path):
            sink = self._files.get(path)
            if sink is not None and sink not in out:
                out.append(sink)
        return out

    def files(self) -> List[str]:
        """Every log file of this worker, oldest first (the `log` file's set, then `err_log`'s if separate)."""
        out: List[str] = []
        for sink in self._sinks():
            out.extend(sink.files())
        return out

    def file_sets(self) -> List[Tuple[str, List[str]]]:
        """(current path, its files oldest first) for the `log` file, then for `err_log` when separate."""
        return [(sink.path, sink.files()) for sink in self._sinks()]

    def head(self, ts: float, stream: str, index: int, cont: bool = False, color: bool = True) -> bytes:
        """The head of a line (timestamp, prefix, marker, one space) as this worker writes it.

        For readers (`apm log`): `color` is the reader's choice, independent of strip_ansi.
        """
        instances = max(self._instances, index) if index else 1
        key = (stream, index, instances, color)
        got = self._heads.get(key)
        if got is None:
            fmt = self.config.get("log_time_format")
            tf = TimeFormat("" if fmt is None else str(fmt), color=color)
            tail, cont_tail = layout.tails(self.name, self._prefix, index, instances, stream, not tf.empty, color)
            got = self._heads[key] = (tf, tail, cont_tail)
        tf, tail, cont_tail = got
        return tf.format(ts) + (cont_tail if cont else tail)

    def settle(self) -> None:
        """Wait until every write handed to a writer thread is in its file (and accounted for)."""
        for sink in self._sinks():
            sink.settle()

    def clear(self) -> None:
        """`apm flush`: truncate the current files, delete rotated/dated ones, empty the ring."""
        for sink in self._sinks():
            sink.clear()
        self.ring.clear()

    def status(self) -> Dict[str, Any]:
        sinks = self._sinks()
        for sink in sinks:  # (a failure of the write in flight shows now, not one write later)
            sink.settle()
        error = next((s.error for s in sinks if s.error), None)
        return {
            "out": self.out_path,
            "err": self.err_path,
            "error": error,
            "lines": self.lines,
            "bytes": self.bytes,
            "written_bytes": sum(s.written_bytes for s in sinks),
            "dropped_lines": sum(s.dropped_lines for s in sinks),
            "dropped_bytes": sum(s.dropped_bytes for s in sinks),
            "rotations": sum(s.rotations for s in sinks),
            "syslog": self._syslog.status() if self._syslog is not None else None,
        }

    def close(self) -> None:
        """Flush every open stream's partial line, close files and the syslog socket."""
        if self._closed:
            return
        for w in list(self._writers):
            w.close()
        self._closed = True
        for sink in self._files.values():
            sink.close()
        self._files.clear()
        if self._syslog is not None:
            self._syslog.close()
            self._syslog = None
        self._subs.clear()

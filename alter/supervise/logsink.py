"""What the engine needs from the log pipeline (alter/logs/pipeline.py implements it).

The engine reads each instance's stdout/stderr pipes itself and hands the
bytes over; it never formats a line.  Conventions (those of the pipeline):

* `index` is the 1-based instance number (`api#1`); the pipeline shows it
  only when `instances > 1`.  The child's APM_INDEX is index - 1.
* `stream` is "out" (stdout) or "err" (stderr).
* `config` is the worker's *effective* config (defaults filled in).

`MemoryLog` is a tiny in-memory implementation for tests and for workers
whose log could not be opened.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

try:  # 3.8+
    from typing import Protocol
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol  # type: ignore


class StreamWriter(Protocol):
    def feed(self, data: bytes) -> None:
        """Bytes as read from the pipe (any chunking; lines may be split)."""

    def close(self) -> None:
        """EOF: flush a partial last line.  Called exactly once."""


class WorkerLog(Protocol):
    def open_stream(self, index: int, stream: str, instances: int) -> StreamWriter:
        """A writer for one attempt's `stream` ("out" | "err") of instance `index` (1-based)."""

    def system(self, message: str, index: Optional[int] = None) -> None:
        """One of apm's own lines ("started pid 123", "exited with code 1 ..."), about instance `index`."""

    def reconfigure(self, config: Dict[str, Any]) -> None:
        """The worker's config changed (log paths, prefix, rotation...)."""

    def close(self) -> None:
        """The worker is gone (removed or renamed away)."""


LogFactory = Callable[[str, Dict[str, Any]], WorkerLog]


class _MemoryWriter:
    def __init__(self, log: MemoryLog, index: int, stream: str) -> None:
        self.log = log
        self.index = index
        self.stream = stream
        self.closed = False

    def feed(self, data: bytes) -> None:
        self.log.data.append((self.index, self.stream, data))

    def close(self) -> None:
        self.closed = True
        self.log.closed_streams.append((self.index, self.stream))


class MemoryLog:
    """Records everything; `text(index, stream)` joins what one instance wrote."""

    def __init__(self, name: str = "", config: Any = None) -> None:
        self.name = name
        self.config = config
        self.data: List[Tuple[int, str, bytes]] = []
        self.messages: List[str] = []
        self.entries: List[Tuple[Optional[int], str]] = []
        self.closed_streams: List[Tuple[int, str]] = []
        self.closed = False
        self.reconfigured = 0

    def open_stream(self, index: int, stream: str, instances: int) -> _MemoryWriter:
        return _MemoryWriter(self, index, stream)

    def system(self, message: str, index: Optional[int] = None) -> None:
        self.messages.append(message)
        self.entries.append((index, message))

    def reconfigure(self, config: Dict[str, Any]) -> None:
        self.config = config
        self.reconfigured += 1

    def close(self) -> None:
        self.closed = True

    def text(self, index: int, stream: str = "out") -> str:
        """What instance `index` (1-based) wrote on `stream`."""
        return b"".join(d for i, s, d in self.data if i == index and s == stream).decode("utf-8", "replace")


class MemoryLogFactory:
    """log_factory for tests: keeps every MemoryLog it made, by worker name (latest wins)."""

    def __init__(self) -> None:
        self.logs: Dict[str, MemoryLog] = {}

    def __call__(self, name: str, config: Dict[str, Any]) -> MemoryLog:
        log = MemoryLog(name, config)
        self.logs[name] = log
        return log

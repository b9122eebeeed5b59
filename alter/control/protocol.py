"""Framing of the control protocol between the CLI and the daemon.

One message is one JSON object, UTF-8, terminated by "\\n" (JSON text never
contains a raw newline).  See docs/protocol.md for the requests and replies.

    request   {"v": 1, "id": 7, "cmd": "list", "args": {...}}
    event     {"id": 7, "event": "<kind>", "data": {...}}      zero or more
    reply     {"id": 7, "ok": true, "result": ...}             exactly one, last
    error     {"id": 7, "ok": false, "error": {"type": ..., "message": ...,
                                               "hint": ..., "exit": N}}
"""

from __future__ import annotations

import json

from alter.errors import ApmError, ProtocolError

TYPE_CHECKING = False  # imported by the CLI: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional

VERSION = 1
MAX_MESSAGE = 16 * 1024 * 1024  # a single message may not exceed 16 MiB


def encode(message: Dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def request(msg_id: int, cmd: str, args: Optional[Dict[str, Any]] = None) -> bytes:
    return encode({"v": VERSION, "id": msg_id, "cmd": cmd, "args": args or {}})


def reply(msg_id: Any, result: Any = None) -> bytes:
    return encode({"id": msg_id, "ok": True, "result": result})


def error(msg_id: Any, err: ApmError) -> bytes:
    return encode({"id": msg_id, "ok": False, "error": err.to_dict()})


def event(msg_id: Any, kind: str, data: Any = None) -> bytes:
    return encode({"id": msg_id, "event": kind, "data": data})


class Decoder:
    """Incremental splitter: feed() bytes, get whole decoded messages back.

    A message over MAX_MESSAGE, invalid UTF-8/JSON, or JSON that is not an
    object raises ProtocolError; the connection should then be answered with
    the error and closed.
    """

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._buf = bytearray()
        self._max = max_message

    def feed(self, data: bytes) -> List[Dict[str, Any]]:
        self._buf += data
        out: List[Dict[str, Any]] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > self._max:
                    self._buf.clear()
                    raise ProtocolError(f"message larger than {self._max} bytes", hint="send smaller requests")
                return out
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if not line.strip():
                continue
            if len(line) > self._max:
                raise ProtocolError(f"message larger than {self._max} bytes", hint="send smaller requests")
            out.append(parse(line))

    @property
    def pending(self) -> int:
        return len(self._buf)


def parse(line: bytes) -> Dict[str, Any]:
    try:
        msg = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"malformed message: {exc}", hint="each message is one JSON object per line") from None
    if not isinstance(msg, dict):
        raise ProtocolError(f"malformed message: expected a JSON object, got {type(msg).__name__}")
    return msg


def iter_lines(chunks: Iterator[bytes]) -> Iterator[Dict[str, Any]]:
    decoder = Decoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)

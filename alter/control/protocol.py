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

from alter.errors import ApmError, ProtocolError

TYPE_CHECKING = False  # imported by the CLI: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional

VERSION = 1
MAX_MESSAGE = 16 * 1024 * 1024  # a single message may not exceed 16 MiB


# The CLI imports this module for every command, and `import json` costs it ~5 ms (json.decoder and
# json.encoder import `re`, which imports `enum`).  json.dumps/json.loads run the C accelerators of
# `_json` anyway; calling them directly gives byte-identical output without the Python wrappers.  Anything
# unusual (no `_json`, invalid input, unserialisable values) goes through the `json` module itself, so
# results and error messages are exactly json's.
def _not_serializable(obj: Any) -> Any:
    raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


class _ScanContext:
    """The attributes `_json.make_scanner` reads from a json.JSONDecoder (its defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


_c_make_encoder: Any = None  # _json.make_encoder, once it passed the signature check below
_c_encode_str: Any = None
_scan: Any = None  # a _json scanner with json.loads' defaults
try:
    import _json

    _json.make_encoder({}, _not_serializable, _json.encode_basestring, None, ":", ",", False, False, True)
    _c_make_encoder, _c_encode_str = _json.make_encoder, _json.encode_basestring
    _context: Any = _ScanContext()
    _scan = _json.make_scanner(_context)
except (ImportError, TypeError):  # pragma: no cover - every CPython 3.9+ has _json
    pass


def _dumps(message: Any) -> str:
    """json.dumps(message, separators=(",", ":"), ensure_ascii=False)."""
    if _c_make_encoder is not None and isinstance(message, dict):
        encoder = _c_make_encoder({}, _not_serializable, _c_encode_str, None, ":", ",", False, False, True)
        return "".join(encoder(message, 0))
    import json

    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _loads(text: str) -> Any:
    """json.loads(text)."""
    if _scan is not None:
        ws = " \t\n\r"
        try:
            obj, end = _scan(text, len(text) - len(text.lstrip(ws)))
            if not text[end:].strip(ws):
                return obj
        except Exception:  # json.loads below raises json's own error for it
            pass
    import json

    return json.loads(text)


def encode(message: Dict[str, Any]) -> bytes:
    return _dumps(message).encode("utf-8") + b"\n"


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
        msg = _loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"malformed message: {exc}", hint="each message is one JSON object per line") from None
    if not isinstance(msg, dict):
        raise ProtocolError(f"malformed message: expected a JSON object, got {type(msg).__name__}")
    return msg


def iter_lines(chunks: Iterator[bytes]) -> Iterator[Dict[str, Any]]:
    decoder = Decoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)

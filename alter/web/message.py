"""Requests and responses as the API handlers see them (no sockets here).

`Call` is one API request: method, path, route params, query, headers, the
client address, the authenticated principal and the parsed JSON body.  A
handler returns a JSON-able value (200), a `Response`, or a `Streamed` (for
the live stream and downloads, which write to the socket themselves).

JSON goes out with `<`, `>` and `&` escaped (`\\u003c` ...): the same value for
any JSON parser, and inert even if something ever served it as HTML.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from alter.errors import UsageError
from alter.web.errors import PayloadTooLarge, UnsupportedMediaType

MAX_BODY = 1024 * 1024
JSON_TYPE = "application/json; charset=utf-8"

_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}


def json_text(value: Any) -> str:
    """Compact JSON with HTML-significant characters escaped."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).translate(_ESCAPES)


def json_bytes(value: Any) -> bytes:
    return json_text(value).encode("utf-8")


def _position(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line} column {col}"


def parse_json_body(raw: bytes, content_type: str) -> Dict[str, Any]:
    """The request body as a JSON object; `{}` when empty.  UsageError (400/415) otherwise."""
    if not raw.strip():
        return {}
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise UnsupportedMediaType(
            f"request bodies must be JSON, got Content-Type {content_type or '(none)'!r}",
            hint="send the header Content-Type: application/json",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"request body is not valid UTF-8 (byte {exc.start})", hint="send UTF-8 JSON") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"request body is not valid JSON: {exc.msg} at {_position(text, exc.pos)}",
            hint='send one JSON object, e.g. {"name": "api"}',
        ) from None
    except ValueError as exc:
        raise UsageError(f"request body is not valid JSON: {exc}", hint="NaN and Infinity are not JSON") from None
    except RecursionError:
        raise UsageError("request body nests too deeply", hint="send a flatter JSON object") from None
    if not isinstance(value, dict):
        raise UsageError(
            f"request body must be a JSON object, got {type(value).__name__}",
            hint='wrap the values in an object, e.g. {"config": {...}}',
        )
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def check_length(length: Optional[str]) -> int:
    if length is None or length == "":
        return 0
    try:
        n = int(length)
    except ValueError:
        raise UsageError(f"bad Content-Length {length!r}") from None
    if n < 0:
        raise UsageError(f"bad Content-Length {length!r}")
    if n > MAX_BODY:
        raise PayloadTooLarge(f"request body of {n} bytes is too large (limit {MAX_BODY})", hint="send less data")
    return n


class Response:
    """A complete response (status, body, extra headers)."""

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        content_type: str = JSON_TYPE,
        headers: Optional[List[Tuple[str, str]]] = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers: List[Tuple[str, str]] = list(headers or [])

    @classmethod
    def json(cls, value: Any, status: int = 200, headers: Optional[List[Tuple[str, str]]] = None) -> Response:
        return cls(status, json_bytes(value), JSON_TYPE, headers)


class Streamed:
    """A response the handler thread writes itself: `run(writer)` gets the request handler."""

    def __init__(self, run: Callable[[Any], None]) -> None:
        self.run = run


class Principal:
    """Who is calling: a browser session or a bearer token."""

    __slots__ = ("kind", "session", "token_id", "name")

    def __init__(self, kind: str, session: Any = None, token_id: str = "", name: str = "") -> None:
        self.kind = kind  # "session" | "token"
        self.session = session
        self.token_id = token_id
        self.name = name


class Call:
    """One API request, as the route handlers see it."""

    def __init__(
        self,
        service: Any,
        method: str,
        path: str,
        params: Dict[str, str],
        query: Mapping[str, List[str]],
        headers: Mapping[str, str],
        client: str,
        body_reader: Callable[[], Dict[str, Any]],
    ) -> None:
        self.service = service
        self.method = method
        self.path = path
        self.params = params
        self.query = query
        self.headers = headers
        self.client = client
        self._body_reader = body_reader
        self._body: Optional[Dict[str, Any]] = None
        self.principal: Optional[Principal] = None
        self.set_cookies: List[str] = []

    # ------------------------------------------------------------------ body

    @property
    def body(self) -> Dict[str, Any]:
        if self._body is None:
            self._body = self._body_reader()
        return self._body

    def field(self, key: str, kind: type, required: bool = True, default: Any = None) -> Any:
        """One body field, type-checked (bool is not an int here)."""
        value = self.body.get(key)
        if value is None:
            if required:
                raise UsageError(f"{self.method} {self.path}: field {key!r} is required", hint="see docs/api.md")
            return default
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is str:
            ok = ok and value != ""
        if not ok:
            want = {str: "a non-empty string", bool: "true or false", int: "a whole number", dict: "an object"}
            raise UsageError(
                f"{self.method} {self.path}: field {key!r} must be {want.get(kind, kind.__name__)}",
                hint="see docs/api.md",
            )
        return value

    # ------------------------------------------------------------------ query

    def arg(self, key: str, default: Optional[str] = None) -> Optional[str]:
        values = self.query.get(key)
        return values[-1] if values else default

    def int_arg(self, key: str, default: int, minimum: int, maximum: int) -> int:
        raw = self.arg(key)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise UsageError(f"query parameter {key!r} must be a whole number, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise UsageError(f"query parameter {key!r} must be between {minimum} and {maximum}, got {value}")
        return value

    def bool_arg(self, key: str, default: bool = False) -> bool:
        raw = self.arg(key)
        if raw is None or raw == "":
            return default
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"query parameter {key!r} must be true or false, got {raw!r}")

    @property
    def session(self) -> Any:
        return self.principal.session if self.principal is not None else None

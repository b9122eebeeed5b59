"""Error classes shared by the CLI, the daemon and the HTTP API.

Every error carries the exit code the CLI uses and the HTTP status the API
answers with.  Messages name the subject, the value and what to do next;
`hint` holds the "what to do next" part when it reads better on its own line.
"""

from __future__ import annotations

TYPE_CHECKING = False  # imported by the CLI: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import Any, Optional


class ApmError(Exception):
    """Base class: a failure we can explain to the user."""

    exit_code = 1
    http_status = 500
    kind = "error"

    detail: Optional[dict[str, Any]] = None  # structured extra data (e.g. StartFailed's startup report)

    def __init__(self, message: str, hint: str = "", detail: Optional[dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if detail is not None:
            self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        """Wire form, used by the control protocol and the HTTP API."""
        d: dict[str, Any] = {
            "type": type(self).__name__,
            "kind": self.kind,
            "message": self.message,
            "hint": self.hint,
            "exit": self.exit_code,
        }
        if self.detail is not None:
            d["detail"] = self.detail
        return d

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(ApmError):
    """Bad command line / bad request arguments."""

    exit_code = 2
    http_status = 400
    kind = "usage"


class ConfigError(ApmError):
    """A config value or file is invalid.  `where` is "file:line:col" when known."""

    exit_code = 2
    http_status = 400
    kind = "config"

    def __init__(self, message: str, hint: str = "", where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message, hint)
        self.where = where

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["where"] = self.where
        return d


class NotFound(ApmError):
    """A named thing (worker, instance, token...) does not exist."""

    exit_code = 3
    http_status = 404
    kind = "not_found"


class Conflict(ApmError):
    """The request clashes with current state (name taken, already running...)."""

    exit_code = 4
    http_status = 409
    kind = "conflict"


class PermissionDenied(ApmError):
    """The caller may not do this (SO_PEERCRED / session checks)."""

    exit_code = 5
    http_status = 403
    kind = "permission"


class DaemonUnavailable(ApmError):
    """The CLI could not reach (or start) the daemon."""

    exit_code = 6
    http_status = 503
    kind = "unavailable"


class StartFailed(ApmError):
    """A worker died during its startup grace window on its first attempt."""

    exit_code = 7
    http_status = 500
    kind = "start_failed"


class ProtocolError(ApmError):
    """A malformed message on the control socket."""

    exit_code = 8
    http_status = 400
    kind = "protocol"


ERROR_TYPES: dict[str, type[ApmError]] = {
    cls.__name__: cls
    for cls in (
        ApmError,
        UsageError,
        ConfigError,
        NotFound,
        Conflict,
        PermissionDenied,
        DaemonUnavailable,
        StartFailed,
        ProtocolError,
    )
}


def error_from_dict(data: dict[str, Any]) -> ApmError:
    """Rebuild an error received over the wire (unknown types become ApmError)."""
    cls = ERROR_TYPES.get(str(data.get("type")), ApmError)
    err = cls.__new__(cls)
    ApmError.__init__(err, str(data.get("message", "unknown error")), str(data.get("hint", "")))
    if isinstance(err, ConfigError):
        err.where = str(data.get("where", ""))
    if isinstance(data.get("detail"), dict):
        err.detail = data["detail"]
    exit_code = data.get("exit")
    if isinstance(exit_code, int):
        err.exit_code = exit_code
    return err

"""HTTP-only error classes (the shared ones live in alter.errors).

Each carries its HTTP status; the API answers `{"error": err.to_dict()}`.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from alter.errors import ApmError, PermissionDenied, UsageError


class Unauthorized(ApmError):
    """No valid session cookie or bearer token."""

    exit_code = 5
    http_status = 401
    kind = "unauthorized"


class Locked(ApmError):
    """The session is locked (inactivity or the lock button): only unlock/logout/status work."""

    exit_code = 5
    http_status = 423
    kind = "locked"


class TooManyRequests(ApmError):
    """Too many failed login/PIN attempts from this client: wait `retry_after` seconds."""

    exit_code = 5
    http_status = 429
    kind = "rate_limited"

    def __init__(self, message: str, retry_after: float, hint: str = "", locked_out: bool = False) -> None:
        wait = max(1, int(retry_after + 0.999))
        super().__init__(message, hint=hint, detail={"retry_after": wait, "locked_out": locked_out})
        self.retry_after = wait


class CsrfRejected(PermissionDenied):
    """A mutating request without the session's CSRF header, or from a foreign origin."""

    kind = "csrf"


class MethodNotAllowed(ApmError):
    exit_code = 2
    http_status = 405
    kind = "method"

    def __init__(self, message: str, allowed: str, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.allowed = allowed


class PayloadTooLarge(UsageError):
    http_status = 413
    kind = "too_large"


class UnsupportedMediaType(UsageError):
    http_status = 415
    kind = "media_type"


class GatewayTimeout(ApmError):
    """The daemon's loop did not answer in time."""

    exit_code = 6
    http_status = 504
    kind = "timeout"


class ServiceUnavailable(ApmError):
    exit_code = 6
    http_status = 503
    kind = "unavailable"


def error_body(err: ApmError) -> Dict[str, Any]:
    return {"error": err.to_dict()}


def retry_after(err: ApmError) -> Optional[int]:
    return err.retry_after if isinstance(err, TooManyRequests) else None

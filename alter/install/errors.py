"""Installer errors: each names the thing, the value and what to do next.

Exit codes (documented in docs/install.md, shared with install.sh):
  0 done (also: unknown init system -> installed without a service, with a warning)
  1 a step failed (the message says which command/path)
  2 usage error (bad flag, bad APM_INIT value)
  5 not root
 10 no Python >= 3.9
 11 a target directory is on a read-only filesystem
 12 no exec-capable directory for the extracted libraries (noexec mount)
 13 download or verification of the apm file failed (install.sh)
 14 not run from a built zipapp (source checkout without dist/apm)
"""

from __future__ import annotations

from alter.errors import ApmError, PermissionDenied, UsageError

__all__ = ["InstallError", "NotRoot", "UsageError"]


class InstallError(ApmError):
    """An install/uninstall step failed; `exit_code` says which kind."""

    FAILED = 1
    NO_PYTHON = 10
    READ_ONLY = 11
    NOEXEC = 12
    DOWNLOAD = 13
    NOT_BUILT = 14

    kind = "install"

    def __init__(self, message: str, hint: str = "", exit_code: int = 1) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code


class NotRoot(PermissionDenied):
    """apm install/uninstall run by a non-root user (exit 5)."""

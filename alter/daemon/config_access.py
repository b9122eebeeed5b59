"""Who may make the daemon read or write a config file, and reading one (apm.conf or ecosystem JSON).

The daemon may run as root; a caller may not.  Before the daemon reads a
config file (and everything it includes) or writes one for a caller, it checks
that the caller could do so themselves: mode bits against the caller's uid and
groups, with search (x) rights on every ancestor directory, for the path and
for its resolved target.  `Caller.trusted` (root, the daemon's own uid) skips
the checks.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from typing import Any, Optional

from alter.config.loader import LoadResult, load_file
from alter.errors import ConfigError, PermissionDenied

JS_EXTENSIONS = (".js", ".cjs", ".mjs")
R_OK, W_OK, X_OK = 4, 2, 1


# ---------------------------------------------------------------------------------------------- callers


@dataclass(frozen=True)
class Caller:
    """Who asked for a file to be read or written (a CLI peer, or the recorded owner of a loaded file)."""

    uid: int
    gid: int
    groups: tuple
    username: str

    @classmethod
    def from_peer(cls, peer: Any) -> Caller:
        try:
            from alter.daemon.server import peer_groups

            extra = peer_groups(peer.pid)
        except Exception:
            extra = []
        return cls(peer.uid, peer.gid, tuple({peer.gid, *extra}), peer.username)

    @classmethod
    def from_uid(cls, uid: int) -> Caller:
        try:
            pw = pwd.getpwuid(uid)
        except KeyError:
            return cls(uid, -1, (), str(uid))
        try:
            groups = tuple(os.getgrouplist(pw.pw_name, pw.pw_gid))
        except OSError:
            groups = (pw.pw_gid,)
        return cls(uid, pw.pw_gid, groups, pw.pw_name)

    @property
    def trusted(self) -> bool:
        """Root and the daemon's own user act with the daemon's rights."""
        return self.uid in (0, os.geteuid())


DAEMON = Caller(os.geteuid(), os.getegid(), (), "daemon")


def _mode_allows(st: os.stat_result, caller: Caller, want: int) -> bool:
    """Every bit of `want` (R_OK | W_OK | X_OK) granted by the class the caller falls in."""
    if st.st_uid == caller.uid:
        shift = 6
    elif st.st_gid == caller.gid or st.st_gid in caller.groups:
        shift = 3
    else:
        shift = 0
    return (st.st_mode >> shift) & want == want


def may_access(path: str, caller: Caller, want: int = R_OK) -> bool:
    """Could `caller` open `path` for `want` (R_OK/W_OK)?  Every ancestor needs search (x) rights.

    A path that does not exist is allowed when its ancestors are searchable
    (the reader reports "no such file" itself).  Symlinks: the link's and the
    target's chains are both checked.
    """
    if caller.trusted:
        return True
    for variant in {os.path.abspath(path), os.path.realpath(path)}:
        parts = variant.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i]) or "/"
            try:
                st = os.stat(folder)
            except OSError:
                break  # missing: the open fails on its own
            if not _mode_allows(st, caller, X_OK):
                return False
        else:
            try:
                st = os.stat(variant)
            except OSError:
                continue
            if not _mode_allows(st, caller, want):
                return False
    return True


def may_write(path: str, caller: Caller) -> bool:
    """Could `caller` create or replace `path` (a write to its directory, and to the file if it exists)?"""
    if caller.trusted:
        return True
    folder = os.path.dirname(os.path.abspath(path))
    if not may_access(folder, caller, W_OK | X_OK):
        return False
    return not os.path.exists(path) or may_access(path, caller, W_OK)


# ---------------------------------------------------------------------------------------------- reading


def is_json(path: str) -> bool:
    if path.lower().endswith(".json"):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(512).lstrip()
    except OSError:
        return False
    return head.startswith((b"{", b"["))


def read_config(path: str, caller: Optional[Caller] = None) -> LoadResult:
    """Load an apm.conf (with includes) or an ecosystem JSON file, as `caller` may.

    PermissionDenied when the caller may not read the file or anything it
    includes (nothing read on their behalf leaks into the error).
    """
    caller = caller or DAEMON
    path = os.path.abspath(path)
    if not may_access(path, caller):
        raise PermissionDenied(
            f"user {caller.username} may not read {path}",
            hint="the daemon reads config files only when you could read them yourself",
        )
    if path.lower().endswith(JS_EXTENSIONS):
        raise ConfigError(
            f"{path}: JavaScript ecosystem files are not loaded directly",
            hint=f"convert it once: apm convert {path} {os.path.splitext(path)[0]}.conf, then load that file",
        )
    if is_json(path):
        from alter.config.ecosystem import load_json

        result = load_json(path)
    else:
        result = load_file(path)
    for item in [*result.files, *result.dirs]:
        if not may_access(item, caller):
            raise PermissionDenied(
                f"{path} includes {item}, which user {caller.username} may not read",
                hint="include only files you can read",
            )
    return result


def config_error(result: LoadResult) -> ConfigError:
    """One ConfigError listing every error of `result` (detail: each error and the warnings)."""
    try:
        result.raise_if_errors()
    except ConfigError as exc:
        err = exc
    else:  # pragma: no cover - only called with errors
        err = ConfigError("config has errors")
    err.detail = {
        "errors": [{"where": e.where, "message": e.message, "hint": e.hint} for e in result.errors],
        "warnings": list(result.warnings),
    }
    return err

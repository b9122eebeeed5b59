"""Users, groups and executable lookup for spawning children as another user."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from typing import Optional, Tuple

from alter.errors import NotFound, StartFailed
from alter.supervise.ops import UserInfo


def _info(entry: pwd.struct_passwd) -> UserInfo:
    try:
        groups: Tuple[int, ...] = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
    except OSError:
        groups = (entry.pw_gid,)
    return UserInfo(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir or "/", entry.pw_shell or "/bin/sh")


def lookup_user(name: str) -> UserInfo:
    """A user by name (or numeric uid) with its supplementary groups (os.getgrouplist)."""
    try:
        return _info(pwd.getpwnam(name))
    except KeyError:
        pass
    if name.isdigit():
        try:
            return _info(pwd.getpwuid(int(name)))
        except KeyError:
            pass
    raise NotFound(f"no user named {name!r} on this system", hint="create it (useradd) or fix the worker's `user`")


def current_user() -> UserInfo:
    uid = os.geteuid()
    try:
        return _info(pwd.getpwuid(uid))
    except KeyError:
        gid = os.getegid()
        return UserInfo(str(uid), uid, gid, tuple(os.getgroups()), os.environ.get("HOME", "/"), "/bin/sh")


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def can_execute(path: str, user: UserInfo) -> bool:
    """Would `user` be allowed to execute this regular file (mode bits, like the kernel)?"""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    if user.uid == 0:
        return bool(st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
    if st.st_uid == user.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == user.gid or st.st_gid in user.groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _has_acl(path: str) -> bool:
    try:
        return "system.posix_acl_access" in os.listxattr(path)
    except OSError:
        return False


def enter_problem(path: str, user: UserInfo) -> Optional[str]:
    """Why `user` could not enter directory `path` (mode bits of each component), or None.

    The daemon runs as root, so the child's chdir happens before it drops to `user`;
    this check (and a second chdir after the drop, in the child) keeps a worker from
    starting in a directory its user may not reach.  Directories carrying an ACL are
    left to the kernel's check in the child (mode bits alone would misjudge them).
    """
    if user.uid == 0:
        return None
    current = "/"
    for part in [p for p in path.split("/") if p]:
        try:
            st = os.stat(current)
        except OSError as exc:
            return f"{current}: {exc.strerror}"
        if st.st_uid == user.uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid == user.gid or st.st_gid in user.groups:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed and not _has_acl(current):
            owner = f"{_user_name(st.st_uid)}:{group_name(st.st_gid)}"
            return f"{current} is {stat.filemode(st.st_mode)} {owner}"
        current = os.path.join(current, part)
    return None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def resolve_exec(exec_: str, user: UserInfo, cwd: str, search_path: str) -> str:
    """The absolute executable for `exec_`: a path (relative to cwd) or a name looked up in search_path."""
    if "/" in exec_:
        path = exec_ if os.path.isabs(exec_) else os.path.normpath(os.path.join(cwd, exec_))
        if not os.path.exists(path):
            raise StartFailed(
                f"executable {exec_!r} does not exist" + (f" ({path})" if path != exec_ else ""),
                hint="fix `exec`: give an existing program (relative paths start in `path`)",
            )
        if not can_execute(path, user):
            what = "is not a regular file" if not os.path.isfile(path) else f"is not executable by {user.name}"
            raise StartFailed(
                f"executable {exec_!r} {what}",
                hint=f"chmod +x {path}, or run it through its interpreter (exec python3, params {exec_})",
            )
        return path
    found: Optional[str] = None
    for folder in search_path.split(":"):
        if not folder:
            continue
        candidate = os.path.join(folder, exec_)
        if can_execute(candidate, user):
            found = candidate
            break
    if found is None:
        raise StartFailed(
            f"executable {exec_!r} not found in the PATH of user {user.name} ({search_path})",
            hint=f"install {exec_}, give its full path in `exec`, or add its folder to PATH with --env PATH=...",
        )
    return found

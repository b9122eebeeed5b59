"""prctl(2) through ctypes: parent-death signal and child subreaper.

Resolve the function in the parent (`prctl_function()`) BEFORE forking: a
child between fork and exec must not load libraries.  PR_SET_PDEATHSIG fires
when the *thread* that forked the child exits, so spawn only from the loop
thread; and it is cleared when credentials change, so set it after setuid.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from typing import Callable

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

PrctlFn = Callable[[int, int], int]


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def prctl_function() -> PrctlFn:
    """A `prctl(option, arg2)` callable, ready to use in a forked child."""
    fn = _libc()["prctl"]  # a fresh function object: its argtypes are ours alone
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    fn.restype = ctypes.c_int

    def call(option: int, arg: int) -> int:
        return int(fn(option, arg, 0, 0, 0))

    return call


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({what}): {os.strerror(err)}")


def set_pdeathsig(sig: int) -> None:
    _check(prctl_function()(PR_SET_PDEATHSIG, sig), "PR_SET_PDEATHSIG")


def become_subreaper() -> bool:
    """Make orphaned descendants reparent to this process (the daemon calls this at startup)."""
    try:
        _check(prctl_function()(PR_SET_CHILD_SUBREAPER, 1), "PR_SET_CHILD_SUBREAPER")
    except (OSError, AttributeError):
        return False
    return True


def clear_subreaper() -> None:
    prctl_function()(PR_SET_CHILD_SUBREAPER, 0)


def is_subreaper() -> bool:
    value = ctypes.c_int(0)
    fn = _libc()["prctl"]
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    result = fn(PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0)
    return result == 0 and value.value != 0

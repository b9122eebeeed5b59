"""grow_pipe: the capture pipes' F_SETPIPE_SZ, with a silent fallback when the kernel refuses."""

from __future__ import annotations

import fcntl
import os

from alter.linux.spawn import F_GETPIPE_SZ, grow_pipe


def test_grow_pipe_enlarges_and_reports_the_size() -> None:
    r, w = os.pipe()
    try:
        assert grow_pipe(r, 256 << 10) == 256 << 10 == fcntl.fcntl(w, F_GETPIPE_SZ)
    finally:
        os.close(r)
        os.close(w)


def test_grow_pipe_refused_keeps_the_current_size() -> None:
    with open("/proc/sys/fs/pipe-max-size") as f:
        limit = int(f.read())
    r, w = os.pipe()
    try:
        before = fcntl.fcntl(r, F_GETPIPE_SZ)
        if os.geteuid() != 0:  # root may go above pipe-max-size; everyone else gets EPERM
            assert grow_pipe(r, limit * 4) == before
        assert grow_pipe(r, -1) == before  # EINVAL: nothing changes, nothing raised
    finally:
        os.close(r)
        os.close(w)


def test_grow_pipe_on_a_closed_or_non_pipe_fd_returns_0() -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    assert grow_pipe(r, 1 << 20) == 0  # EBADF
    with open("/dev/null", "rb") as f:
        assert grow_pipe(f.fileno(), 1 << 20) == 0  # not a pipe

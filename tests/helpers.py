"""Small helpers shared by unit and integration tests."""

from __future__ import annotations

import time
from typing import Callable, Optional, TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], Optional[T]], timeout: float = 10.0, interval: float = 0.02, what: str = "condition"
) -> T:
    """Poll `predicate` until it returns a truthy value; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # keep polling; report the last error on timeout
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else "")
    )


def mount_tmpfs(parent: str, size: str):  # -> contextmanager yielding the mount point
    """A tiny tmpfs for disk-full tests (tests/run.sh runs as root; failing to mount is a broken setup)."""
    import contextlib
    import os
    import subprocess
    import uuid

    import pytest

    @contextlib.contextmanager
    def mounted():
        if os.geteuid() != 0:
            pytest.fail("disk-full tests mount a tmpfs and need root: run them with sudo (tests/run.sh does)")
        mnt = os.path.join(parent, f"tmpfs-{uuid.uuid4().hex[:6]}")
        os.mkdir(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail(f"cannot mount a tmpfs at {mnt}: {r.stderr.strip()}")
        try:
            yield mnt
        finally:
            subprocess.run(["umount", "-l", mnt], check=False)

    return mounted()

"""`apm daemon`: bootstrap the daemon process and run its event loop.

    apm daemon            run in the foreground (init systems; sd_notify READY=1)
    apm daemon --detach   fork into the background, return once it accepts requests

The first `apm` command starts the daemon with `--detach` when none runs.
"""

from __future__ import annotations

import gc
import logging
import os
import select
import sys
import time
from typing import List, Optional

from alter import __version__
from alter.errors import ApmError
from alter.paths import Paths, resolve

log = logging.getLogger("apm")

USAGE = "usage: apm daemon [--detach]"


def main(argv: List[str]) -> int:
    detach = False
    for arg in argv:
        if arg in ("--detach", "-d"):
            detach = True
        elif arg in ("--foreground", "-f"):
            detach = False
        elif arg in ("-h", "--help"):
            print(USAGE)
            print("Runs the apm daemon (in the foreground unless --detach).")
            return 0
        else:
            print(f"apm daemon: unknown option {arg!r}\n{USAGE}", file=sys.stderr)
            return 2
    paths = resolve()
    if detach:
        return _detach_and_run(paths)
    return _run(paths, ready_fd=None, foreground=True)


def _detach_and_run(paths: Paths) -> int:
    """Fork; the parent waits until the child accepts requests (or reports why not)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        code = 1
        try:
            code = _run(paths, ready_fd=write_fd, foreground=False)
        finally:
            os._exit(code)
    os.close(write_fd)
    message = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(read_fd, 4096)
        if not chunk:
            break
        message += chunk
    os.close(read_fd)
    if message.startswith(b"ok"):
        return 0
    text = message.decode("utf-8", "replace").strip() or f"the daemon did not start; see {paths.daemon_log}"
    print(f"apm: {text}", file=sys.stderr)
    return 1


def _setup_logging(paths: Paths, foreground: bool) -> None:
    logging.raiseExceptions = False  # a full disk must never crash the daemon through logging
    root = logging.getLogger("apm")
    root.setLevel(logging.DEBUG if os.environ.get("APM_DEBUG") else logging.INFO)
    fmt = logging.Formatter("%(asctime)s apm[%(process)d] %(levelname)s %(message)s")
    try:
        os.makedirs(os.path.dirname(paths.daemon_log), exist_ok=True)
        fd = os.open(paths.daemon_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        os.close(fd)
        file_handler = logging.FileHandler(paths.daemon_log)
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)
    except OSError as exc:
        print(f"apm: cannot write the daemon log {paths.daemon_log}: {exc.strerror}", file=sys.stderr)
    if foreground:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(fmt)
        root.addHandler(stream)


def _run(paths: Paths, ready_fd: Optional[int], foreground: bool) -> int:
    _setup_logging(paths, foreground)
    try:
        from alter.native import ensure_native

        ensure_native()
        from alter.daemon.core import Daemon

        # Every module is imported now: move their ~20k objects out of the collector's sight, so a full
        # collection (which can land in the middle of a restart) costs ~0.02-3 ms instead of ~5-20 ms.
        gc.collect()
        gc.freeze()
        daemon = Daemon(paths)
        daemon.start()
    except ApmError as exc:
        log.error("%s", exc)
        _signal_ready(ready_fd, f"{exc}")
        if foreground:
            print(f"apm: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        log.exception("the daemon failed to start")
        _signal_ready(ready_fd, f"the daemon failed to start: {type(exc).__name__}: {exc} (see {paths.daemon_log})")
        return 1
    _signal_ready(ready_fd, "ok")
    return daemon.run()


def _signal_ready(fd: Optional[int], message: str) -> None:
    if fd is None:
        return
    try:
        os.write(fd, message.encode("utf-8", "replace"))
        os.close(fd)
    except OSError:
        pass


def version_info() -> dict:
    return {"version": __version__, "python": sys.version.split()[0], "pid": os.getpid()}

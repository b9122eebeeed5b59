"""Micro-benchmark of the log pipeline: MB/s and lines/s through a WorkerLog.

    python3 bench/logs_pipeline.py                 # 1,000,000 lines of ~100 bytes, fed in 64 KiB chunks
    python3 bench/logs_pipeline.py --lines 200000 --chunk 4096
    python3 bench/logs_pipeline.py --pipe          # a real child writing to a pipe, read on the EventLoop
    python3 bench/logs_pipeline.py --strip         # strip_ansi on (one regex pass per chunk)

Every line gets the default timestamp (log_time_format with colours and
microseconds) and prefix, and is written to a file in a temp APM_HOME; the
default 10 MB rotation is on.  The input is generated before the clock starts
(in-process mode); MB/s counts input bytes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from alter.config.options import effective  # noqa: E402
from alter.daemon.loop import EventLoop  # noqa: E402
from alter.logs.pipeline import WorkerLog  # noqa: E402
from alter.paths import resolve  # noqa: E402

CHILD = r"""
import os, sys
n = int(sys.argv[1])
pad = b"x" * 80
buf = []
for i in range(n):
    buf.append(b"line %09d %s\n" % (i, pad))
    if len(buf) == 1000:
        os.write(1, b"".join(buf)); buf = []
if buf:
    os.write(1, b"".join(buf))
"""


def make_data(lines: int) -> bytes:
    pad = b"x" * 80
    return b"".join(b"line %09d %s\n" % (i, pad) for i in range(lines))


def run_inprocess(wl: WorkerLog, data: bytes, chunk: int) -> float:
    w = wl.open_stream(1, "out", 1)
    view = memoryview(data)
    feed = w.feed
    t0 = time.perf_counter()
    for off in range(0, len(data), chunk):
        feed(bytes(view[off : off + chunk]))
    w.close()
    return time.perf_counter() - t0


def run_pipe(loop: EventLoop, wl: WorkerLog, lines: int, chunk: int) -> tuple[float, int]:
    w = wl.open_stream(1, "out", 1)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(lines)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    total = [0]

    def on_read() -> None:
        try:
            data = os.read(fd, chunk)
        except BlockingIOError:
            return
        if not data:
            loop.remove_reader(fd)
            w.close()
            loop.stop()
            return
        total[0] += len(data)
        w.feed(data)

    t0 = time.perf_counter()
    loop.add_reader(fd, on_read)
    loop.run()
    elapsed = time.perf_counter() - t0
    proc.wait()
    return elapsed, total[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=65536, help="bytes per read (pipe reads are <= 64 KiB by default)")
    ap.add_argument("--pipe", action="store_true", help="read from a real child process through the EventLoop")
    ap.add_argument("--strip", action="store_true", help="strip_ansi true")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = ap.parse_args()

    home = tempfile.mkdtemp(prefix="apm-bench-")
    loop = EventLoop()
    try:
        cfg = effective({"name": "bench", "exec": "x", "strip_ansi": args.strip})
        wl = WorkerLog(loop, "bench", cfg, {}, resolve({"APM_HOME": home}))
        if args.pipe:
            elapsed, nbytes = run_pipe(loop, wl, args.lines, args.chunk)
        else:
            data = make_data(args.lines)
            nbytes = len(data)
            elapsed = run_inprocess(wl, data, args.chunk)
        st = wl.status()
        wl.close()
        assert st["lines"] == args.lines, st
        mode = "pipe" if args.pipe else "in-process"
        print(
            f"{mode}: {args.lines} lines, {nbytes / 1e6:.1f} MB in {elapsed:.3f} s -> "
            f"{nbytes / 1e6 / elapsed:.1f} MB/s, {args.lines / elapsed:,.0f} lines/s "
            f"(written {st['written_bytes'] / 1e6:.1f} MB incl. timestamps+prefix, {st['rotations']} rotations)"
        )
    finally:
        loop.close()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()

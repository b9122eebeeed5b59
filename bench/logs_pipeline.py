"""Micro-benchmark of the log pipeline: MB/s and lines/s through a WorkerLog.

    python3 bench/logs_pipeline.py                 # 1,000,000 lines of ~100 bytes, fed in 64 KiB chunks
    python3 bench/logs_pipeline.py --lines 200000 --chunk 4096
    python3 bench/logs_pipeline.py --pipe          # a real child writing to a pipe, read by OutputPump on the loop
    python3 bench/logs_pipeline.py --pipe --bulk --pipe-size 1048576   # prebuilt output, 1 MiB pipe
    python3 bench/logs_pipeline.py --strip         # strip_ansi on (one regex pass per chunk)
    python3 bench/logs_pipeline.py --dir /dev/shm  # files on tmpfs: no disk writeback in the figure

CPU figures: "CPU" is the whole process (loop + log writer thread), "loop thread" the event
loop's own share -- the critical path when a second core is free.  On a shared machine compare
those, not wall-clock MB/s.

Every line gets the default timestamp (log_time_format with colours and
microseconds) and prefix, and is written to a file in a temp APM_HOME; the
default 10 MB rotation is on.  The input is generated before the clock starts
(in-process mode); MB/s counts input bytes.
"""

from __future__ import annotations

import argparse
import fcntl
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

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

CHILD = r"""
import os, sys
n = int(sys.argv[1])
pad = b"x" * 80
if len(sys.argv) > 2:  # bulk: build everything first, then hand it over 64 KiB at a time
    data = b"".join(b"line %09d %s\n" % (i, pad) for i in range(n))
    os.write(2, b"r")
    sys.stdin.read(1)
    view = memoryview(data)
    for off in range(0, len(data), 65536):
        os.write(1, view[off:off + 65536])
    sys.exit(0)
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


def run_inprocess(wl: WorkerLog, data: bytes, chunk: int) -> tuple[float, float, float]:
    """(wall, CPU, loop-thread CPU) seconds to feed `data` in `chunk`-byte pieces (prepared beforehand)."""
    w = wl.open_stream(1, "out", 1)
    view = memoryview(data)
    feed = w.feed
    chunks = [bytes(view[off : off + chunk]) for off in range(0, len(data), chunk)]
    t0, c0, l0 = time.perf_counter(), time.process_time(), time.thread_time()
    for c in chunks:
        feed(c)
    w.close()
    wl.settle()  # (waits for the last write)
    return time.perf_counter() - t0, time.process_time() - c0, time.thread_time() - l0


def run_pipe(
    loop: EventLoop, wl: WorkerLog, lines: int, chunk: int, pipe_size: int, bulk: bool
) -> tuple[float, float, float, int]:
    """A child writing into a pipe, read by the daemon's OutputPump on the EventLoop.

    The child writes 1000-line blocks as it formats them, or (`bulk`) hands over prebuilt data.
    """
    from alter.supervise import output

    output.CHUNK = chunk
    w = wl.open_stream(1, "out", 1)
    r, wfd = os.pipe2(os.O_CLOEXEC)
    if pipe_size:
        fcntl.fcntl(r, F_SETPIPE_SZ, pipe_size)
    argv = [sys.executable, "-c", CHILD, str(lines)] + (["bulk"] if bulk else [])
    proc = subprocess.Popen(argv, stdout=wfd, stdin=subprocess.PIPE, stderr=subprocess.PIPE if bulk else None)
    os.close(wfd)
    assert proc.stdin is not None
    if bulk:  # the child builds its data before the clock starts
        assert proc.stderr is not None
        proc.stderr.read(1)
    total = [0]
    feed = w.feed

    class Counting:
        def feed(self, data: bytes) -> None:
            total[0] += len(data)
            feed(data)

        def close(self) -> None:
            w.close()

    t0, c0, l0 = time.perf_counter(), time.process_time(), time.thread_time()
    proc.stdin.write(b"g")
    proc.stdin.close()
    output.OutputPump(loop, r, Counting(), on_eof=lambda _pump: loop.stop())
    loop.run()
    wl.settle()  # (waits for the last write)
    elapsed, cpu, lcpu = time.perf_counter() - t0, time.process_time() - c0, time.thread_time() - l0
    proc.wait()
    return elapsed, cpu, lcpu, total[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=65536, help="bytes per read (pipe reads are <= 64 KiB by default)")
    ap.add_argument("--pipe", action="store_true", help="read from a real child process through the EventLoop")
    ap.add_argument("--bulk", action="store_true", help="--pipe: the child builds its output first")
    ap.add_argument("--pipe-size", type=int, default=0, help="F_SETPIPE_SZ for --pipe (0: the kernel default)")
    ap.add_argument("--strip", action="store_true", help="strip_ansi true")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory")
    ap.add_argument("--dir", default=None, help="where the temp APM_HOME goes (e.g. /dev/shm: no disk writeback)")
    args = ap.parse_args()

    home = tempfile.mkdtemp(prefix="apm-bench-", dir=args.dir)
    loop = EventLoop()
    try:
        cfg = effective({"name": "bench", "exec": "x", "strip_ansi": args.strip})
        wl = WorkerLog(loop, "bench", cfg, {}, resolve({"APM_HOME": home}))
        if args.pipe:
            elapsed, cpu, lcpu, nbytes = run_pipe(loop, wl, args.lines, args.chunk, args.pipe_size, args.bulk)
        else:
            data = make_data(args.lines)
            nbytes = len(data)
            elapsed, cpu, lcpu = run_inprocess(wl, data, args.chunk)
        st = wl.status()
        wl.close()
        assert st["lines"] == args.lines, st
        mode = "pipe" if args.pipe else "in-process"
        print(
            f"{mode}: {args.lines} lines, {nbytes / 1e6:.1f} MB in {elapsed:.3f} s -> "
            f"{nbytes / 1e6 / elapsed:.1f} MB/s, {args.lines / elapsed:,.0f} lines/s, "
            f"CPU {cpu:.3f} s = {cpu * 1e3 / (nbytes / 1e6):.2f} ms/MB, "
            f"loop thread {lcpu * 1e3 / (nbytes / 1e6):.2f} ms/MB "
            f"(written {st['written_bytes'] / 1e6:.1f} MB incl. timestamps+prefix, {st['rotations']} rotations)"
        )
    finally:
        loop.close()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Log capture throughput: a child writes 1,000,000 lines of ~100 bytes as fast as it can.

    python3 bench/log_capture.py                      # every mode, 3 runs each (median shown)
    python3 bench/log_capture.py --lines 200000 --runs 1 --only direct,apm

Time from "go" until the last line is in the log file, for:

* direct       `child > file` (no manager at all)
* apm          through the daemon of dist/apm, default log_time_format + prefix on every line
               (coloured), default 10 MB rotation (log_max_files 30, so every line stays on disk)
* supervisord  `stdout_logfile` (no timestamps: supervisord writes the bytes as they come)
* pm2          `-o file` (no timestamps), and `pm2 --time` (a timestamp prefix on every line)

Three children (`--child`, default all three), each blocking on a FIFO until the benchmark writes
the "go" byte once the manager has started it, so start-up costs are out of the figure:

* stdio  the issue's reference child: a plain Python loop `print()`ing 1,000,000 lines of 98 bytes
         with default buffering (stdout is a pipe or a file: 8 KiB block writes); the child's own
         CPU is the limit, the manager has to keep up with it
* line   one os.write() per line, as a program that logs unbuffered (console.log, flush per line)
* bulk   the whole 98 MB built first, then handed over 64 KiB at a time: the manager's ceiling

Completion = the file ends with the child's last line (`END`), polled every 5 ms; then every line is
counted in the files (none may be lost).  "manager CPU" is the manager process's utime+stime over
the run (apm's daemon with its log writer thread, supervisord; not measured for PM2): the figure
to compare on a busy machine, where wall-clock times are noisy.

During each apm run the daemon's RSS is sampled and a raw `list` request is timed every 100 ms
(the event loop must keep answering within 50 ms while it captures).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (
    DIST_APM,
    PY,
    Apm,
    BenchError,
    cpu_seconds,
    ensure_pm2,
    ensure_supervisor,
    kill_tree,
    loadavg,
    log,
    machine,
    rss_bytes,
    table,
    wait_until,
)

CHILD = r"""
import os, sys, time
n = int(sys.argv[1])
pad = b"x" * 84
if sys.argv[3] == "bulk":  # the whole output built first, then written 64 KiB at a time
    data = b"".join(b"line %07d %s\n" % (i, pad) for i in range(n)) + b"END\n"
    with open(sys.argv[2], "rb") as go:
        go.read(1)
    view = memoryview(data)
    for off in range(0, len(data), 65536):
        os.write(1, view[off:off + 65536])
elif sys.argv[3] == "stdio":  # the issue's reference child: print() with default (8 KiB block) buffering
    text = "x" * 84
    with open(sys.argv[2], "rb") as go:
        go.read(1)
    for i in range(n):
        print("line %07d %s" % (i, text))
    print("END")
else:  # "line": one write() per line, as a program that logs unbuffered (console.log, flush per line)
    write = os.write
    with open(sys.argv[2], "rb") as go:
        go.read(1)
    for i in range(n):
        write(1, b"line %07d %s\n" % (i, pad))
    write(1, b"END\n")
"""
LINE_END = b"x" * 12 + b"\n"  # once per data line, whatever prefix a manager adds


class Run:
    def __init__(self, name: str, seconds: float, nbytes: int, lines: int, extra: Optional[Dict[str, Any]] = None):
        self.name = name
        self.seconds = seconds
        self.nbytes = nbytes
        self.lines = lines
        self.extra = extra or {}


def child_script(tmp: str) -> str:
    path = os.path.join(tmp, "child.py")
    with open(path, "w") as f:
        f.write(CHILD)
    return path


KIND = ["bulk"]  # the child kind of the current run (set by main)


def go(fifo: str, timeout: float = 120.0) -> float:
    """Open the FIFO (blocks until the child is ready), send the byte; the clock starts."""
    result: List[float] = []

    def opener() -> None:
        with open(fifo, "wb") as f:
            t0 = time.perf_counter()
            f.write(b"g")
            result.append(t0)

    t = threading.Thread(target=opener, daemon=True)
    t.start()
    t.join(timeout)
    if not result:
        raise BenchError("the child never opened its FIFO (did the manager start it?)")
    return result[0]


END_RE = re.compile(rb"(?:^|[\n ])END\n")


def has_end(path: str) -> bool:
    """The child's last line is in the last 4 KiB of the file (a manager may add its own lines after it)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4096))
            return END_RE.search(f.read()) is not None
    except OSError:
        return False


def wait_end(paths: Callable[[], List[str]], timeout: float = 300.0, stall: float = 10.0) -> float:
    """When the last line is in the file; inf when the file stopped growing for `stall` s without it."""
    deadline = time.perf_counter() + timeout
    size, since = -1, time.perf_counter()
    while True:
        files = paths()
        if any(has_end(p) for p in files[-2:]):
            return time.perf_counter()
        now_size = sum(os.path.getsize(p) for p in files if os.path.exists(p))
        if now_size != size:
            size, since = now_size, time.perf_counter()
        elif time.perf_counter() - since > stall:
            log(f"  the log stopped growing at {size:,} bytes without the last line: lines were lost")
            return float("inf")
        if time.perf_counter() > deadline:
            tail = b""
            if files and os.path.exists(files[-1]):
                with open(files[-1], "rb") as f:
                    f.seek(max(0, os.path.getsize(files[-1]) - 200))
                    tail = f.read()
            raise BenchError(f"the last line never reached the log file {files[-1:]}: ...{tail!r}")
        time.sleep(0.005)


def count_lines(paths: List[str]) -> int:
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            total += f.read().count(LINE_END)
    return total


def apm_files(folder: str) -> List[str]:
    """out.log.N ... out.log.1, out.log (oldest first)."""
    names = [n for n in os.listdir(folder) if n.startswith("out.log")]

    def key(n: str) -> int:
        tail = n[len("out.log") :].lstrip(".")
        return -int(tail) if tail.isdigit() else 0

    return [os.path.join(folder, n) for n in sorted(names, key=key)]


# --------------------------------------------------------------------------- modes


def run_direct(tmp: str, lines: int) -> Run:
    fifo = os.path.join(tmp, "go-direct")
    os.mkfifo(fifo)
    out = os.path.join(tmp, "direct.log")
    with open(out, "wb") as f:
        proc = subprocess.Popen([PY, child_script(tmp), str(lines), fifo, KIND[0]], stdout=f)
    try:
        t0 = go(fifo)
        t1 = wait_end(lambda: [out])
        proc.wait(60)
        size = os.path.getsize(out)
        return Run("direct", t1 - t0, size, count_lines([out]))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.unlink(fifo)


APM_EXE = [""]  # the zipapp every apm run uses: one copy taken at start (a rebuild meanwhile changes nothing)


def run_apm(tmp: str, lines: int) -> Run:
    apm = Apm("logcap", apm=APM_EXE[0])
    try:
        pid = apm.start()
        fifo = os.path.join(tmp, "go-apm")
        os.mkfifo(fifo)
        apm.request(
            "run",
            {
                "config": {
                    "name": "cap",
                    "exec": PY,
                    "params": [child_script(tmp), str(lines), fifo, KIND[0]],
                    "path": tmp,
                    "log_max_files": 30,
                },
                "cwd": tmp,
                "wait": False,
            },
        )
        folder = os.path.join(apm.home, "logs", "cap")
        samples: List[float] = []
        rss: List[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                value = rss_bytes(pid)
                if value:
                    rss.append(value)
                t = time.perf_counter()
                try:
                    apm.request("list")
                except (OSError, BenchError):
                    return
                samples.append((time.perf_counter() - t) * 1000)
                stop.wait(0.1)

        rss_before = rss_bytes(pid) or 0
        cpu0 = cpu_seconds(pid) or 0.0
        t0 = go(fifo)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            t1 = wait_end(lambda: apm_files(folder))
        finally:
            stop.set()
            sampler.join(10)
        cpu = (cpu_seconds(pid) or 0.0) - cpu0
        files = apm_files(folder)
        time.sleep(0.2)
        rss_after = rss_bytes(pid) or 0
        size = sum(os.path.getsize(p) for p in files)
        extra = {
            "list_max_ms": max(samples) if samples else float("nan"),
            "list_p50_ms": statistics.median(samples) if samples else float("nan"),
            "list_n": len(samples),
            "rss_before": rss_before,
            "rss_max": max(rss) if rss else 0,
            "rss_after": rss_after,
            "files": len(files),
            "cpu": cpu,
        }
        os.unlink(fifo)
        return Run("apm", t1 - t0, size, count_lines(files), extra)
    finally:
        apm.close()


def run_supervisord(tmp: str, lines: int) -> Run:
    bin_dir = ensure_supervisor()
    work = tempfile.mkdtemp(prefix="apm-bench-logsup-")
    conf = os.path.join(work, "supervisord.conf")
    sock = os.path.join(work, "s.sock")
    fifo = os.path.join(work, "go")
    os.mkfifo(fifo)
    out = os.path.join(work, "cap.log")
    with open(conf, "w") as f:
        f.write(
            "\n".join(
                [
                    "[unix_http_server]",
                    f"file={sock}",
                    "[supervisord]",
                    f"logfile={work}/supervisord.log",
                    f"pidfile={work}/supervisord.pid",
                    f"childlogdir={work}",
                    "nodaemon=true",
                    "[rpcinterface:supervisor]",
                    "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
                    "[supervisorctl]",
                    f"serverurl=unix://{sock}",
                    "[program:cap]",
                    f"command={PY} {child_script(tmp)} {lines} {fifo} {KIND[0]}",
                    "autostart=false",
                    "autorestart=false",
                    "startsecs=0",
                    f"stdout_logfile={out}",
                    "stdout_logfile_maxbytes=0",
                ]
            )
            + "\n"
        )
    proc = subprocess.Popen(
        [os.path.join(bin_dir, "supervisord"), "-c", conf],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: os.path.exists(sock), 60, 0.05, "supervisord's socket")
        subprocess.run(
            [os.path.join(bin_dir, "supervisorctl"), "-c", conf, "start", "cap"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )
        cpu0 = cpu_seconds(proc.pid) or 0.0
        t0 = go(fifo)
        t1 = wait_end(lambda: [out])
        cpu = (cpu_seconds(proc.pid) or 0.0) - cpu0
        return Run("supervisord", t1 - t0, os.path.getsize(out), count_lines([out]), {"cpu": cpu})
    finally:
        subprocess.run(
            [os.path.join(bin_dir, "supervisorctl"), "-c", conf, "shutdown"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
        kill_tree(proc.pid)
        shutil.rmtree(work, ignore_errors=True)


def run_pm2(tmp: str, lines: int, stamp: bool) -> Run:
    pm2 = ensure_pm2()
    work = tempfile.mkdtemp(prefix="apm-bench-logpm2-")
    env = dict(os.environ, PM2_HOME=os.path.join(work, "home"))
    fifo = os.path.join(work, "go")
    os.mkfifo(fifo)
    out = os.path.join(work, "out.log")

    def pm(*args: str) -> None:
        subprocess.run(
            [pm2, *args], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120
        )

    try:
        pm("ping")
        args = [
            "start",
            child_script(tmp),
            "--name",
            "cap",
            "--interpreter",
            PY,
            "--no-autorestart",
            "-o",
            out,
            "-e",
            os.path.join(work, "err.log"),
        ]
        if stamp:
            args.append("--time")
        pm(*args, "--", str(lines), fifo, KIND[0])
        t0 = go(fifo)
        t1 = wait_end(lambda: [out])
        return Run("pm2 --time" if stamp else "pm2", t1 - t0, os.path.getsize(out), count_lines([out]))
    finally:
        subprocess.run([pm2, "kill"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        shutil.rmtree(work, ignore_errors=True)


MODES: Dict[str, Callable[[str, int], Run]] = {
    "direct": run_direct,
    "apm": run_apm,
    "supervisord": run_supervisord,
    "pm2": lambda tmp, n: run_pm2(tmp, n, stamp=False),
    "pm2 --time": lambda tmp, n: run_pm2(tmp, n, stamp=True),
}


def cpu_cell(runs: List[Run], payload: int) -> str:
    """Median manager CPU seconds over the runs, and per MB of the child's output."""
    cpus = [r.extra["cpu"] for r in runs if "cpu" in r.extra]
    if not cpus:
        return "-"
    med = statistics.median(cpus)
    return f"{med:.2f} s ({med * 1e3 / (payload / 1e6):.2f} ms/MB)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated modes: " + ", ".join(MODES))
    ap.add_argument(
        "--child",
        default="stdio,line,bulk",
        help="stdio (print, 8 KiB blocks), line (a write per line), bulk (prebuilt, 64 KiB writes)",
    )
    ap.add_argument("--apm", default=DIST_APM, help="the zipapp to run (default dist/apm, copied once at start)")
    a = ap.parse_args()
    modes = [m.strip() for m in a.only.split(",") if m.strip()] or list(MODES)
    kinds = [k.strip() for k in a.child.split(",") if k.strip()]
    for m in modes:
        if m not in MODES:
            ap.error(f"unknown mode {m!r}")
    for k in kinds:
        if k not in ("bulk", "line", "stdio"):
            ap.error(f"unknown child kind {k!r}")
    tmp = tempfile.mkdtemp(prefix="apm-bench-logcap-")
    APM_EXE[0] = os.path.join(tmp, "apm.pyz")
    shutil.copy2(a.apm, APM_EXE[0])
    results: Dict[str, Dict[str, List[Run]]] = {k: {m: [] for m in modes} for k in kinds}
    load_before = loadavg()
    try:
        for r in range(a.runs):
            for k in kinds:
                KIND[0] = k
                for m in modes:  # round-robin: load spikes hit every mode alike
                    log(f"run {r + 1}/{a.runs}, {k} child: {m}")
                    run = MODES[m](tmp, a.lines)
                    results[k][m].append(run)
                    log(f"  {run.seconds:.2f}s, {a.lines * 98 / 1e6 / run.seconds:.0f} MB/s, {run.lines} lines intact")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = loadavg()
    payload = a.lines * 98 + 4  # the child's bytes
    print(f"\n{a.lines:,} lines of 98 bytes ({payload / 1e6:.0f} MB), {a.runs} run(s) each, median; {machine()}")
    print(f"load average before: {load_before}, after: {load_after}")
    for k in kinds:
        by_mode = results[k]
        direct = statistics.median(r.seconds for r in by_mode["direct"]) if "direct" in by_mode else None
        rows = []
        for m in modes:
            secs = sorted(r.seconds for r in by_mode[m])
            med = statistics.median(secs)
            intact = min(r.lines for r in by_mode[m])
            rows.append(
                [
                    m,
                    f"{med:.2f} s (best {secs[0]:.2f})",
                    f"{payload / 1e6 / med:.0f} MB/s",
                    f"{a.lines / med / 1e6:.2f} M",
                    f"{statistics.median(r.nbytes for r in by_mode[m]) / 1e6:.0f} MB",
                    "all" if intact == a.lines else f"{intact:,} ({a.lines - intact:,} broken)",
                    f"{direct / med:.2f}x" if direct else "-",
                    cpu_cell(by_mode[m], payload),
                ]
            )
        print(f"\nchild: {k}\n")
        header = [
            "mode",
            "time to last line on disk",
            "child MB/s",
            "lines/s",
            "file size",
            "lines intact",
            "vs direct",
            "manager CPU",
        ]
        print(table(header, rows))
        if "apm" in by_mode:
            arows = []
            for i, r in enumerate(by_mode["apm"], 1):
                x = r.extra
                arows.append(
                    [
                        str(i),
                        f"{x['rss_before'] / 2**20:.1f} MiB",
                        f"{x['rss_max'] / 2**20:.1f} MiB",
                        f"{x['rss_after'] / 2**20:.1f} MiB",
                        f"{x['list_p50_ms']:.1f} ms",
                        f"{x['list_max_ms']:.1f} ms",
                        str(x["list_n"]),
                        str(x["files"]),
                    ]
                )
            print()
            print(
                table(
                    ["apm run", "RSS before", "RSS max", "RSS after", "`list` p50", "`list` max", "samples", "files"],
                    arows,
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

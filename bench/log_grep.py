"""`apm grep` on a 1 GB log (rotated files) next to `grep -E` on the same files.

    python3 bench/log_grep.py                 # 1 GB, 3 runs per command (median shown)
    python3 bench/log_grep.py --size 200 --runs 1

The log is written by the real pipeline (alter.logs.pipeline.WorkerLog, default coloured
timestamp and prefix, 10 MB rotation) into the log folder of a worker of a private daemon from
dist/apm, before the daemon starts.  Then, for each pattern, round-robin:

* `apm grep PATTERN bench --max 0`         the CLI, end to end (matches the text as read: colours removed)
* `apm grep PATTERN bench --max 0 --raw`   the same on the raw file bytes
* `grep -E PATTERN files...`               GNU grep over the same files (LC_ALL=C), raw bytes

Output goes to a temporary file; the files sit in the page cache (warm) for every command.
The match counts are checked to agree.  Wall time and CPU time (user + system, for apm including
what the daemon and its grep worker spent) are both reported: on a shared machine the CPU time
is the steadier figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import CLK_TCK, DIST_APM, Apm, BenchError, loadavg, log, machine, proc_stat, table

PATTERNS: List[Tuple[str, List[str], str]] = [
    # (label, apm/grep extra flags, pattern)
    ("rare literal", [], "CRITICAL"),
    ("rare literal, -i", ["-i"], "critical"),
    ("alternation (2% of lines)", [], "ERROR|CRITICAL"),
    ("regex with classes", [], r"user=[0-9]{4}7 .*timeout"),
    ("no match", [], "ZZZ-NOT-THERE"),
]

WORDS = [
    b"GET /api/users/%d 200 3ms",
    b"POST /login user=%d ok",
    b"INFO cache refreshed in %dms",
    b"WARN slow query took %dms",
    b"GET /health 200",
    b"user=%d session renewed",
    b"DEBUG pool size %d",
    b"user=%d request timeout after 30s",
]


def make_log(home: str, size_mb: int) -> Tuple[List[str], int]:
    from alter.config.options import effective
    from alter.daemon.loop import EventLoop
    from alter.logs.pipeline import WorkerLog
    from alter.paths import resolve

    paths = resolve({"APM_HOME": home}, os.geteuid())
    loop = EventLoop()
    wl = WorkerLog(loop, "bench", effective({"name": "bench", "log_max_files": 1000}), {}, paths)
    out = wl.open_stream(1, "out", 1)
    err = wl.open_stream(1, "err", 1)
    i = 0
    target = size_mb * 1_000_000
    while wl.status()["written_bytes"] < target:
        lines = []
        for k in range(i, i + 20_000):
            word = WORDS[k % len(WORDS)]
            text = word % (k % 100_000) if b"%d" in word else word
            if k % 10_000 == 0:
                text = b"CRITICAL disk almost full (%d)" % k
            elif k % 50 == 7:
                text = b"ERROR connection refused (%d)" % k
            lines.append(b"%s req=%08d\n" % (text, k))
        data = b"".join(lines)
        for off in range(0, len(data), 65536):
            piece = data[off : off + 65536]
            (err if (off // 65536) % 20 == 19 else out).feed(piece)
        i += 20_000
    out.close()
    err.close()
    files = wl.files()
    wl.close()
    loop.close()
    return files, i


def _daemon_cpu(pid: Optional[int]) -> float:
    """utime + stime of the daemon and of its reaped children (the grep worker), seconds."""
    fields = proc_stat(pid) if pid else None
    return sum(int(x) for x in fields[11:15]) / CLK_TCK if fields else 0.0


def timed(argv: List[str], env: Dict[str, str], daemon: Optional[int] = None) -> Tuple[float, float, int]:
    """(wall seconds, CPU seconds of the command + what the daemon spent meanwhile, output lines)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    d0 = _daemon_cpu(daemon)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out:  # output to a file, as `> file` would: no pipe reader to wait for
        proc = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.PIPE, timeout=600)
        elapsed = time.perf_counter() - t0
        out.seek(0)
        lines = sum(block.count(b"\n") for block in iter(lambda: out.read(1 << 20), b""))
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime) + _daemon_cpu(daemon) - d0
    if proc.returncode not in (0, 1):
        raise BenchError(f"{' '.join(argv[:4])}... exited {proc.returncode}: {proc.stderr.decode()[-400:]}")
    return elapsed, cpu, lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1000, help="MB of log to search (default 1000)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--apm", default=DIST_APM, help="the zipapp to run (default dist/apm)")
    a = ap.parse_args()
    apm = Apm("loggrep", apm=a.apm)
    try:
        log(f"writing {a.size} MB of log through the pipeline")
        t0 = time.perf_counter()
        files, lines = make_log(apm.home, a.size)
        total = sum(os.path.getsize(f) for f in files)
        log(f"  {len(files)} files, {total / 1e6:.0f} MB, {lines:,} lines in {time.perf_counter() - t0:.1f}s")
        apm.start()
        apm.request(
            "run",
            {
                "config": {"name": "bench", "exec": "/bin/sleep", "params": ["100000"], "log_max_files": 1000},
                "cwd": apm.tmp,
                "wait": False,
            },
        )
        listed = [f["path"] for f in apm.request("info", {"name": "bench"})["logs"]["files"]]
        if len(listed) != len(files):
            raise BenchError(f"the daemon sees {len(listed)} files, {len(files)} were written")
        for f in files:  # warm the page cache for everyone
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass
        genv = dict(os.environ, LC_ALL="C")
        # While apm greps, a raw `list` every 100 ms: the daemon's loop must keep answering.
        lat: List[float] = []
        sampling = threading.Event()
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                if sampling.is_set():
                    lat.append(apm.time_request("list"))
                stop.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        load_before = loadavg()
        rows = []
        cpu_rows: List[List[str]] = []
        for label, flags, pattern in PATTERNS:
            commands = {
                "apm": apm.argv("grep", *flags, pattern, "bench", "--max", "0"),
                "apm --raw": apm.argv("grep", *flags, pattern, "bench", "--max", "0", "--raw"),
                "grep -E": ["grep", "-E", *flags, "--", pattern, *files],
            }
            times: Dict[str, List[float]] = {k: [] for k in commands}
            cpus: Dict[str, List[float]] = {k: [] for k in commands}
            counts: Dict[str, int] = {}
            for _ in range(a.runs):
                for name, argv in commands.items():
                    is_apm = name.startswith("apm")
                    if is_apm:
                        sampling.set()
                    secs, cpu, count = timed(argv, apm.env if is_apm else genv, apm.pid if is_apm else None)
                    sampling.clear()
                    times[name].append(secs)
                    cpus[name].append(cpu)
                    counts[name] = count
            if len(set(counts.values())) != 1:
                raise BenchError(f"{label}: match counts differ: {counts}")
            med = {k: statistics.median(v) for k, v in times.items()}
            cpu = {k: statistics.median(v) for k, v in cpus.items()}
            cpu_rows.append(
                [
                    f"{label}: `{' '.join(flags + [pattern])}`",
                    f"{cpu['apm']:.2f} s",
                    f"{cpu['apm --raw']:.2f} s",
                    f"{cpu['grep -E']:.2f} s",
                    f"{cpu['apm'] / max(cpu['grep -E'], 0.001):.1f}x / {cpu['apm --raw'] / max(cpu['grep -E'], 0.001):.1f}x",
                ]
            )
            rows.append(
                [
                    f"{label}: `{' '.join(flags + [pattern])}`",
                    f"{counts['grep -E']:,}",
                    f"{med['apm']:.2f} s ({total / 1e6 / med['apm']:.0f} MB/s)",
                    f"{med['apm --raw']:.2f} s ({total / 1e6 / med['apm --raw']:.0f} MB/s)",
                    f"{med['grep -E']:.2f} s ({total / 1e6 / med['grep -E']:.0f} MB/s)",
                    f"{med['apm'] / med['grep -E']:.1f}x / {med['apm --raw'] / med['grep -E']:.1f}x",
                ]
            )
            log(f"{label}: " + ", ".join(f"{k} {v:.2f}s (cpu {cpu[k]:.2f}s)" for k, v in med.items()))
        print(
            f"\n{total / 1e6:.0f} MB in {len(files)} files ({lines:,} lines), warm page cache, {a.runs} runs, median;"
        )
        print(f"{machine()}; load average before: {load_before}, after: {loadavg()}\n")
        header = ["pattern", "matches", "apm grep", "apm grep --raw", "grep -E", "apm / grep"]
        print(table(header, rows))
        print("\nCPU time (user + system of the command, plus the daemon and its grep worker for apm), median:\n")
        print(table(["pattern", "apm grep", "apm grep --raw", "grep -E", "apm / grep"], cpu_rows))
        stop.set()
        if lat:
            print(
                f"\nthe daemon's `list` while apm grep ran: {len(lat)} requests, median {statistics.median(lat):.1f} ms, "
                f"max {max(lat):.1f} ms"
            )
    finally:
        apm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

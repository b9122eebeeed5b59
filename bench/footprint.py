"""Daemon footprint: RSS with 0 and with 200 idle workers, and CPU over 60 s of idle, apm next to the others.

    python3 bench/footprint.py                      # 200 workers, 60 s idle window
    python3 bench/footprint.py --workers 200 --idle 60 --settle 5 --json out.json

apm, supervisord and PM2 run side by side in ONE run, each with its own private home:

1. start each daemon with no program; wait `--settle` s; RSS of the daemon process ("0 workers");
2. add the workers, each running `sleep 100000` (apm: one `run` request each, as `apm run` sends it;
   supervisord: `[program:wN]` sections + `supervisorctl update`; PM2: `pm2 start ecosystem.json`);
   wait until every one has exec'd `sleep`, then `--settle` s more;
3. RSS of each daemon process (from /proc/<pid>/statm, what psutil reports as rss), then CPU time
   (utime + stime of the daemon process, /proc/<pid>/stat) over the same `--idle` s window for all three,
   as % of one core.

Only the manager's own process is counted (PM2: its God daemon; apm and supervisord: the daemon); the
`sleep` workers are the same for all.  Target (issue 3): apm under 40 MB RSS with 200 workers and under 1%
CPU idle.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (
    DIST_APM,
    Apm,
    Pm2,
    Supervisord,
    close_all,
    cpu_seconds,
    loadavg,
    log,
    machine,
    raise_nofile,
    rss_bytes,
    table,
)


def mb(value: Optional[int]) -> str:
    return "n/a" if value is None else f"{value / 1e6:.1f} MB"


def proc_status(pid: int, keys: List[str]) -> Dict[str, str]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in keys:
                    out[key] = value.strip()
    except OSError:
        pass
    return out


def native_libs(pid: int) -> List[str]:
    """Python extension modules mapped into a process (is the daemon loading psutil / cffi / argon2?)."""
    libs = set()
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if path.endswith(".so") and "-linux-gnu" in path:
                    libs.add(os.path.basename(path).split(".")[0])
    except OSError:
        pass
    return sorted(libs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=200)
    ap.add_argument("--idle", type=float, default=60.0, help="seconds of idle over which CPU is measured")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds to let each daemon settle before RSS")
    ap.add_argument("--no-others", action="store_true", help="skip supervisord and PM2")
    ap.add_argument("--json", help="also write the raw figures here")
    ap.add_argument("--apm", default=DIST_APM, help="the zipapp to measure (default: dist/apm)")
    args = ap.parse_args()
    raise_nofile()

    load_before = loadavg()
    log(f"load average before: {load_before}")
    started: List[Any] = []
    results: Dict[str, Dict[str, Any]] = {}
    try:
        apm = Apm("footprint", args.apm)
        started.append(apm)
        apm.start()
        pids = {"apm": apm.pid}
        if not args.no_others:
            sup = Supervisord("footprint", 0)
            started.append(sup)
            pids["supervisord"] = sup.start()
            pm2 = Pm2("footprint", args.workers)
            started.append(pm2)
            pids["PM2"] = pm2.start_daemon()
        time.sleep(args.settle)
        for name, pid in pids.items():
            assert pid is not None
            results[name] = {"pid": pid, "rss0": rss_bytes(pid)}
        log("RSS with 0 workers: " + ", ".join(f"{n} {mb(r['rss0'])}" for n, r in results.items()))

        t0 = time.monotonic()
        for i in range(1, args.workers + 1):
            apm.run_worker(f"w{i}")
        apm.wait_running(args.workers, timeout=300)
        log(f"apm: {args.workers} workers running after {time.monotonic() - t0:.1f} s")
        if not args.no_others:
            t0 = time.monotonic()
            sup.set_programs(args.workers)
            log(f"supervisord: {args.workers} programs running after {time.monotonic() - t0:.1f} s")
            t0 = time.monotonic()
            pm2.start_apps()
            log(f"PM2: {args.workers} apps running after {time.monotonic() - t0:.1f} s")
        time.sleep(args.settle)
        cpu0 = {name: cpu_seconds(r["pid"]) for name, r in results.items()}
        w0 = time.monotonic()
        for r in results.values():
            r["rss"] = rss_bytes(r["pid"])
            r["status"] = proc_status(r["pid"], ["VmRSS", "RssAnon", "RssFile", "VmHWM", "Threads"])
        log(f"idle for {args.idle:g} s ...")
        time.sleep(args.idle)
        wall = time.monotonic() - w0
        for name, r in results.items():
            c0, c1 = cpu0[name], cpu_seconds(r["pid"])
            r["cpu_pct"] = None if c0 is None or c1 is None else (c1 - c0) / wall * 100
            r["cpu_s"] = None if c0 is None or c1 is None else c1 - c0
            r["rss_end"] = rss_bytes(r["pid"])
        results["apm"]["native"] = native_libs(apm.pid or 0)
        results["apm"]["gui"] = apm.gui
    finally:
        close_all(started)
    load_after = loadavg()
    log(f"load average after: {load_after}")

    a = results["apm"]
    print(f"## Daemon footprint ({time.strftime('%Y-%m-%d %H:%M')}, {machine()})\n")
    print(
        f"{args.workers} idle workers (`sleep 100000`) per manager, all three measured over the same "
        f"{args.idle:g} s window; load average before {load_before}, after {load_after}.\n"
    )
    rows = []
    for name, r in results.items():
        rows.append(
            [
                name,
                mb(r["rss0"]),
                mb(r["rss"]),
                mb(r.get("rss_end")),
                "n/a" if r.get("cpu_pct") is None else f"{r['cpu_pct']:.2f}% ({r['cpu_s']:.2f} s)",
                "" if name == "apm" or not r["rss"] else f"{a['rss'] / r['rss']:.2f}x",
            ]
        )
    print(
        table(
            [
                "daemon",
                "RSS, 0 workers",
                f"RSS, {args.workers} workers",
                f"RSS after {args.idle:g} s idle",
                f"CPU over {args.idle:g} s idle",
                "apm RSS / this",
            ],
            rows,
        )
    )
    st = a["status"]
    print(
        f"\napm daemon: {st.get('RssAnon', '?')} anonymous + {st.get('RssFile', '?')} file-backed, "
        f"peak {st.get('VmHWM', '?')}, {st.get('Threads', '?')} thread(s) (web GUI {a.get('gui')}); "
        f"native modules mapped: {', '.join(a['native']) or 'none'}."
    )
    peak = max(v for v in (a["rss"], a.get("rss_end")) if v is not None) if a["rss"] is not None else None
    rss_ok = peak is not None and peak < 40e6
    cpu_ok = a.get("cpu_pct") is not None and a["cpu_pct"] < 1.0
    print(
        f"\nTarget: RSS {mb(peak)} (the larger of the two {args.workers}-worker figures) < 40 MB: "
        f"{'MET' if rss_ok else 'NOT met'}; idle CPU {a.get('cpu_pct', float('nan')):.2f}% < 1%: "
        f"{'MET' if cpu_ok else 'NOT met'}."
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"load_before": load_before, "load_after": load_after, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scale: 1000 instances started, listed and stopped, timed through the CLI the installed way.

    python3 bench/scale.py                     # one worker x 1000 instances, then 100 workers x 10
    python3 bench/scale.py --instances 1000 --workers 100 --list-runs 10 --json out.json

Shape A, one worker with N instances:
    `apm run sleep 100000 --name big --instances N --no-wait` (accepted), then `apm wait big --timeout 120s`
    (every instance running: the figure "all running" is from the start of `run` to the end of `wait`);
    `apm list` (median of --list-runs, plus the daemon side: the `list` request alone), `apm list --json`;
    `apm stop big` (returns when every instance has exited).
Shape B, W workers x N/W instances: W `apm run ... --no-wait` commands back to back, then `apm wait` on
    each; `apm list`; `apm stopall`.

The daemon's RLIMIT_NOFILE is raised first (each instance holds 2 pipe ends and its log files).  The
daemon's RSS and CPU time are reported after each step.  `--others` also runs the same shape A with
supervisord (N [program:x] entries, `supervisorctl start all`/`status`/`stop all`) and PM2 (`pm2 start
sleep -i N` is cluster mode for node only, so N apps in one ecosystem file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (
    DIST_APM,
    Apm,
    BenchError,
    Pm2,
    Supervisord,
    close_all,
    cpu_seconds,
    fmt,
    loadavg,
    log,
    machine,
    raise_nofile,
    rss_bytes,
    running_sleep_children,
    summary,
    table,
    time_commands,
    wait_until,
)


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def daemon_state(apm: Apm) -> str:
    assert apm.pid is not None
    rss = rss_bytes(apm.pid) or 0
    cpu = cpu_seconds(apm.pid) or 0.0
    return f"RSS {rss / 1e6:.1f} MB, CPU so far {cpu:.2f} s"


def list_times(apm: Apm, runs: int) -> Dict[str, Dict[str, float]]:
    cmds = {
        "apm list": {"argv": apm.argv("list"), "env": apm.env},
        "apm list --json": {"argv": apm.argv("list", "--json"), "env": apm.env},
    }
    out = {k: summary(v) for k, v in time_commands(cmds, runs, warmup=1, timeout=120).items()}
    cold = []
    for _ in range(min(runs, 5)):
        time.sleep(0.6)
        cold.append(apm.time_request("list"))
    out["list request (daemon side, cold)"] = summary(cold)
    return out


def shape_a(apm: Apm, n: int, list_runs: int) -> Dict[str, Any]:
    res: Dict[str, Any] = {}
    t0 = time.perf_counter()
    res["run (accepted)"] = timed(
        lambda: apm.cli("run", "sleep", "100000", "--name", "big", "--instances", str(n), "--no-wait", timeout=300)
    )
    apm.cli("wait", "big", "--timeout", "300s", timeout=330)
    res["all running"] = (time.perf_counter() - t0) * 1000
    assert apm.pid is not None
    running = len(running_sleep_children(apm.pid))
    if running < n:
        raise BenchError(f"apm wait returned with {running}/{n} instances running `sleep`")
    log(f"A: {n} instances running in {res['all running']:.0f} ms; {daemon_state(apm)}")
    res["list"] = list_times(apm, list_runs)
    res["state after start"] = daemon_state(apm)
    res["stop"] = timed(lambda: apm.cli("stop", "big", timeout=600))
    pid = apm.pid
    wait_until(lambda: not running_sleep_children(pid), 60, 0.05, "every instance gone")
    log(f"A: stopped in {res['stop']:.0f} ms; {daemon_state(apm)}")
    apm.cli("remove", "big", timeout=300)
    return res


def shape_b(apm: Apm, n: int, workers: int, list_runs: int) -> Dict[str, Any]:
    per = n // workers
    res: Dict[str, Any] = {}
    t0 = time.perf_counter()
    for i in range(1, workers + 1):
        apm.cli("run", "sleep", "100000", "--name", f"w{i}", "--instances", str(per), "--no-wait", timeout=120)
    res["run x workers (accepted)"] = (time.perf_counter() - t0) * 1000
    for i in range(1, workers + 1):
        apm.request("wait", {"name": f"w{i}", "timeout": 300_000}, timeout=330)
    res["all running"] = (time.perf_counter() - t0) * 1000
    assert apm.pid is not None
    log(f"B: {workers}x{per} instances running in {res['all running']:.0f} ms; {daemon_state(apm)}")
    res["list"] = list_times(apm, list_runs)
    res["state after start"] = daemon_state(apm)
    res["stop"] = timed(lambda: apm.cli("stopall", timeout=600))
    pid = apm.pid
    wait_until(lambda: not running_sleep_children(pid), 60, 0.05, "every instance gone")
    log(f"B: stopall in {res['stop']:.0f} ms; {daemon_state(apm)}")
    return res


def others(n: int, list_runs: int) -> Dict[str, Dict[str, Any]]:
    out: Dict[str, Dict[str, Any]] = {}
    started: List[Any] = []
    try:
        sup = Supervisord("scale", 0)
        started.append(sup)
        sup.start()
        t0 = time.perf_counter()
        sup.set_programs(n, timeout=600)
        r: Dict[str, Any] = {"all running": (time.perf_counter() - t0) * 1000}
        r["list"] = {
            "supervisorctl status": summary(
                time_commands({"s": {"argv": sup.ctl_argv("status")}}, list_runs, warmup=1, timeout=120)["s"]
            )
        }
        import subprocess

        r["stop"] = timed(
            lambda: subprocess.run(sup.ctl_argv("stop", "all"), stdout=subprocess.DEVNULL, timeout=600, check=False)
        )
        out["supervisord"] = r
        log(f"supervisord: {r}")
        pm2 = Pm2("scale", n)
        started.append(pm2)
        pm2.start_daemon()
        t0 = time.perf_counter()
        pm2.start_apps(timeout=900)
        r = {"all running": (time.perf_counter() - t0) * 1000}
        r["list"] = {
            "pm2 list": summary(
                time_commands({"p": {"argv": pm2.argv("list"), "env": pm2.env}}, list_runs, warmup=1, timeout=120)["p"]
            )
        }
        r["stop"] = timed(lambda: pm2.cli("stop", "all", timeout=900))
        out["PM2"] = r
        log(f"PM2: {r}")
    finally:
        close_all(started)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=100, help="shape B: this many workers share the instances")
    ap.add_argument("--list-runs", type=int, default=10)
    ap.add_argument("--others", action="store_true", help="also time supervisord and PM2 (shape A)")
    ap.add_argument("--json", help="also write the raw figures here")
    ap.add_argument("--apm", default=DIST_APM, help="the zipapp to measure (default: dist/apm)")
    args = ap.parse_args()
    nofile = raise_nofile(65536)
    log(f"RLIMIT_NOFILE {nofile}")

    load_before = loadavg()
    log(f"load average before: {load_before}")
    started: List[Any] = []
    results: Dict[str, Any] = {}
    try:
        apm = Apm("scale", args.apm)
        started.append(apm)
        apm.start()
        apm.check_installed()
        results["A"] = shape_a(apm, args.instances, args.list_runs)
        results["B"] = shape_b(apm, args.instances, args.workers, args.list_runs)
        close_all(started)
        started.clear()
        if args.others:
            results["others"] = others(args.instances, args.list_runs)
    finally:
        close_all(started)
    load_after = loadavg()
    log(f"load average after: {load_after}")

    n, w = args.instances, args.workers
    print(f"## Scale ({time.strftime('%Y-%m-%d %H:%M')}, {machine()})\n")
    print(f"{n} instances of `sleep 100000`; load average before {load_before}, after {load_after}.\n")
    rows = []
    for key, label in (("A", f"1 worker x {n}"), ("B", f"{w} workers x {n // w}")):
        r = results[key]
        rows.append(
            [
                label,
                fmt(r["all running"]),
                fmt(r["list"]["apm list"]["median"]),
                fmt(r["list"]["apm list --json"]["median"]),
                fmt(r["list"]["list request (daemon side, cold)"]["median"]),
                fmt(r["stop"]),
                r["state after start"],
            ]
        )
    for name, r in results.get("others", {}).items():
        (lst,) = r["list"].values()
        rows.append([f"{name}: {n} programs", fmt(r["all running"]), fmt(lst["median"]), "", "", fmt(r["stop"]), ""])
    print(
        table(
            [
                "shape",
                "start -> all running",
                "`apm list`",
                "`apm list --json`",
                "list request (daemon)",
                "stop",
                "daemon after start",
            ],
            rows,
        )
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"load_before": load_before, "load_after": load_after, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

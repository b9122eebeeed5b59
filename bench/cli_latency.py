"""CLI latency: `apm list` against a daemon with 50 workers, side by side with the floor and the others.

    python3 bench/cli_latency.py                # 40 timed runs of each command, 50 workers each
    python3 bench/cli_latency.py --runs 60 --workers 50 --json out.json

In ONE run, round-robin (so load spikes hit every command alike), after warm-up runs:

* `/usr/bin/python3 -c pass`                 the floor (interpreter start + site)
* `/usr/bin/python3 empty.pyz`               an empty stdlib zipapp (runpy + zipimport: any zipapp pays this)
* `/usr/bin/python3 apm list`                the installed way: the extraction (SHIV_ROOT, with .pyc) exists
* `/usr/bin/python3 apm list`, from the zip  no extraction anywhere: the CLI imports straight from the zip
* `supervisorctl status`                     supervisord 4.x, 50 programs, same /usr/bin/python3 (venv)
* `pm2 list`                                 PM2 (node), 50 apps
* `node -e 0`                                node's own floor, for scale

Then the daemon side of `apm list` (the request on the socket, no CLI start-up; "cold" = the first call
after > 0.5 s, when every worker's CPU/memory is sampled afresh), an `-X importtime` profile of the
installed `apm list`, and a check that the CLI imports neither the daemon, psutil nor argon2.

Target (issue 3): `apm list` within 3x the floor and faster than both supervisorctl and pm2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (
    DIST_APM,
    PY,
    Apm,
    Pm2,
    Supervisord,
    close_all,
    fmt,
    loadavg,
    log,
    machine,
    summary,
    table,
    time_commands,
)

FORBIDDEN = ("alter.daemon", "alter.supervise", "alter.linux", "alter.logs", "psutil", "argon2", "_cffi_backend")


def importtime(apm: Apm, env: Dict[str, str], runs: int = 7) -> List[Dict[str, Any]]:
    """`-X importtime` of `apm list`, `runs` times: per module the smallest self and cumulative time."""
    best: Dict[str, Dict[str, Any]] = {}
    for _ in range(runs):
        proc = subprocess.run(
            [PY, "-X", "importtime", apm.exe, "list"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )
        for line in proc.stderr.decode().splitlines():
            if not line.startswith("import time:") or "imported package" in line:
                continue
            self_us, cum_us, name = line[len("import time:") :].split("|")
            depth = (len(name) - len(name.lstrip()) - 1) // 2
            row = best.setdefault(name.strip(), {"module": name.strip(), "self_us": 1 << 60, "cum_us": 1 << 60})
            row["self_us"] = min(row["self_us"], int(self_us))
            row["cum_us"] = min(row["cum_us"], int(cum_us))
            row["depth"] = depth
    return list(best.values())


def daemon_side(apm: Apm, runs: int) -> Dict[str, Dict[str, float]]:
    warm = [apm.time_request("list") for _ in range(runs)]
    cold = []
    for _ in range(min(runs, 15)):
        time.sleep(0.6)  # older than the stats cache's max_age: every worker is sampled afresh
        cold.append(apm.time_request("list"))
    ping = [apm.time_request("ping") for _ in range(runs)]
    return {"ping": summary(ping), "list (warm)": summary(warm), "list (cold)": summary(cold)}


def empty_zipapp(tmp: str) -> str:
    path = os.path.join(tmp, "empty.pyz")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__main__.py", "pass\n")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=40, help="timed runs per command (default 40)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--workers", type=int, default=50)
    ap.add_argument("--no-others", action="store_true", help="skip supervisord and PM2")
    ap.add_argument("--json", help="also write the raw figures here")
    ap.add_argument("--apm", default=DIST_APM, help="the zipapp to measure (default: dist/apm)")
    ap.add_argument("--baseline", help="another apm build timed alongside (e.g. one built from an older commit)")
    args = ap.parse_args()

    load_before = loadavg()
    log(f"load average before: {load_before}")
    started: List[Any] = []
    tmp = tempfile.mkdtemp(prefix="apm-bench-cli-")
    try:
        apm = Apm("cli", args.apm)
        started.append(apm)
        apm.start()
        site = apm.check_installed()
        for i in range(1, args.workers + 1):
            apm.run_worker(f"w{i}")
        apm.wait_running(args.workers)
        log(f"apm: daemon pid {apm.pid}, {args.workers} workers, extraction {site}")
        commands: Dict[str, Dict[str, Any]] = {
            "python3 -c pass (floor)": {"argv": [PY, "-c", "pass"]},
            "python3 empty.pyz (empty zipapp)": {"argv": [PY, empty_zipapp(tmp)]},
            "apm list (installed)": {"argv": apm.argv("list"), "env": apm.env},
            "apm list (from the zip)": {"argv": apm.argv("list"), "env": apm.zip_env},
        }
        if args.baseline:
            base = Apm("cli-base", args.baseline)
            started.append(base)
            base.start()
            base.check_installed()
            for i in range(1, args.workers + 1):
                base.run_worker(f"w{i}")
            base.wait_running(args.workers)
            commands["apm list (installed), baseline build"] = {"argv": base.argv("list"), "env": base.env}
        if not args.no_others:
            sup = Supervisord("cli", args.workers)
            started.append(sup)
            sup.start()
            log(f"supervisord: pid {sup.pid}, {args.workers} programs")
            pm2 = Pm2("cli", args.workers)
            started.append(pm2)
            pm2.start_apps()
            log(f"pm2: daemon pid {pm2.pid}, {args.workers} apps")
            commands["supervisorctl status"] = {"argv": sup.ctl_argv("status")}
            commands["pm2 list"] = {"argv": pm2.argv("list"), "env": pm2.env}
            commands["node -e 0 (node's floor)"] = {"argv": ["node", "-e", "0"]}
        log(f"timing {len(commands)} commands x {args.runs} runs (+{args.warmup} warm-up each)")
        times = time_commands(commands, args.runs, args.warmup)
        stats = {label: summary(samples) for label, samples in times.items()}
        daemon = daemon_side(apm, args.runs)
        profile = importtime(apm, apm.env)
        zip_profile = importtime(apm, apm.zip_env)
    finally:
        close_all(started)
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = loadavg()
    log(f"load average after: {load_after}")

    floor = stats["python3 -c pass (floor)"]["median"]
    apm_med = stats["apm list (installed)"]["median"]
    print(f"## CLI latency ({time.strftime('%Y-%m-%d %H:%M')}, {machine()})\n")
    print(
        f"{args.workers} workers per manager, {args.runs} runs each (round-robin, after {args.warmup} warm-up); "
        f"load average before {load_before}, after {load_after}.\n"
    )
    rows = []
    for label, s in stats.items():
        rows.append(
            [
                f"`{label}`",
                fmt(s["median"]),
                fmt(s["p90"]),
                fmt(s["min"]),
                f"{s['median'] / floor:.2f}x",
                f"{s['median'] / apm_med:.2f}x",
            ]
        )
    print(table(["command", "median", "p90", "min", "/ floor", "/ apm list"], rows))
    print()
    print("Daemon side (one request on the control socket, no CLI start-up):\n")
    print(
        table(
            ["request", "median", "p90", "max"],
            [
                [k, fmt(v["median"], digits=2), fmt(v["p90"], digits=2), fmt(v["max"], digits=2)]
                for k, v in daemon.items()
            ],
        )
    )
    print()
    mods = [r["module"] for r in profile]
    bad = [m for m in mods if m.startswith(FORBIDDEN)]
    print(
        f"`apm list` imports {len(mods)} modules in all (interpreter start-up included); forbidden ones: "
        f"{', '.join(bad) if bad else 'none'}."
    )
    top = sorted((r for r in profile if r["depth"] == 0), key=lambda r: -r["cum_us"])[:12]
    print("\nTop-level imports of the installed `apm list` (-X importtime, cumulative, best of 7):\n")
    print(table(["module", "cumulative"], [[f"`{r['module']}`", fmt(r["cum_us"] / 1000, digits=2)] for r in top]))
    alter_zip = sum(r["self_us"] for r in zip_profile if r["module"].startswith("alter"))
    alter_inst = sum(r["self_us"] for r in profile if r["module"].startswith("alter"))
    print(
        f"\n`alter.*` modules, self time: {alter_inst / 1000:.1f} ms from the extraction (.pyc), "
        f"{alter_zip / 1000:.1f} ms from the zip (compiled on every run)."
    )
    target = 3 * floor
    verdict = [f"apm list {apm_med:.1f} ms vs 3x floor {target:.1f} ms: {'MET' if apm_med <= target else 'NOT met'}"]
    for other in ("supervisorctl status", "pm2 list"):
        if other in stats:
            o = stats[other]["median"]
            verdict.append(f"faster than {other} ({o:.1f} ms): {'yes' if apm_med < o else 'NO'}")
    print("\nTarget: " + "; ".join(verdict) + ".")
    if bad:
        print("FAIL: the CLI imported " + ", ".join(bad))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "load_before": load_before,
                    "load_after": load_after,
                    "commands": stats,
                    "daemon_side": daemon,
                    "samples": times,
                },
                f,
                indent=1,
            )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

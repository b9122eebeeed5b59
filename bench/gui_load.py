"""Web dashboard load: daemon CPU while N live dashboards watch W workers.

    python3 bench/gui_load.py                       # 500 workers, 5 dashboards, 60 s (the issue's target: < 5 %)
    python3 bench/gui_load.py --workers 100 --clients 2 --seconds 20 --churn 0

Phases, each measured as the daemon's CPU time (utime+stime from /proc) over wall time:

1. baseline  W `sleep` workers, GUI listening, no dashboard open (history sampling only);
2. watch     N dashboards, each one live stream (workers + stats + notifications, as the process list
             page opens it) and a ping every 30 s;
3. churn     one worker in 50 restarts every 5 s, first with no dashboard (the cost of the restarts
             themselves), then with the N dashboards open (state deltas and notifications flowing).

Every dashboard is a real HTTP client in a thread reading Server-Sent Events; they authenticate with an
API token.  The daemon is an isolated copy of dist/apm (bench/common.py).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sys
import threading
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Apm, cpu_seconds, fmt, loadavg, log, machine, rss_bytes, table


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dashboard(threading.Thread):
    """One page: a live stream read as fast as it comes, and a ping every 30 s."""

    def __init__(self, port: int, token: str, query: str) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.token = token
        self.query = query
        self.bytes = 0
        self.events: Dict[str, int] = {}
        self.first_snapshot_ms = None
        self.stop = threading.Event()
        self.error = ""

    def run(self) -> None:
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("GET", "/api/v1/stream" + self.query, headers={"Authorization": "Bearer " + self.token})
            resp = conn.getresponse()
            if resp.status != 200:
                self.error = f"HTTP {resp.status}: {resp.read()[:200]!r}"
                return
            last_ping = time.monotonic()
            while not self.stop.is_set():
                line = resp.readline()
                if not line:
                    self.error = "stream closed"
                    return
                self.bytes += len(line)
                if line.startswith(b"event: "):
                    kind = line[7:].strip().decode()
                    self.events[kind] = self.events.get(kind, 0) + 1
                    if kind == "snapshot" and self.first_snapshot_ms is None:
                        self.first_snapshot_ms = (time.perf_counter() - started) * 1000
                if time.monotonic() - last_ping > 30:
                    last_ping = time.monotonic()
                    ping(self.port, self.token)
        except OSError as exc:
            if not self.stop.is_set():
                self.error = str(exc)
        finally:
            conn.close()

    def reset(self) -> None:
        self.bytes = 0
        self.events = {}


def ping(port: int, token: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/api/v1/ping", headers={"Authorization": "Bearer " + token})
        conn.getresponse().read()
    finally:
        conn.close()


def measure(pid: int, seconds: float, during: Any = None) -> float:
    """Daemon CPU percent (of one core) over `seconds`; `during()` is called every second meanwhile."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        if during is not None:
            during()
    c1, t1 = cpu_seconds(pid), time.monotonic()
    assert c0 is not None and c1 is not None
    return (c1 - c0) / (t1 - t0) * 100.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=500)
    ap.add_argument("--clients", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the watch phase")
    ap.add_argument("--baseline", type=float, default=20.0, help="length of the no-dashboard phase")
    ap.add_argument("--churn", type=float, default=30.0, help="length of the churn phase (0 skips it)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = ap.parse_args()

    apm = Apm("gui")
    port = free_port()
    apm.env["APM_GUI_PORT"] = str(port)
    dashboards: List[Dashboard] = []
    results: Dict[str, Any] = {"machine": machine(), "workers": args.workers, "clients": args.clients}
    try:
        pid = apm.start()
        token = json.loads(apm.cli("token", "create", "--name", "bench", "--json"))["token"]
        log(f"daemon {pid}, GUI on 127.0.0.1:{port}; starting {args.workers} workers")
        for i in range(args.workers):
            apm.run_worker(f"w{i:04d}")
        apm.wait_running(args.workers, timeout=300)
        time.sleep(3)
        log(f"baseline: {args.workers} workers, no dashboard, {args.baseline:.0f} s (load {loadavg()})")
        results["baseline_cpu"] = measure(pid, args.baseline)
        victims = [f"w{i:04d}" for i in range(0, args.workers, 50)]
        tick = {"n": 0}

        def restart_some() -> None:
            tick["n"] += 1
            if tick["n"] % 5 == 0:
                for name in victims:
                    apm.request("restart", {"name": name})

        if args.churn > 0:
            log(f"churn alone: {len(victims)} workers restart every 5 s, {args.churn:.0f} s (load {loadavg()})")
            results["churn_alone_cpu"] = measure(pid, args.churn, restart_some)

        query = "?workers=1&stats=1&notify=1"
        dashboards = [Dashboard(port, token, query) for _ in range(args.clients)]
        for d in dashboards:
            d.start()
        time.sleep(3)
        for d in dashboards:
            d.reset()
        log(f"watch: {args.clients} dashboards, {args.seconds:.0f} s (load {loadavg()})")
        results["watch_cpu"] = measure(pid, args.seconds)
        results["watch_kb_s"] = sum(d.bytes for d in dashboards) / len(dashboards) / args.seconds / 1024
        results["watch_events"] = dashboards[0].events
        results["snapshot_ms"] = [round(d.first_snapshot_ms or -1, 1) for d in dashboards]

        if args.churn > 0:
            for d in dashboards:
                d.reset()
            tick["n"] = 0
            log(f"churn: {len(victims)} workers restart every 5 s, {args.churn:.0f} s (load {loadavg()})")
            results["churn_cpu"] = measure(pid, args.churn, restart_some)
            results["churn_kb_s"] = sum(d.bytes for d in dashboards) / len(dashboards) / args.churn / 1024
            results["churn_events"] = dashboards[0].events
        results["rss_mb"] = (rss_bytes(pid) or 0) / 1024 / 1024
        results["errors"] = [d.error for d in dashboards if d.error]
        results["load"] = loadavg()
    finally:
        for d in dashboards:
            d.stop.set()
        apm.close()

    rows = [["baseline (no dashboard)", fmt(results["baseline_cpu"], "%", 2), "-", "-"]]
    if "churn_alone_cpu" in results:
        rows.append(["churn, no dashboard", fmt(results["churn_alone_cpu"], "%", 2), "-", "-"])
    rows += [
        [
            f"{args.clients} dashboards",
            fmt(results["watch_cpu"], "%", 2),
            fmt(results["watch_kb_s"], "KB/s", 2),
            ", ".join(f"{k} {v}" for k, v in sorted(results["watch_events"].items())),
        ],
    ]
    if "churn_cpu" in results:
        rows.append(
            [
                f"{args.clients} dashboards + churn",
                fmt(results["churn_cpu"], "%", 2),
                fmt(results["churn_kb_s"], "KB/s", 2),
                ", ".join(f"{k} {v}" for k, v in sorted(results["churn_events"].items())),
            ]
        )
    print(f"{results['machine']}; {args.workers} workers; load {results['load']}")
    print(table(["scenario", "daemon CPU", "per dashboard", "events seen by one dashboard"], rows))
    print(f"first snapshot (ms): {results['snapshot_ms']}; daemon RSS {results['rss_mb']:.1f} MB")
    if results["errors"]:
        print("dashboard errors:", results["errors"])
    if args.json:
        print(json.dumps(results, indent=2))
    return 0 if not results["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Proxy benchmark: apm's proxy (the real daemon) against nginx, PM2 cluster mode and a direct connection.

    python3 build.py && python3 bench/proxy/run.py        # 10 s per case, 50 connections, 1 round
    python3 bench/proxy/run.py --duration 5 --rounds 2 --write-docs

A private apm daemon from dist/apm (its own APM_HOME, control socket and SHIV_ROOT, no GUI) loads an
apm.conf with one worker: bench/proxy/hello.js, `instances 2`, `server http://127.0.0.1:H,
tcp://127.0.0.1:T`, `rolling true`.  The two node instances listen on the PORT apm gives them; their
ports come from `apm info --json`, and every case but PM2 reaches THOSE two processes:
  direct      wrk -> one of the two instances
  apm http    wrk -> the daemon's proxy processes (one per CPU) -> both instances, round-robin per request
  nginx http  wrk -> nginx (2 workers, round-robin, upstream keepalive 64) -> both instances, configured to
              send what apm sends: the client's Host plus X-Forwarded-For, X-Real-IP, X-Forwarded-Proto and
              Forwarded (apm always adds them; without them nginx's instances parse 4 headers less per request,
              worth about 7% of node's throughput here, so the bare config is measured as its own row)
  nginx http bare   the same with nginx's defaults (no forwarding headers)
  pm2         wrk -> PM2 cluster mode, 2 instances of the same script (node's cluster module shares the port)
  apm tcp     wrk -> apm's tcp:// listener: kernel steering (BPF sk_lookup, tcp_steering on, the default) hands
              each new connection to one of the instances, round-robin; no proxy process touches the bytes
  apm tcp relayed    the same listener after `apm reload` with tcp_steering off: the proxy processes relay
              every byte (os.read/os.write, edge-triggered epoll), the path TLS/Vanguard/max_conns servers take
  nginx tcp   wrk -> nginx stream module -> both instances
then: proxy RSS per 1,000 idle keep-alive connections (apm and nginx), and wrk against apm while
`apm restart hello` (a rolling restart through the CLI: start new, wait until it accepts, drain old, stop
old, one instance at a time) runs, counting failed requests (socket errors + non-2xx: must be 0).

"proxy CPU µs/req" is utime+stime of the proxy processes (apm's proxy processes, nginx's workers) over the
timed run divided by the requests wrk completed: on a 2-core machine where wrk, node and the proxy share
the CPUs, that is what decides throughput, and it is far less noisy than req/s on a shared machine.

Needs wrk, nginx (+ libnginx-mod-stream) and node; PM2 comes from bench/common.py's private prefix (skipped
if it cannot be installed).  Loopback only, every run bounded, everything started is stopped in `finally:`.
With --write-docs the "## Proxy" section of docs/benchmarks.md is replaced (other sections untouched).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from common import (  # noqa: E402
    Apm,
    ensure_pm2,
    loadavg,
    log,
    machine,
    raise_nofile,
    rss_bytes,
    table,
    wait_until,
)

HELLO = os.path.join(HERE, "hello.js")
BARE = "nginx http bare (no X-Forwarded-*)"  # nginx's defaults: the instances get fewer headers to parse
RELAYED = "apm tcp relayed (tcp_steering off)"  # the same listener with every byte through the proxy processes
NGINX_CONF = """
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 8192; use epoll; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  upstream app {{ server 127.0.0.1:{p1}; server 127.0.0.1:{p2}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{http} reuseport;
    location / {{
      proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header Forwarded "for=$remote_addr;proto=$scheme";
    }}
  }}
  server {{
    listen 127.0.0.1:{http_bare} reuseport;
    location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
stream {{
  upstream app_tcp {{ server 127.0.0.1:{p1}; server 127.0.0.1:{p2}; }}
  server {{ listen 127.0.0.1:{tcp} reuseport; proxy_pass app_tcp; }}
}}
"""


# --------------------------------------------------------------------------- helpers


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing accepts on port {port}")


def to_ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(port: int, duration: float, connections: int, threads: int = 2) -> Dict[str, Any]:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=duration + 60,
    ).stdout  # fmt: skip
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": int(total.group(1)) if total else 0,
        "p50": _percentile(out, "50"),
        "p99": _percentile(out, "99"),
        "errors": errors + (int(non2xx.group(1)) if non2xx else 0),
        "raw": out,
    }


def _percentile(out: str, q: str) -> float:
    m = re.search(rf"^\s+{q}%\s+(\S+)$", out, re.M)  # a line of wrk's "Latency Distribution"
    return to_ms(m.group(1)) if m else float("nan")


def cpu_ticks(pids: List[int]) -> Tuple[float, float]:
    """(utime, stime) seconds summed over pids."""
    user = system = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            user += int(parts[11])
            system += int(parts[12])
        except OSError:
            pass
    tck = os.sysconf("SC_CLK_TCK")
    return user / tck, system / tck


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_workers(master: int) -> List[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def idle_connections_rss(port: int, pids: List[int], count: int = 1000) -> float:
    """KiB of proxy RSS per `count` idle keep-alive connections (each served one request first)."""
    before = sum(rss_bytes(p) or 0 for p in pids)
    conns = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            conns.append(s)
        for s in conns:
            buf = b""
            while b"hello world\n" not in buf:
                data = s.recv(4096)
                if not data:
                    raise RuntimeError("connection closed during the idle-connection test")
                buf += data
        time.sleep(0.5)
        after = sum(rss_bytes(p) or 0 for p in pids)
    finally:
        for s in conns:
            s.close()
    return (after - before) / 1024.0


# --------------------------------------------------------------------------- the run


APM_CONF = """
worker hello {{
    cmd       node {hello};
    instances 2;
    server    http://127.0.0.1:{http}, tcp://127.0.0.1:{tcp};
    rolling   true;
    rolling_delay 200;
    tcp_steering {steer};
}}
"""


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="apm-bench-proxy-")
        self.apm: Optional[Apm] = None
        self.nginx_pid: Optional[int] = None
        self.pm2: Optional[List[str]] = None
        self.pm2_env: Dict[str, str] = {}
        self.conf = os.path.join(self.tmp, "apm.conf")
        self.ports: Dict[str, int] = {}
        self.steer = True

    def info(self) -> Dict[str, Any]:
        assert self.apm is not None
        return dict(json.loads(self.apm.cli("info", "hello", "--json")))

    def upstream_ports(self) -> List[int]:
        """Ports of the running instances once the proxy has admitted both (live), else []."""
        info = self.info()
        ports = [int(i["port"]) for i in info.get("instances", []) if i.get("status") == "running" and i.get("port")]
        ups = (info.get("proxy") or {}).get("upstreams", {})
        live = {int(u["port"]) for u in ups.values() if u.get("state") == "live"}
        return sorted(ports) if len(ports) == 2 and set(ports) <= live else []

    def proxy_pids(self) -> List[int]:
        procs = (self.info().get("proxy") or {}).get("processes", [])
        return [int(p["pid"]) for p in procs if p.get("pid")]

    def start(self) -> Dict[str, int]:
        ports = {"apm_http": free_port(), "apm_tcp": free_port()}
        # apm: the real daemon from dist/apm, private home and socket, no GUI
        self.apm = apm = Apm("proxy")
        apm.env["APM_GUI_PORT"] = "0"
        apm.cli("daemon", "--detach", timeout=60)
        with open(os.path.join(apm.home, "state", "apm.pid")) as f:
            apm.pid = int(f.read().strip())
        self.ports = ports
        self.write_conf(True)
        apm.cli("load", self.conf)
        p1, p2 = wait_until(self.upstream_ports, 30, 0.1, "both hello instances admitted by the proxy")
        ports["p1"], ports["p2"] = p1, p2
        wait_port(ports["apm_http"])
        # nginx, in front of the same two instances
        ports["nginx_http"], ports["nginx_http_bare"], ports["nginx_tcp"] = free_port(), free_port(), free_port()
        nconf = os.path.join(self.tmp, "nginx.conf")
        with open(nconf, "w") as f:
            f.write(NGINX_CONF.format(tmp=self.tmp, p1=p1, p2=p2, http=ports["nginx_http"],
                                      http_bare=ports["nginx_http_bare"], tcp=ports["nginx_tcp"]))  # fmt: skip
        subprocess.run(
            ["nginx", "-e", os.path.join(self.tmp, "nginx-error.log"), "-c", nconf, "-p", self.tmp], check=True
        )
        wait_port(ports["nginx_http"])
        with open(os.path.join(self.tmp, "nginx.pid")) as f:
            self.nginx_pid = int(f.read())
        # pm2 cluster mode (its own two processes: PM2's cluster module cannot front other programs)
        try:
            pm2 = ensure_pm2()
            ports["pm2"] = free_port()
            self.pm2_env = dict(os.environ, PM2_HOME=os.path.join(self.tmp, "pm2"), PORT=str(ports["pm2"]))
            self.pm2 = [pm2]
            subprocess.run([pm2, "start", HELLO, "-i", "2", "--name", "hello"], env=self.pm2_env, check=True,
                           stdout=subprocess.DEVNULL, timeout=120)  # fmt: skip
            wait_port(ports["pm2"], 30)
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
            log(f"PM2 unavailable, skipped: {exc}")
            self.pm2 = None
            ports.pop("pm2", None)
        return ports

    def write_conf(self, steer: bool) -> None:
        with open(self.conf, "w") as f:
            f.write(APM_CONF.format(hello=HELLO, http=self.ports["apm_http"], tcp=self.ports["apm_tcp"],
                                    steer="on" if steer else "off"))  # fmt: skip

    def steering(self, on: bool) -> None:
        """tcp_steering on/off for the tcp:// server, applied live by `apm reload` (same two instances)."""
        if on == self.steer:
            return
        assert self.apm is not None
        self.write_conf(on)
        self.apm.cli("reload", self.conf)
        want = 2 if on else 0
        wait_until(lambda: all(s.get("instances") == want for s in (self.info().get("proxy") or {})
                               .get("steering", {}).values()), 15, 0.1, f"tcp steering {'on' if on else 'off'}")  # fmt: skip
        self.steer = on

    def close(self) -> None:
        if self.pm2:
            subprocess.run(self.pm2 + ["kill"], env=self.pm2_env, capture_output=True, timeout=60)
        if self.nginx_pid:
            try:
                os.kill(self.nginx_pid, signal.SIGQUIT)
            except ProcessLookupError:
                pass
        if self.apm is not None:
            self.apm.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def rolling(self, port: int) -> Dict[str, Any]:
        """wrk against apm while `apm restart hello` replaces both instances one at a time (as often as the
        run allows); returns wrk's figures plus the number of rolling restarts completed."""
        assert self.apm is not None
        result: Dict[str, Any] = {}
        runner = threading.Thread(target=lambda: result.update(wrk(port, self.args.duration, self.args.connections)))
        runner.start()
        time.sleep(1.0)
        restarts = 0
        deadline = time.monotonic() + self.args.duration - 1.0
        try:
            while restarts < 3:
                before = self.upstream_ports()
                self.apm.cli("restart", "hello", timeout=120)  # returns once the rolling restart is done
                wait_until(lambda b=before: (lambda p: p and not set(p) & set(b))(self.upstream_ports()), 30, 0.1,
                           "both new instances live")  # fmt: skip
                restarts += 1
                if time.monotonic() + 3.0 > deadline:
                    break
        finally:
            runner.join()
        if time.monotonic() > deadline + 1.5:
            log("warning: the restarts outlasted the wrk run: raise --duration for a fully covered restart")
        result["restarts"] = restarts
        return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=1, help="repeat the throughput cases, report medians")
    ap.add_argument("--cases", default="", help="comma-separated subset, e.g. 'apm http,nginx http' (quick checks)")
    ap.add_argument("--write-docs", action="store_true", help="replace the Proxy section of docs/benchmarks.md")
    args = ap.parse_args()
    for tool in ("wrk", "nginx", "node"):
        if not shutil.which(tool):
            print(f"{tool} is missing: apt-get install -y wrk nginx libnginx-mod-stream nodejs", file=sys.stderr)
            return 2
    raise_nofile(65536)
    bench = Bench(args)
    load_before = loadavg()
    only = {c.strip() for c in args.cases.split(",") if c.strip()}
    mem_apm = mem_ngx = float("nan")
    roll: Dict[str, Any] = {}
    try:
        ports = bench.start()
        apm_pids = bench.proxy_pids()
        ngx_pids = nginx_workers(bench.nginx_pid or 0)
        log(f"instances on ports {ports['p1']} and {ports['p2']}; apm proxy pids {apm_pids}, nginx workers {ngx_pids}")
        cases: List[Tuple[str, str, List[int]]] = [
            ("direct (1 instance)", "p1", []),
            ("apm http", "apm_http", apm_pids),
            ("nginx http", "nginx_http", ngx_pids),
            (BARE, "nginx_http_bare", ngx_pids),
            ("pm2 cluster (2)", "pm2", []),
            ("apm tcp", "apm_tcp", apm_pids),
            ("nginx tcp (stream)", "nginx_tcp", ngx_pids),
            (RELAYED, "apm_tcp", apm_pids),
        ]
        results: Dict[str, List[Dict[str, Any]]] = {}
        for rnd in range(args.rounds):
            # Every other round runs the cases in reverse order: on a shared VM the machine's speed drifts
            # over minutes, and ABBA ordering keeps that drift from favouring whichever case runs first.
            for name, key, pids in cases if rnd % 2 == 0 else cases[::-1]:
                if key not in ports or (only and name not in only):
                    continue
                bench.steering(name != RELAYED)
                wrk(ports[key], 2.0, args.connections)  # warm-up: connections, pools, JIT
                u0, s0 = cpu_ticks(pids)
                r = wrk(ports[key], args.duration, args.connections)
                u1, s1 = cpu_ticks(pids)
                n = r["requests"]
                r["cpu_us"] = 1e6 * (u1 - u0 + s1 - s0) / n if pids and n else None
                r["cpu_split"] = (1e6 * (u1 - u0) / n, 1e6 * (s1 - s0) / n) if pids and n else None
                results.setdefault(name, []).append(r)
                split = r["cpu_split"]
                log(
                    f"round {rnd + 1} {name}: {r['rps']:.0f} req/s p50 {r['p50']:.2f} ms p99 {r['p99']:.2f} ms "
                    f"errors {r['errors']}"
                    + (
                        f"; proxy CPU {r['cpu_us']:.1f} µs/req (user {split[0]:.1f} sys {split[1]:.1f})"
                        if split
                        else ""
                    )
                )
        med = {
            name: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99")}
            for name, rs in results.items()
        }
        for name, rs in results.items():
            med[name]["errors"] = sum(r["errors"] for r in rs)
            # Paired ratios: each round's figure against the reference's in the same round (adjacent in
            # time), then the median over rounds -- the machine's drift cancels out of each pair.
            ref = results.get(reference(name), [])
            for key in ("rps", "p99"):
                pairs = [r[key] / q[key] for r, q in zip(rs, ref) if q[key]]
                med[name]["vs_" + key] = statistics.median(pairs) if pairs else None
            cpus = [r["cpu_us"] for r in rs if r.get("cpu_us")]
            med[name]["cpu_us"] = statistics.median(cpus) if cpus else None
        if not only or "memory" in only:
            log("idle keep-alive connections")
            mem_apm = idle_connections_rss(ports["apm_http"], apm_pids)
            mem_ngx = idle_connections_rss(ports["nginx_http"], ngx_pids)
        if not only or "rolling" in only:
            log("rolling restart under load (apm restart hello)")
            roll = bench.rolling(ports["apm_http"])
            log(
                f"rolling: {roll.get('restarts')} restart(s), {roll.get('rps', 0):.0f} req/s, errors {roll.get('errors')}"
            )
    finally:
        bench.close()
    report = render(med, mem_apm, mem_ngx, roll, args, load_before)
    print(report)
    if args.write_docs:
        write_docs(report)
    return 0


def reference(name: str) -> str:
    return "nginx tcp (stream)" if "tcp" in name else "nginx http"


def render(med: Dict[str, Dict[str, Any]], mem_apm: float, mem_ngx: float, roll: Dict[str, Any],
           args: argparse.Namespace, load_before: str) -> str:  # fmt: skip
    def ratio(name: str, key: str) -> str:
        value = med[name].get("vs_" + key)
        return f"{value:.2f}x" if value else ""

    rows = []
    for name in med:
        cpu = med[name].get("cpu_us")
        rows.append([
            name, f"{med[name]['rps']:,.0f}", f"{med[name]['p50']:.2f}", f"{med[name]['p99']:.2f}",
            ratio(name, "rps"), ratio(name, "p99"), f"{cpu:.1f}" if cpu else "", str(med[name]["errors"]),
        ])  # fmt: skip
    head = ["case", "req/s", "p50 ms", "p99 ms", "req/s vs nginx", "p99 vs nginx", "proxy CPU µs/req", "errors"]
    return "\n".join([
        f"Run {time.strftime('%Y-%m-%d %H:%M')}: {machine()}; load average before the run {load_before}, after "
        f"{loadavg()}. wrk -t2 -c{args.connections} -d{args.duration:g}s (after a 2 s warm-up), {args.rounds} round(s), "
        "medians (every other round runs the cases in reverse order; the ratios are medians of each round's "
        "ratio to nginx in that round); the same two node hello-world instances (run by apm) behind apm, nginx "
        "and the direct case; "
        f"apm's daemon from dist/apm with {os.cpu_count()} proxy processes.",
        "",
        table(head, rows),
        "",
        table(["idle keep-alive connections", "proxy RSS growth"],
              [["apm, 1,000 connections", f"{mem_apm:,.0f} KiB ({mem_apm / 1000:.1f} KiB each)"],
               ["nginx, 1,000 connections", f"{mem_ngx:,.0f} KiB ({mem_ngx / 1000:.1f} KiB each)"]]),
        "",
        table(["rolling restart under load (apm http)", "value"],
              [["`apm restart hello` runs (each replaces both instances: start new, wait for accept, drain old, "
                "stop old)", str(roll.get("restarts", 0))],
               ["req/s during the restarts", f"{roll.get('rps', 0):,.0f}"],
               ["p99 ms", f"{roll.get('p99', float('nan')):.2f}"],
               ["failed requests (socket errors + non-2xx)", str(roll.get("errors", "n/a"))]]),
    ])  # fmt: skip


def write_docs(report: str) -> None:
    path = os.path.join(ROOT, "docs", "benchmarks.md")
    text = "# Benchmarks\n"
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    section = "## Proxy\n\n_(bench/proxy/run.py)_\n\n" + report + "\n\n"
    m = re.search(r"^## Proxy\n.*?(?=^## |\Z)", text, re.S | re.M)
    text = text[: m.start()] + section + text[m.end() :] if m else text.rstrip() + "\n\n" + section
    with open(path, "w") as f:
        f.write(text.rstrip() + "\n")
    log(f"updated {path}")


if __name__ == "__main__":
    sys.exit(main())

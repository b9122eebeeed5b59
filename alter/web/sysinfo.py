"""Server Info: host facts (psutil, platform, /proc), host load for the status bar, TCP latency probes.

Nothing here touches daemon state, so the HTTP threads call it directly
(never the loop).  Probes run in their own daemon threads with a hard
deadline: an air-gapped host answers "unreachable" or "timeout" in about
two seconds instead of hanging the page.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

PROBE_TIMEOUT = 2.0
PROBE_CACHE = 10.0


def _psutil() -> Any:
    from alter.native import ensure_native

    ensure_native()
    import psutil

    return psutil


def _os_release() -> Dict[str, str]:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                out: Dict[str, str] = {}
                for line in f:
                    key, sep, value = line.strip().partition("=")
                    if sep:
                        out[key] = value.strip().strip('"').strip("'")
                return out
        except OSError:
            continue
    return {}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_info() -> Dict[str, Any]:
    ps = _psutil()
    freq = None
    try:
        f = ps.cpu_freq()
        if f is not None:
            freq = {"current_mhz": round(f.current, 1), "min_mhz": round(f.min, 1), "max_mhz": round(f.max, 1)}
    except Exception:
        freq = None
    vm = ps.virtual_memory()
    swap = ps.swap_memory()
    rel = _os_release()
    boot = ps.boot_time()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "hostname": socket.gethostname(),
        "cpu": {
            "model": _cpu_model(),
            "threads": ps.cpu_count(logical=True),
            "cores": ps.cpu_count(logical=False),
            "speed": freq,
        },
        "memory": {
            "total": vm.total,
            "available": vm.available,
            "used": vm.total - vm.available,
            "percent": vm.percent,
        },
        "swap": {"total": swap.total, "used": swap.used, "percent": swap.percent},
        "os": {
            "name": rel.get("PRETTY_NAME") or rel.get("NAME") or platform.system(),
            "id": rel.get("ID"),
            "version": rel.get("VERSION_ID"),
        },
        "kernel": platform.release(),
        "arch": platform.machine(),
        "boot_time": boot,
        "uptime": round(time.time() - boot, 1),
        "load": load,
        "network": network_interfaces(ps),
        "python": sys.version.split()[0],
    }


def network_interfaces(ps: Any = None) -> List[Dict[str, Any]]:
    ps = ps or _psutil()
    addrs = ps.net_if_addrs()
    stats = ps.net_if_stats()
    io = ps.net_io_counters(pernic=True)
    link = getattr(ps, "AF_LINK", None)
    out = []
    for name in sorted(addrs):
        entry: Dict[str, Any] = {"name": name, "addresses": [], "mac": None}
        for a in addrs[name]:
            if a.family == link:
                entry["mac"] = a.address
            elif a.family in (socket.AF_INET, socket.AF_INET6):
                entry["addresses"].append(
                    {
                        "family": "ipv4" if a.family == socket.AF_INET else "ipv6",
                        "address": a.address.split("%", 1)[0],
                        "netmask": a.netmask,
                    }
                )
        st = stats.get(name)
        entry["up"] = bool(st.isup) if st else None
        entry["speed_mbps"] = st.speed if st and st.speed else None
        entry["mtu"] = st.mtu if st else None
        counters = io.get(name)
        entry["rx_bytes"] = counters.bytes_recv if counters else None
        entry["tx_bytes"] = counters.bytes_sent if counters else None
        out.append(entry)
    return out


class HostLoad:
    """Host CPU% since this object's previous call (its own baseline, unlike psutil.cpu_percent's global
    one) and memory, for the status bar and the stream."""

    def __init__(self) -> None:
        self._ps: Any = None
        self._prev: Optional[Tuple[float, float]] = None  # (busy, total) seconds

    def _cpu(self) -> float:
        t = self._ps.cpu_times()
        idle = t.idle + getattr(t, "iowait", 0.0)
        total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)  # guest time is in user already
        busy = total - idle
        prev, self._prev = self._prev, (busy, total)
        if prev is None or total <= prev[1]:
            return 0.0
        return max(0.0, min(100.0, (busy - prev[0]) / (total - prev[1]) * 100.0))

    def sample(self) -> Dict[str, Any]:
        if self._ps is None:
            self._ps = _psutil()
            self._cpu()  # baseline
        vm = self._ps.virtual_memory()
        return {
            "cpu": round(self._cpu(), 1),
            "memory": {"total": vm.total, "used": vm.total - vm.available, "percent": vm.percent},
        }


# ---------------------------------------------------------------------------------------------- latency


def parse_target(target: str) -> Tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


def probe(target: str, timeout: float = PROBE_TIMEOUT) -> Dict[str, Any]:
    """TCP connect time to host:port in ms, or why not."""
    result: Dict[str, Any] = {"target": target, "ok": False, "ms": None, "error": None}
    try:
        host, port = parse_target(target)
    except ValueError:
        result["error"] = "bad target"
        return result
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            result["ms"] = round((time.monotonic() - start) * 1000, 2)
            result["ok"] = True
    except socket.timeout:
        result["error"] = "timeout"
    except socket.gaierror:
        result["error"] = "unreachable (name does not resolve)"
    except OSError as exc:
        result["error"] = f"unreachable ({exc.strerror or exc})"
    return result


class Prober:
    """Probes all targets in parallel; answers within `timeout` + a little; caches for 10 s."""

    def __init__(self, timeout: float = PROBE_TIMEOUT) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._cache: Optional[Tuple[float, Tuple[str, ...], List[Dict[str, Any]]]] = None

    def run(self, targets: List[str]) -> List[Dict[str, Any]]:
        key = tuple(targets)
        with self._lock:
            if self._cache and self._cache[1] == key and time.monotonic() - self._cache[0] < PROBE_CACHE:
                return [dict(r) for r in self._cache[2]]
        results: List[Optional[Dict[str, Any]]] = [None] * len(targets)

        def one(i: int, target: str) -> None:
            results[i] = probe(target, self.timeout)

        threads = [
            threading.Thread(target=one, args=(i, t), daemon=True, name="apm-probe") for i, t in enumerate(targets)
        ]
        for th in threads:
            th.start()
        deadline = time.monotonic() + self.timeout + 0.5
        for th in threads:
            th.join(max(0.0, deadline - time.monotonic()))
        out = [
            r if r is not None else {"target": t, "ok": False, "ms": None, "error": "timeout"}
            for r, t in zip(results, targets)
        ]
        with self._lock:
            self._cache = (time.monotonic(), key, out)
        return [dict(r) for r in out]

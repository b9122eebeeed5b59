"""Summing per-process proxy counters into one worker view, and Vanguard summary lines."""

from __future__ import annotations

from typing import Any, Dict, List

_SUMS = ("conns_active", "conns_total", "requests", "tls_errors", "upstream_errors", "refused")
_UPSTREAM_SUMS = ("active", "inflight", "tunnels", "idle", "requests", "failures")


def merge_stats(snaps: List[Dict[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {k: 0 for k in _SUMS}
    status: Dict[str, int] = {}
    upstreams: Dict[str, Dict[str, Any]] = {}
    listeners: Dict[str, Dict[str, int]] = {}
    vg: Dict[str, Any] = {}
    for snap in snaps:
        for k in _SUMS:
            out[k] += int(snap.get(k, 0))
        for code, n in snap.get("status", {}).items():
            status[code] = status.get(code, 0) + n
        for key, u in snap.get("upstreams", {}).items():
            agg = upstreams.setdefault(key, {"index": u["index"], "host": u["host"], "port": u["port"],
                                             **{k: 0 for k in _UPSTREAM_SUMS}})  # fmt: skip
            for k in _UPSTREAM_SUMS:
                agg[k] += int(u.get(k, 0))
        for lid, info in snap.get("listeners", {}).items():
            agg_l = listeners.setdefault(lid, {"active": 0, "total": 0})
            agg_l["active"] += info.get("active", 0)
            agg_l["total"] += info.get("total", 0)
        v = snap.get("vanguard")
        if v:
            if not vg:
                vg = {"blocked": {}, "blocked_total": 0, "bans": [], "bans_total": 0, "tracked_ips": 0}
            for reason, n in v.get("blocked", {}).items():
                vg["blocked"][reason] = vg["blocked"].get(reason, 0) + n
            vg["blocked_total"] += v.get("blocked_total", 0)
            vg["bans_total"] += v.get("bans_total", 0)
            vg["tracked_ips"] += v.get("tracked_ips", 0)
            vg["bans"].extend(v.get("bans", []))
    if vg:
        best: Dict[str, int] = {}
        for ip, remaining in vg["bans"]:
            best[ip] = max(best.get(ip, 0), remaining)
        vg["bans"] = [[ip, ms] for ip, ms in sorted(best.items(), key=lambda kv: -kv[1])][:1000]
    out["status"] = dict(sorted(status.items()))
    out["upstreams"] = upstreams
    out["listeners"] = listeners
    out["vanguard"] = vg or None
    return out


def summary_line(before: Dict[str, int], after: Dict[str, int], interval: int) -> str:
    """`vanguard: in last 60s, 412 events (rate_limit 400, ban_path 12)`; "" for a silent interval."""
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    delta = {k: v for k, v in delta.items() if v > 0}
    total = sum(delta.values())
    if total <= 0:
        return ""
    parts = ", ".join(f"{k} {v}" for k, v in sorted(delta.items(), key=lambda kv: -kv[1]))
    return f"vanguard: in last {interval}s, {total} events ({parts})"

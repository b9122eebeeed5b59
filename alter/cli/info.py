"""`apm info`: a worker's live state per instance and every option, by section."""

from __future__ import annotations

import json

from alter.cli.render import (
    STATUS_STYLE,
    Style,
    human_bytes,
    human_cpu,
    human_delay,
    human_duration,
    restarts_text,
    table,
)

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import Any, Dict, List

    from alter.cli.render import Cell


def _origin(origin: Any) -> str:
    if not isinstance(origin, dict):
        return str(origin) if origin else "-"
    kind = str(origin.get("kind") or "?")
    file = origin.get("file")
    label = {"cli": "apm run", "gui": "the GUI", "file": "config file", "api": "the HTTP API"}.get(kind, kind)
    return f"{label} {file}" if file else label


def last_exit_text(last: Any, now: float) -> str:
    if not isinstance(last, dict):
        return "-"
    if last.get("signal"):
        text = f"signal {last['signal']}"
    else:
        text = f"code {last.get('code')}"
    if isinstance(last.get("runtime_ms"), (int, float)):
        text += f" after {human_duration(last['runtime_ms'] / 1000.0) if last['runtime_ms'] >= 1000 else str(int(last['runtime_ms'])) + 'ms'}"
    if isinstance(last.get("at"), (int, float)):
        text += f", {human_duration(max(now - last['at'], 0))} ago"
    return text


def next_start_text(at: Any, now: float) -> str:
    if not isinstance(at, (int, float)) or isinstance(at, bool):
        return "-"
    delta = at - now
    return f"in {human_delay(delta)}" if delta > 0 else "now"


def instance_rows(instances: List[Dict[str, Any]], style: Style, now: float) -> List[str]:
    with_port = any(i.get("port") for i in instances)
    headers = ["#", "PID", "STATUS", "UPTIME", "CPU", "MEM", "RESTARTS", "LAST EXIT", "NEXT START"]
    if with_port:
        headers.insert(3, "PORT")
    rows: List[List[Cell]] = []
    for inst in instances:
        running = bool(inst.get("pid"))
        status = str(inst.get("status", "?"))
        row: List[Cell] = [
            (str(inst.get("index", "?")), ()),
            (str(inst.get("pid") or "-"), ()),
            (status, (STATUS_STYLE.get(status, ""),)),
            (human_duration(inst.get("uptime")) if running else "-", ()),
            (human_cpu(inst.get("cpu")) if running else "-", ()),
            (human_bytes(inst.get("memory")) if running else "-", ()),
            (restarts_text(inst.get("restarts")), ()),
            (last_exit_text(inst.get("last_exit"), now), ()),
            (next_start_text(inst.get("next_start_at"), now), ()),
        ]
        if with_port:
            row.insert(3, (str(inst.get("port") or "-"), ()))
        rows.append(row)
    right = (4, 5, 6) if not with_port else (5, 6, 7)
    return table(headers, rows, style, right=right, indent="  ")


def format_option_value(option: Any, value: Any) -> str:
    """Canonical value -> text for humans (durations in ms, sizes like 256M)."""
    if value is None or value == [] or value == "":
        return "-"
    if option is None:
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    kind = option.kind.name
    if kind == "BOOL":
        return "true" if value else "false"
    if kind == "DURATION" and isinstance(value, (int, float)):
        return f"{int(value)} ms"
    if kind == "SIZE" and isinstance(value, int):
        from alter.config.options import format_size

        return format_size(value)
    if kind in ("LIST", "INTLIST") and isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def option_lines(status: Dict[str, Any], style: Style) -> List[str]:
    from alter.config.options import WORKER_OPTIONS_LIST

    config = status.get("config") if isinstance(status.get("config"), dict) else {}
    effective = status.get("options") if isinstance(status.get("options"), dict) else None
    values: Dict[str, Any] = {}
    for declared in WORKER_OPTIONS_LIST:
        if declared.name != "cmd":
            values[declared.name] = declared.default
    if effective:
        values.update(effective)
    values.update(config or {})
    for key in ("name", "namespace"):  # known from the status even when not set explicitly
        if key in values and values[key] in (None, "") and status.get(key):
            values[key] = status[key]
    known = {o.name: o for o in WORKER_OPTIONS_LIST}
    sections: Dict[str, List[str]] = {}
    for name in values:
        found = known.get(name)
        sections.setdefault(found.section if found else "Other", []).append(name)
    width = max((len(n) for n in values), default=0)
    lines = [style("Options", "bold") + ("" if style.enabled else "  (default) marks values nobody set")]
    for section, names in sections.items():
        lines.append("  " + style(section, "cyan"))
        for name in names:
            text = format_option_value(known.get(name), values[name])
            is_default = name not in (config or {})
            if is_default:
                shown = (
                    style(f"{name.ljust(width)}  {text}", "dim")
                    if style.enabled
                    else f"{name.ljust(width)}  {text}  (default)"
                )
            else:
                shown = f"{name.ljust(width)}  {text}"
            lines.append("    " + shown)
    return lines


def render_info(status: Dict[str, Any], style: Style, now: float) -> List[str]:
    name = str(status.get("name", "?"))
    wanted = status.get("instances_wanted", 0)
    head = (
        f"{style(name, 'bold')}  {style.status(str(status.get('status', '?')))}  "
        f"{status.get('instances_running', 0)}/{wanted} instance{'' if wanted == 1 else 's'}"
    )
    restarts: Dict[str, Any] = status["restarts"] if isinstance(status.get("restarts"), dict) else {}
    facts = [
        ("namespace", str(status.get("namespace", "default"))),
        ("origin", _origin(status.get("origin"))),
        ("enabled", "yes" if status.get("enabled", True) else "no"),
        ("restarts", f"{restarts.get('clean', 0)} clean, {restarts.get('error', 0)} error"),
    ]
    lines = [head]
    lines.extend(f"  {style(k.ljust(9), 'dim')}  {v}" for k, v in facts)
    instances = [i for i in status.get("instances") or [] if isinstance(i, dict)]
    lines.append("")
    lines.append(style("Instances", "bold"))
    if instances:
        lines.extend(instance_rows(instances, style, now))
    else:
        lines.append("  (none running)")
    proxy = status.get("proxy")
    if isinstance(proxy, dict):
        lines.append("")
        lines.extend(proxy_lines(proxy, style))
    logs = status.get("logs")
    if isinstance(logs, dict):
        lines.append("")
        lines.extend(log_lines(logs, style))
    events = status.get("history")
    if isinstance(events, list) and events:
        lines.append("")
        lines.extend(history_lines(events, style, now))
    lines.append("")
    lines.extend(option_lines(status, style))
    return lines


def history_lines(events: List[Any], style: Style, now: float) -> List[str]:
    """The last few lifecycle events (the `history` command), newest first."""
    colour = {"crash": "red", "failed": "red", "backoff": "yellow", "restart": "yellow", "start": "green"}
    lines = [style("Recent events", "bold")]
    for e in events:
        if not isinstance(e, dict):
            continue
        kind = str(e.get("kind", "?"))
        when = e.get("time")
        ago = f"{human_duration(max(now - when, 0))} ago" if isinstance(when, (int, float)) else "-"
        parts = [f"#{e.get('instance', '?')}"]
        if e.get("pid"):
            parts.append(f"pid {e['pid']}")
        if e.get("signal"):
            parts.append(f"signal {e['signal']}")
        elif e.get("exit_code") is not None:
            parts.append(f"code {e['exit_code']}")
        if isinstance(e.get("uptime"), (int, float)):
            parts.append(f"after {human_duration(e['uptime'])}")
        if isinstance(e.get("delay"), (int, float)):
            parts.append(f"in {human_delay(e['delay'])}")
        if e.get("reason") and e.get("reason") != kind:
            parts.append(f"({e['reason']})")
        lines.append(f"  {style(ago.rjust(9), 'dim')}  {style(kind.ljust(7), colour.get(kind, ''))}  {' '.join(parts)}")
    return lines


def proxy_lines(proxy: Dict[str, Any], style: Style, shown: int = 5) -> List[str]:
    """The "Proxy" block: listeners, traffic, status codes, upstreams, Vanguard (counters <= 1 s old)."""

    def fact(key: str, text: str) -> str:
        return f"  {style(key.ljust(9), 'dim')}  {text}"

    codes = ", ".join(f"{code}: {n}" for code, n in (proxy.get("status") or {}).items())
    lines = [style("Proxy", "bold")]
    lines.append(fact("listeners", ", ".join(proxy.get("listeners_configured") or []) or "-"))
    for listener, steer in sorted((proxy.get("steering") or {}).items()):
        if isinstance(steer, dict):
            how = (f"kernel steering to {steer.get('instances', 0)} instance(s)" if steer.get("kernel")
                   else f"proxy processes ({steer.get('why_not') or 'no kernel steering'})")  # fmt: skip
            lines.append(fact("tcp", f"{listener}: {how}"))
    lines.append(
        fact(
            "traffic",
            f"requests {proxy.get('requests', 0)}" + (f" ({codes})" if codes else "")
            + f", connections {proxy.get('conns_active', 0)} open / {proxy.get('conns_total', 0)} total",
        )
    )  # fmt: skip
    errors = {k: proxy.get(k) or 0 for k in ("upstream_errors", "refused", "tls_errors")}
    if any(errors.values()):
        lines.append(fact("errors", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in errors.items())))
    ups = sorted((u for u in (proxy.get("upstreams") or {}).values() if isinstance(u, dict)),
                 key=lambda u: (u.get("index", 0), u.get("port", 0)))  # fmt: skip
    for n, u in enumerate(ups):
        text = (
            f"#{int(u.get('index', 0)) + 1} {u.get('host')}:{u.get('port')} {u.get('state', '?')}, "
            f"requests {u.get('requests', 0)}, in flight {u.get('inflight', 0)}, failures {u.get('failures', 0)}"
        )
        if "steered" in u:
            text += f", steered connections {u.get('steered', 0)}"
        lines.append(fact("upstreams" if n == 0 else "", text))
    vg = proxy.get("vanguard")
    if isinstance(vg, dict):
        blocked = ", ".join(f"{k} {v}" for k, v in sorted((vg.get("blocked") or {}).items(), key=lambda kv: -kv[1]))
        text = f"{vg.get('blocked_total', 0)} blocked" + (f" ({blocked})" if blocked else "")
        bans = [b for b in vg.get("bans") or [] if isinstance(b, list) and len(b) == 2]
        text += f", {len(bans)} banned IP{'' if len(bans) == 1 else 's'}"
        lines.append(fact("vanguard", text))
        for ip, ms in bans[:shown]:
            lines.append(f"    {ip}  {human_delay(ms / 1000.0)} left")
        if len(bans) > shown:
            lines.append(f"    ... {len(bans) - shown} more")
    procs = [p for p in proxy.get("processes") or [] if isinstance(p, dict)]
    if procs:
        restarts = sum(int(p.get("restarts") or 0) for p in procs)
        pids = ", ".join(str(p.get("pid")) for p in procs)
        lines.append(fact("processes", f"{len(procs)} (pids {pids}), {restarts} restarts"))
    return lines


def log_lines(logs: Dict[str, Any], style: Style, shown: int = 8) -> List[str]:
    """The "Logs" block: files (newest first, with sizes), the current error, losses, syslog."""
    lines = [style("Logs", "bold")]
    files = [f for f in logs.get("files") or [] if isinstance(f, dict)]
    total = sum(f.get("size") or 0 for f in files)
    if files:
        lines.append(f"  {style('files'.ljust(9), 'dim')}  {len(files)}, {human_bytes(total)} (newest first)")
        for f in list(reversed(files))[:shown]:
            lines.append(f"    {f.get('path')}  {human_bytes(f.get('size'))}")
        if len(files) > shown:
            lines.append(f"    ... {len(files) - shown} older")
    else:
        lines.append(f"  {style('files'.ljust(9), 'dim')}  none yet ({logs.get('out') or '-'})")
    if logs.get("err") and logs.get("err") != logs.get("out"):
        lines.append(f"  {style('err_log'.ljust(9), 'dim')}  {logs.get('err')}")
    if logs.get("error"):
        lines.append(f"  {style('error'.ljust(9), 'dim')}  {style(str(logs['error']), 'red')}")
    if logs.get("dropped_lines"):
        lines.append(
            f"  {style('lost'.ljust(9), 'dim')}  {logs['dropped_lines']} lines ({human_bytes(logs.get('dropped_bytes'))})"
            " could not be written"
        )
    syslog = logs.get("syslog")
    if isinstance(syslog, dict):
        text = (
            f"{syslog.get('dest')}: sent {syslog.get('sent', 0)}, queued {syslog.get('queued', 0)}, "
            f"dropped {syslog.get('dropped', 0)}"
        )
        if syslog.get("error"):
            text += "; " + style(f"error: {syslog['error']}", "red")
        lines.append(f"  {style('syslog'.ljust(9), 'dim')}  {text}")
    return lines

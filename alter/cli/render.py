"""Turning daemon replies into text: colours, human units, aligned tables.

Pure functions of their inputs (the clock and the terminal width are
parameters), so the golden tests in tests/unit/test_cli_render.py pin the
exact output.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import IO, Any, Dict, List, Mapping, Optional, Sequence, Tuple

    Cell = Tuple[str, Tuple[str, ...]]  # (text, styles)


RESET = "\x1b[0m"
CODES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "cyan": "36",
    "gray": "90",
}

STATUS_STYLE = {
    "running": "green",
    "partial": "yellow",
    "starting": "yellow",
    "waiting": "yellow",
    "backoff": "yellow",
    "stopping": "yellow",
    "errored": "red",
    "failed": "red",
    "stopped": "gray",
    "exited": "gray",
    "disabled": "dim",
}


def color_wanted(stream: Any, env: Mapping[str, str], flag: Optional[bool] = None) -> bool:
    """--color/--no-color, then APM_COLOR=1/0, then NO_COLOR (any value), then: is it a tty?"""
    if flag is not None:
        return flag
    forced = env.get("APM_COLOR", "")
    if forced:
        return forced.lower() not in ("0", "false", "no", "off", "never")
    if "NO_COLOR" in env or env.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Style:
    """Wraps text in ANSI codes when enabled; a no-op otherwise."""

    def __init__(self, enabled: bool, unicode: bool = True) -> None:
        self.enabled = enabled
        self.unicode = unicode

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not text:
            return text
        codes = ";".join(CODES[s] for s in styles if s in CODES)
        return f"\x1b[{codes}m{text}{RESET}" if codes else text

    def status(self, status: str) -> str:
        return self(status, STATUS_STYLE.get(status, ""))

    @property
    def ellipsis(self) -> str:
        return "…" if self.unicode else "~"

    @property
    def rule_char(self) -> str:
        return "─" if self.unicode else "-"


def supports_unicode(stream: IO[str]) -> bool:
    encoding = (getattr(stream, "encoding", "") or "").lower().replace("-", "")
    return encoding in ("utf8", "utf_8")


def terminal_width(stream: Any, env: Mapping[str, str]) -> Optional[int]:
    """Columns to fit in: $COLUMNS, else the tty's width; None (no limit) when piped."""
    cols = env.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return int(cols)
    try:
        if stream.isatty():
            columns = os.get_terminal_size(stream.fileno()).columns
            return columns if columns > 0 else None  # a tty that reports 0 columns: width unknown
    except (AttributeError, OSError, ValueError):
        pass
    return None


# --------------------------------------------------------------------------- human units


def human_bytes(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        return "-"
    if value < 1024:
        return f"{int(value)}B"
    for unit in ("K", "M", "G", "T"):
        value /= 1024.0
        if value < 1024 or unit == "T":
            return f"{value:.1f}{unit}"
    return "-"  # pragma: no cover


def human_duration(seconds: Any) -> str:
    """45s, 3m12s, 5m, 2h5m, 4d3h."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        big, small = f"{s // 60}m", f"{s % 60}s"
    elif s < 86400:
        big, small = f"{s // 3600}h", f"{s % 3600 // 60}m"
    else:
        big, small = f"{s // 86400}d", f"{s % 86400 // 3600}h"
    return big if small[0] == "0" else big + small


def human_delay(seconds: float) -> str:
    """Short relative time for "next restart in 1.5s"."""
    if seconds < 10:
        return f"{max(seconds, 0):.1f}s"
    return human_duration(seconds)


def human_ms(ms: Any) -> str:
    if not isinstance(ms, (int, float)) or isinstance(ms, bool):
        return "-"
    return f"{int(ms)} ms" if ms < 10000 else human_duration(ms / 1000.0)


def human_cpu(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    return f"{value:.1f}%"


def abbreviate_pids(pids: Sequence[int], keep: int = 2) -> str:
    if not pids:
        return "-"
    shown = ",".join(str(p) for p in pids[:keep])
    return shown + (f",+{len(pids) - keep}" if len(pids) > keep else "")


def restarts_text(restarts: Any) -> str:
    if not isinstance(restarts, dict):
        return "-"
    return f"{restarts.get('clean', 0)}/{restarts.get('error', 0)}"


# --------------------------------------------------------------------------- tables


def _truncate(text: str, width: int, ellipsis: str) -> str:
    if len(text) <= width:
        return text
    return text[: max(width - len(ellipsis), 0)] + ellipsis if width > len(ellipsis) else text[:width]


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    style: Style,
    right: Sequence[int] = (),
    shrink: Sequence[Tuple[int, int]] = (),
    drop: Sequence[int] = (),
    width: Optional[int] = None,
    indent: str = "",
) -> List[str]:
    """Aligned columns, widths from content.  When wider than `width`, the `shrink`
    (column, minimum) pairs give way in order, then the `drop` columns go."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, (text, _) in enumerate(row):
            widths[i] = max(widths[i], len(text))
    keep = list(range(len(headers)))
    if width is not None:
        excess = len(indent) + sum(widths) + 2 * (len(widths) - 1) - width
        for column, minimum in shrink:
            if excess <= 0:
                break
            give = min(excess, max(widths[column] - minimum, 0))
            widths[column] -= give
            excess -= give
        for column in drop:
            if excess <= 0:
                break
            keep.remove(column)
            excess -= widths[column] + 2
    lines = []
    cut = {i: _truncate(headers[i], widths[i], style.ellipsis) for i in keep}
    head = "  ".join(cut[i].ljust(widths[i]) if i not in right else cut[i].rjust(widths[i]) for i in keep)
    lines.append(indent + style(head.rstrip(), "bold") if style.enabled else indent + head.rstrip())
    for row in rows:
        parts = []
        for i in keep:
            text, styles = row[i]
            text = _truncate(text, widths[i], style.ellipsis)
            pad = widths[i] - len(text)
            painted = style(text, *styles)
            if i in right:
                parts.append(" " * pad + painted)
            else:
                parts.append(painted + ("" if i == keep[-1] else " " * pad))
        lines.append((indent + "  ".join(parts)).rstrip())
    return lines


# --------------------------------------------------------------------------- list


def worker_pids(worker: Dict[str, Any]) -> List[int]:
    return [i["pid"] for i in worker.get("instances") or [] if isinstance(i, dict) and isinstance(i.get("pid"), int)]


def _sum(instances: List[Dict[str, Any]], key: str) -> Optional[float]:
    values = [i.get(key) for i in instances if isinstance(i.get(key), (int, float)) and i.get("pid")]
    return sum(values) if values else None  # type: ignore[arg-type]


def _worker_uptime(instances: List[Dict[str, Any]]) -> Optional[float]:
    """The youngest running instance's uptime: a recent restart shows."""
    values = [i["uptime"] for i in instances if isinstance(i.get("uptime"), (int, float)) and i.get("pid")]
    return min(values) if values else None


def render_list(workers: List[Dict[str, Any]], style: Style, width: Optional[int] = None) -> List[str]:
    if not workers:
        return [
            "No workers yet.",
            f"Start one with {style('apm run <cmd>', 'bold')}, e.g. apm run node server.js --name web --instances 2",
        ]
    headers = ["NAME", "NAMESPACE", "STATUS", "INST", "PID", "CPU", "MEM", "UPTIME", "RESTARTS"]
    rows: List[List[Cell]] = []
    for w in workers:
        instances = [i for i in w.get("instances") or [] if isinstance(i, dict)]
        status = str(w.get("status", "?"))
        rows.append(
            [
                (str(w.get("name", "?")), ("bold",)),
                (str(w.get("namespace", "default")), ("dim",) if w.get("namespace", "default") == "default" else ()),
                (status, (STATUS_STYLE.get(status, ""),)),
                (f"{w.get('instances_running', 0)}/{w.get('instances_wanted', 0)}", ()),
                (abbreviate_pids(worker_pids(w)), ()),
                (human_cpu(_sum(instances, "cpu")), ()),
                (human_bytes(_sum(instances, "memory")), ()),
                (human_duration(_worker_uptime(instances)), ()),
                (restarts_text(w.get("restarts")), ()),
            ]
        )
    return table(
        headers, rows, style, right=(5, 6), shrink=((0, 12), (4, 9), (0, 8), (4, 6)), drop=(1, 8, 7), width=width
    )


# --------------------------------------------------------------------------- status line


def summary(worker: Dict[str, Any], style: Style) -> str:
    """`api running 2/2 instances (pid 4242, 4243)`."""
    status = str(worker.get("status", "?"))
    pids = worker_pids(worker)
    pid_text = f" (pid {', '.join(str(p) for p in pids[:8])}{', ...' if len(pids) > 8 else ''})" if pids else ""
    wanted = worker.get("instances_wanted", 0)
    return (
        f"{style(str(worker.get('name', '?')), 'bold')} {style.status(status)} "
        f"{worker.get('instances_running', 0)}/{wanted} instance{'' if wanted == 1 else 's'}{pid_text}"
    )


def render_env(env: Dict[str, Any]) -> List[str]:
    return [f"{key}={env[key]}" for key in sorted(env)]


# --------------------------------------------------------------------------- start failure


def render_start_failed(name: str, detail: Dict[str, Any], style: Style, width: int = 62) -> List[str]:
    """The augur block: what died, its stderr between rules, the hints."""
    instance = detail.get("instance")
    who = f"{name}#{instance}" if instance is not None else name
    bits = []
    if detail.get("signal"):
        bits.append(f"killed by {detail['signal']}")
    elif detail.get("exit_code") is not None:
        bits.append(f"exit {detail['exit_code']}")
    if isinstance(detail.get("runtime_ms"), (int, float)):
        bits.append(f"{int(detail['runtime_ms'])} ms")
    lines = [f" {style(who, 'bold')} failed during startup" + (f" ({', '.join(bits)})" if bits else "")]
    stderr = detail.get("stderr")
    if isinstance(stderr, str) and stderr.strip():
        rule = style.rule_char
        title = f"{rule}{rule} child stderr "
        lines.append(style(title + rule * max(width - len(title), 4), "dim"))
        lines.extend(stderr[:8192].rstrip("\n").splitlines())
        lines.append(style(rule * width, "dim"))
    for hint in detail.get("hints") or []:
        lines.append("   " + style(str(hint), "yellow"))
    return lines

"""Handlers of the log commands: `apm log`, `apm flush`, `apm alerts`, `apm events` (`apm grep`: grepcmd.py).

Imported only when one of them runs (logcmds.py wraps them), so the rest of
the CLI does not pay for it.  The daemon does the work (docs/protocol.md, "Log
commands"); these functions turn its streamed events into text.  Colours come
from the daemon: the CLI asks for them (`color: true`) when its stdout is a
colour terminal, and gets every escape dropped otherwise.
"""

from __future__ import annotations

import time

from alter.cli.context import Ctx
from alter.cli.flags import Parsed
from alter.cli.handlers import split_target
from alter.errors import NotFound, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Tuple

RESET = "\x1b[0m"
MAX_LINES = 100_000
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


# --------------------------------------------------------------------------- helpers


def whole_number(raw: Any, flag: str, low: int, high: int, what: str) -> int:
    text = str(raw).strip()
    if not (text.isdigit() or (text.startswith("-") and text[1:].isdigit())):
        raise UsageError(f"{flag} {raw}: expected a whole number", hint=f"{flag} N: {what}")
    value = int(text)
    if not low <= value <= high:
        raise UsageError(f"{flag} {raw}: must be between {low} and {high}", hint=f"{flag} N: {what}")
    return value


def parse_since(raw: str, now: float) -> float:
    """`--since`: 10m / 2h30m / 45s ago, an ISO date or time (local unless it says otherwise), epoch seconds."""
    import re

    text = raw.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        value = float(text)
        if value >= 1e9:
            return value
        raise UsageError(
            f"--since {raw}: a bare number is read as epoch seconds and this one is too small",
            hint="add a unit for a duration: --since 10m (s, m, h, d, w)",
        )
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", text)
    if parts and "".join(n + u for n, u in parts) == text.replace(" ", ""):
        return now - sum(float(n) * _UNITS[u] for n, u in parts)
    from datetime import datetime, timedelta

    if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?", text):
        clock = [float(x) for x in text.split(":")]
        today = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
        at = today + timedelta(hours=clock[0], minutes=clock[1], seconds=clock[2] if len(clock) > 2 else 0)
        if at.timestamp() > now + 60:
            at -= timedelta(days=1)  # 23:50 said at 00:10 means yesterday evening
        return at.timestamp()
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise UsageError(
            f"--since {raw!r}: not a duration, a time or a date",
            hint="e.g. --since 10m, --since 2h, --since 14:05, --since '2026-11-21 14:05', or epoch seconds",
        ) from None
    return parsed.timestamp()


def _events(ctx: Ctx, cmd: str, args: Dict[str, Any], follow: bool) -> Iterator[Tuple[str, Any]]:
    """(kind, data) of each streamed event, then ("result", result)."""
    gen = ctx.client(timeout=None if follow else -1.0).stream(cmd, args, timeout=None if follow else -1.0)
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            yield "result", stop.value
            return
        yield event["event"], event["data"]


def _note(ctx: Ctx, data: Any) -> None:
    message = data.get("message") if isinstance(data, dict) else None
    if message:
        ctx.err.write(ctx.err_style(f"apm: {message}", "dim") + "\n")
        ctx.err.flush()


# --------------------------------------------------------------------------- apm log


def cmd_log(ctx: Ctx, p: Parsed) -> int:
    targets = list(p.positionals)
    for target in targets:
        split_target(target)  # name or name#N
    if p.flag("err") and p.flag("out"):
        raise UsageError("--err and --out together: give one of them, or neither for both streams")
    stream = "err" if p.flag("err") else "out" if p.flag("out") else None
    follow = not p.flag("no_follow")
    color = ctx.style.enabled and not ctx.json
    args: Dict[str, Any] = {"targets": targets, "follow": follow, "stream": stream, "color": color}
    if p.flag("lines") is not None:
        args["n"] = whole_number(p.flag("lines"), "-n", 0, MAX_LINES, "how many past lines to show first")
    if p.flag("since") is not None:
        args["since"] = parse_since(str(p.flag("since")), time.time())
    if ctx.json:
        import json

        dump = json.dumps
    out = ctx.out
    try:
        for kind, data in _events(ctx, "log", args, follow):
            if kind == "lines" and isinstance(data, dict):
                lines = data.get("lines") or []
                if ctx.json:
                    out.write("".join(dump(line, ensure_ascii=False) + "\n" for line in lines))
                else:
                    out.write("".join(_line_text(line, color) for line in lines))
                out.flush()
            elif kind in ("notice", "skipped"):
                _note(ctx, data)
    except KeyboardInterrupt:
        return 0  # Ctrl+C is how following ends
    return 0


def _line_text(line: Dict[str, Any], color: bool) -> str:
    text = str(line.get("text", ""))
    if color and "\x1b" in text:
        text += RESET  # the child's colours must not bleed into the next line
    return f"{line.get('head', '')}{text}\n"


# --------------------------------------------------------------------------- apm grep


def cmd_flush(ctx: Ctx, p: Parsed) -> int:
    result = ctx.call("flush", {"name": p.positionals[0]})
    if ctx.json:
        ctx.emit_json(result)
        return 0
    names = result.get("flushed", []) if isinstance(result, dict) else []
    if len(names) == 1:
        ctx.print(f"flushed the logs of {ctx.style(str(names[0]), 'bold')}")
    else:
        ctx.print(f"flushed the logs of {len(names)} workers" + (": " + ", ".join(map(str, names)) if names else ""))
    return 0


# --------------------------------------------------------------------------- apm alerts


ALERT_ACTIONS = ("list", "set", "rm", "enable", "disable")


def cmd_alerts(ctx: Ctx, p: Parsed) -> int:
    words = list(p.positionals)
    action = words.pop(0) if words else "list"
    if action not in ALERT_ACTIONS:
        raise UsageError(
            f"apm alerts: unknown action {action!r}", hint="apm alerts [list | set | rm | enable | disable]"
        )
    if action == "list":
        if words:
            raise UsageError(f"apm alerts list takes no arguments, got {words[0]!r}")
        result = ctx.call("alerts.list")
        alerts = result.get("alerts", []) if isinstance(result, dict) else []
        if ctx.json:
            ctx.emit_json(result)
        else:
            ctx.lines(render_alerts(alerts, ctx.style))
        return 0
    if not words:
        raise UsageError(f"apm alerts {action} needs an alert name", hint="see them with `apm alerts`")
    name = words.pop(0)
    alerts = list((ctx.call("alerts.list") or {}).get("alerts") or [])
    found = [a for a in alerts if a.get("name") == name]
    if action == "set":
        if len(words) != 1:
            raise UsageError(
                "apm alerts set needs a name and one regular expression",
                hint="apm alerts set errors 'ERROR|FATAL' --cooldown 60s (quote the regex)",
            )
        spec: Dict[str, Any] = dict(found[0]) if found else {"name": name, "enabled": True}
        spec["pattern"] = words[0]
        if p.flag("cooldown") is not None:
            from alter.config.options import parse_duration

            try:
                spec["cooldown_ms"] = parse_duration(p.flag("cooldown"))
            except ValueError as exc:
                raise UsageError(f"--cooldown {p.flag('cooldown')}: {exc}", hint="milliseconds, or 30s / 5m") from None
        if p.flag("ignore_case"):
            spec["ignore_case"] = True
        if p.flag("channel") is not None:
            spec["channel"] = p.flag("channel")
        alerts = [spec if a.get("name") == name else a for a in alerts] if found else alerts + [spec]
    else:
        if words:
            raise UsageError(f"unexpected argument {words[0]!r} for `apm alerts {action}`")
        if not found:
            names = ", ".join(str(a.get("name")) for a in alerts) or "none yet"
            raise NotFound(f"no log alert named {name!r}", hint=f"alerts: {names}")
        if action == "rm":
            alerts = [a for a in alerts if a.get("name") != name]
        else:
            alerts = [dict(a, enabled=action == "enable") if a.get("name") == name else a for a in alerts]
    result = ctx.call("alerts.set", {"alerts": alerts})
    if ctx.json:
        ctx.emit_json(result)
    else:
        ctx.lines(render_alerts(result.get("alerts", []) if isinstance(result, dict) else [], ctx.style))
    return 0


def render_alerts(alerts: List[Dict[str, Any]], style: Any) -> List[str]:
    if not alerts:
        return ["no log alerts; add one: apm alerts set errors 'ERROR|FATAL' --cooldown 60s"]
    from alter.cli.render import human_ms, table

    rows = []
    for a in alerts:
        enabled = bool(a.get("enabled", True))
        flags = "i" if a.get("ignore_case") else ""
        rows.append(
            [
                (str(a.get("name", "")), ("bold",)),
                (str(a.get("pattern", "")) + (f"  ({flags})" if flags else ""), ()),
                (human_ms(a.get("cooldown_ms")), ()),
                ("yes" if enabled else "no", ("green",) if enabled else ("dim",)),
                (str(a.get("channel", "app")), ()),
            ]
        )
    return table(["NAME", "PATTERN", "COOLDOWN", "ENABLED", "CHANNEL"], rows, style)


# --------------------------------------------------------------------------- apm events


def cmd_events(ctx: Ctx, p: Parsed) -> int:
    kinds = [k for value in p.flag("kind", []) for k in str(value).split(",") if k]
    args: Dict[str, Any] = {"follow": not p.flag("no_follow")}
    if kinds:
        args["kinds"] = kinds
    if p.flag("lines") is not None:
        args["n"] = whole_number(p.flag("lines"), "-n", 0, 500, "how many recent events to show first")
    follow = bool(args["follow"])
    if ctx.json:
        import json
    try:
        for kind, data in _events(ctx, "events", args, follow):
            items = [data] if kind == "event" else (data or {}).get("events", []) if kind == "result" else []
            for item in items:
                if not isinstance(item, dict):
                    continue
                if ctx.json:
                    ctx.out.write(json.dumps(item, ensure_ascii=False) + "\n")
                else:
                    ctx.out.write(event_text(item, ctx.style) + "\n")
            ctx.out.flush()
    except KeyboardInterrupt:
        return 0
    return 0


def event_text(item: Dict[str, Any], style: Any) -> str:
    """`14:05:09  log.alert       api#2  [errors] ERROR: connection refused`."""
    kind = str(item.get("kind", "?"))
    raw = item.get("data")
    data: Dict[str, Any] = raw if isinstance(raw, dict) else {}
    ts = item.get("ts")
    when = time.strftime("%H:%M:%S", time.localtime(ts)) if isinstance(ts, (int, float)) else "--:--:--"
    who = str(data.get("worker", ""))
    number = data.get("instance", data.get("index"))
    if who and isinstance(number, int) and number > 0:
        who += f"#{number}"
    arrow = "→" if style.unicode else "->"
    color = ""
    if kind == "log.alert":
        text, color = f"[{data.get('name')}] {data.get('line', '')}", "yellow"
    elif kind == "log.error":
        text, color = str(data.get("error", "")), "red"
    elif kind == "log.resumed":
        text = str(data.get("message", ""))
    elif kind in ("worker.state", "instance.state"):
        new = str(data.get("status", data.get("state", "?")))
        text = f"{data.get('old', '?')} {arrow} {style.status(new)}"
        if data.get("pid"):
            text += f" (pid {data['pid']})"
    elif kind in ("instance.exit", "instance.crash"):
        how = f"signal {data['signal']}" if data.get("signal") else f"code {data.get('code')}"
        text = f"pid {data.get('pid')} exited: {how} after {data.get('runtime_ms')} ms" + (
            " (out of memory)" if data.get("oom") else ""
        )
        color = "red" if kind == "instance.crash" else ""
    elif kind == "instance.start":
        text = f"started pid {data.get('pid')} (attempt {data.get('attempt')})"
    elif kind == "instance.failed":
        text, color = str(data.get("error", "")), "red"
    elif kind == "worker.renamed":
        text = f"renamed from {data.get('old')}"
    else:
        rest = {k: v for k, v in data.items() if k not in ("worker", "instance", "index")}
        text = " ".join(f"{k}={v}" for k, v in rest.items())
    return f"{style(when, 'dim')}  {style(kind.ljust(15), color) if color else kind.ljust(15)}  {who.ljust(12)}  {text}"

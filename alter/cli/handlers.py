"""Handlers of the process and inspection commands (one function per command).

A handler takes (ctx, parsed) and returns the exit code; failures raise
alter.errors.* and main() prints them.
"""

from __future__ import annotations

import os
import time

from alter.cli.context import Ctx
from alter.cli.flags import Parsed
from alter.cli.render import render_env, render_list, render_start_failed, summary
from alter.errors import ApmError, StartFailed, UsageError

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional


# --------------------------------------------------------------------------- helpers


def progress_printer(ctx: Ctx) -> Callable[[str, Any], None]:
    """Prints the daemon's progress/state events as they stream in."""

    def on_event(kind: str, data: Any) -> None:
        if isinstance(data, dict) and data.get("message"):
            ctx.progress("  " + ctx.style(str(data["message"]), "dim"))
        elif kind == "state" and isinstance(data, dict):
            who = str(data.get("name", ""))
            if data.get("instance") is not None:
                who += f"#{data['instance']}"
            ctx.progress(f"  {who}: {ctx.style.status(str(data.get('status', '?')))}")
        elif isinstance(data, str):
            ctx.progress("  " + data)

    return on_event


def waiting_call(ctx: Ctx, cmd: str, args: Dict[str, Any], name: str, wait: bool) -> Any:
    """run/start/restart/update: stream progress; on StartFailed show what the child said."""
    try:
        return ctx.call(cmd, args, timeout=None if wait else -1.0, on_event=progress_printer(ctx) if wait else None)
    except StartFailed as err:
        detail = err.detail
        if isinstance(detail, dict):
            s = ctx.err_style
            for line in render_start_failed(str(detail.get("name") or name), detail, s):
                ctx.eprint(line)
        raise


def show_status(ctx: Ctx, result: Any, prefix: str = "") -> int:
    if ctx.json:
        ctx.emit_json(result)
    elif isinstance(result, dict):
        ctx.print(prefix + summary(result, ctx.style))
    return 0


def split_target(target: str) -> tuple:
    """`api#2` -> ("api", 2); `api` -> ("api", None).  Instances are numbered from 1."""
    name, sep, index = target.partition("#")
    if not sep:
        return target, None
    if not name or not index.isdigit() or int(index) < 1:
        raise UsageError(
            f"{target!r} is not a worker or instance name",
            hint="write name or name#N, where instances are numbered from 1 (api#1, api#2, ...)",
        )
    return name, int(index)


def default_name(exec_: str) -> str:
    base = exec_.rstrip("/").rsplit("/", 1)[-1] or "worker"
    return "".join(c if c.isalnum() or c in "_.@-" else "_" for c in base)


def current_dir() -> str:
    try:
        return os.getcwd()
    except OSError:
        raise UsageError(
            "the current directory no longer exists", hint="cd somewhere that exists, or pass --path"
        ) from None


# --------------------------------------------------------------------------- process commands


def cmd_run(ctx: Ctx, p: Parsed) -> int:
    config = dict(p.options)
    words: List[str] = p.positionals + p.program
    if "exec" not in config:
        if not words:
            raise UsageError(
                "apm run needs a program to run",
                hint="apm run <exec> [args...] [flags], e.g. apm run node server.js --name web --instances 2",
            )
        config["exec"], words = words[0], words[1:]
    if words:
        config["params"] = list(config.get("params") or []) + words
    cwd = current_dir()
    config.setdefault("path", cwd)
    wait = not p.flag("no_wait")
    name = str(config.get("name") or default_name(str(config["exec"])))
    if wait and not ctx.json:
        ctx.progress(f"Starting {ctx.style(name, 'bold')}")
    result = waiting_call(ctx, "run", {"config": config, "cwd": cwd, "wait": wait}, name, wait)
    return show_status(ctx, result)


def _start_like(cmd: str, verb: str) -> Callable[[Ctx, Parsed], int]:
    def handler(ctx: Ctx, p: Parsed) -> int:
        name = p.positionals[0]
        wait = not p.flag("no_wait")
        if wait and not ctx.json:
            ctx.progress(f"{verb} {ctx.style(name, 'bold')}")
        result = waiting_call(ctx, cmd, {"name": name, "wait": wait}, name, wait)
        return show_status(ctx, result)

    handler.__name__ = f"cmd_{cmd}"
    return handler


cmd_start = _start_like("start", "Starting")
cmd_restart = _start_like("restart", "Restarting")


def cmd_stop(ctx: Ctx, p: Parsed) -> int:
    return show_status(ctx, ctx.call("stop", {"name": p.positionals[0]}))


def cmd_update(ctx: Ctx, p: Parsed) -> int:
    name = p.positionals[0]
    config: Dict[str, Any] = dict(p.options)
    if p.program:
        config["params"] = list(p.program)
    for option in p.flag("unset", []):
        from alter.config.options import lookup

        try:
            config[lookup(option).name] = None
        except Exception as exc:  # ConfigError with a suggestion
            raise UsageError(
                f"--unset {option}: {getattr(exc, 'message', exc)}", hint=getattr(exc, "hint", "")
            ) from None
    if not config:
        raise UsageError(
            f"nothing to update for {name}: give at least one option flag",
            hint=f"e.g. apm update {name} --instances 4 (`apm help update` lists them)",
        )
    restart = not p.flag("no_restart")
    wait = restart and not p.flag("no_wait")
    args = {"name": name, "config": config, "restart": restart, "wait": wait}
    result = waiting_call(ctx, "update", args, name, wait)
    if not restart and not ctx.json:
        ctx.print(f"updated {ctx.style(name, 'bold')} (not restarted: the change applies at the next restart)")
        return 0
    return show_status(ctx, result, prefix="updated: ")


def cmd_list(ctx: Ctx, p: Parsed) -> int:
    result = ctx.call("list")
    if ctx.json:
        ctx.emit_json(result)
        return 0
    workers = result.get("workers") if isinstance(result, dict) else None
    ctx.lines(render_list([w for w in workers or [] if isinstance(w, dict)], ctx.style, ctx.width))
    return 0


def cmd_remove(ctx: Ctx, p: Parsed) -> int:
    name = p.positionals[0]
    result = ctx.call("remove", {"name": name})
    if ctx.json:
        ctx.emit_json(result)
    else:
        ctx.print(f"removed {ctx.style(name, 'bold')}")
    return 0


def cmd_stopall(ctx: Ctx, p: Parsed) -> int:
    result = ctx.call("stopall")
    if ctx.json:
        ctx.emit_json(result)
        return 0
    stopped = result.get("stopped") if isinstance(result, dict) else []
    if stopped:
        ctx.print(f"stopped {len(stopped)} worker{'s' if len(stopped) != 1 else ''}: {', '.join(map(str, stopped))}")
    else:
        ctx.print("no worker was running")
    return 0


def cmd_rename(ctx: Ctx, p: Parsed) -> int:
    old, new = p.positionals[0], p.positionals[1]
    result = ctx.call("rename", {"name": old, "new": new})
    arrow = "→" if ctx.style.unicode else "->"
    return show_status(ctx, result, prefix=f"renamed {old} {arrow} ")


def cmd_copy(ctx: Ctx, p: Parsed) -> int:
    old, new = p.positionals[0], p.positionals[1]
    result = ctx.call("copy", {"name": old, "new": new})
    return show_status(ctx, result, prefix=f"copied {old}: ")


# --------------------------------------------------------------------------- inspection


def cmd_info(ctx: Ctx, p: Parsed) -> int:
    history = None
    if not ctx.json:
        try:  # the last few lifecycle events; an older daemon has no `history`: leave them out
            history = ctx.call("history", {"name": p.positionals[0], "limit": 5}).get("events")
        except (ApmError, AttributeError):
            pass
    result = ctx.call("info", {"name": p.positionals[0]})
    if ctx.json:
        ctx.emit_json(result)
        return 0
    from alter.cli.info import render_info

    if isinstance(result, dict) and history:
        result["history"] = history
    ctx.lines(render_info(result if isinstance(result, dict) else {}, ctx.style, time.time()))
    return 0


def cmd_env(ctx: Ctx, p: Parsed) -> int:
    name, index = split_target(p.positionals[0])
    args: Dict[str, Any] = {"name": name}
    if index is not None:
        args["index"] = index
    result = ctx.call("env", args)
    if ctx.json:
        ctx.emit_json(result)
        return 0
    env = result.get("env") if isinstance(result, dict) else None
    ctx.lines(render_env(env if isinstance(env, dict) else {}))
    return 0


def cmd_wait(ctx: Ctx, p: Parsed) -> int:
    name = p.positionals[0]
    timeout_ms: Optional[int] = None
    if p.flag("timeout") is not None:
        from alter.config.options import parse_duration

        raw = p.flag("timeout")
        try:
            timeout_ms = parse_duration(raw)
        except ValueError as exc:
            raise UsageError(f"--timeout {raw}: {exc}", hint="milliseconds, or 30s / 5m") from None
    args: Dict[str, Any] = {"name": name}
    if timeout_ms is not None:
        args["timeout"] = timeout_ms
    socket_timeout = (timeout_ms if timeout_ms is not None else 30000) / 1000.0 + 10.0
    on_event = progress_printer(ctx)
    result = ctx.call("wait", args, timeout=socket_timeout, on_event=on_event)
    return show_status(ctx, result)


def cmd_signal(ctx: Ctx, p: Parsed) -> int:
    from alter.cli.signals import normalize_signal

    raw, target = p.positionals[0], p.positionals[1]
    sig = normalize_signal(raw, strict_case=False)
    if sig is None:
        raise UsageError(
            f"{raw!r} is not a signal", hint="use a name like SIGHUP, HUP, SIGUSR1 or a number (`apm help signals`)"
        )
    split_target(target)  # validates name#N
    result = ctx.call("signal", {"target": target, "signal": sig})
    if ctx.json:
        ctx.emit_json(result)
        return 0
    sent = result.get("sent") if isinstance(result, dict) else None
    if not sent:
        ctx.print(f"no running instance of {target} to signal")
        return 0
    shown = ", ".join(
        f"{target.partition('#')[0]}#{s.get('instance')} (pid {s.get('pid')})" for s in sent if isinstance(s, dict)
    )
    ctx.print(f"sent {sig} to {shown}")
    return 0

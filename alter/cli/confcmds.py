"""CLI commands for the config lifecycle: `apm boot`, `load`, `unload`, `reload`, `saveconf`, `check`, `convert`.

`boot`, `load`, `unload`, `reload` and `saveconf` send absolute paths to the
daemon, which reads (and writes) the files after checking that the caller
could.  `check` and `convert` run here, in the CLI process, with the caller's
own rights; `check` then asks a running daemon (never starting one) what
loading the file would change.  The config modules load only inside the
handlers (the CLI must start fast).
"""

from __future__ import annotations

import os
import sys

from alter.cli.flags import Arg, Flag
from alter.cli.table import Command
from alter.errors import ApmError, Conflict, UsageError

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import Any, Dict, List

    from alter.cli.context import Ctx
    from alter.cli.flags import Parsed

_FILE_SUFFIXES = (".conf", ".json")
_JS = (".js", ".cjs", ".mjs")


def _abs(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _existing(path: str, what: str = "config file") -> str:
    full = _abs(path)
    if not os.path.exists(full):
        raise UsageError(f"no such file: {path}", hint=f"give the path of a {what}")
    if os.path.isdir(full):
        raise UsageError(f"{path} is a directory", hint=f"give the path of a {what}")
    return full


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _warnings(ctx: Ctx, result: Any) -> None:
    for warning in (result.get("warnings") if isinstance(result, dict) else None) or []:
        ctx.eprint(ctx.err_style("warning:", "yellow") + " " + str(warning))


_ROWS = (
    ("created", "created", "green"),
    ("started", "started", "green"),
    ("changed", "changed", "yellow"),
    ("removed", "removed", "red"),
    ("unchanged", "unchanged", "dim"),
    ("skipped", "skipped", "dim"),
)


def _summary(ctx: Ctx, title: str, result: Dict[str, Any]) -> None:
    """`Reloaded /etc/apm/apm.conf` and one line per kind of change."""
    s = ctx.style
    ctx.print(title)
    keys = result.get("changed_keys") or {}
    shown = False
    for key, label, colour in _ROWS:
        names = result.get(key) or []
        if not names:
            continue
        shown = True
        items = [f"{n} ({', '.join(keys[n])})" if key == "changed" and keys.get(n) else n for n in names]
        ctx.print(f"  {s(label.ljust(10), colour)} {', '.join(items)}")
    if result.get("daemon_changed"):
        shown = True
        ctx.print(f"  {s('daemon'.ljust(10), 'yellow')} {', '.join(result['daemon_changed'])}")
    if not shown:
        ctx.print("  no workers")
    _warnings(ctx, result)


def _emit(ctx: Ctx, result: Any, title: str) -> int:
    if ctx.json:
        ctx.emit_json(result)
    else:
        _summary(ctx, title, result)
    return 0


# --------------------------------------------------------------------------- daemon-side commands


def cmd_boot(ctx: Ctx, p: Parsed) -> int:
    result = ctx.call("boot", {})
    if not result.get("exists", True):
        if ctx.json:
            ctx.emit_json(result)
        else:
            ctx.print(f"no config file at {result.get('file')}: nothing to load")
        return 0
    return _emit(ctx, result, f"Booted {result.get('file')}")


def cmd_load(ctx: Ctx, p: Parsed) -> int:
    path = _existing(p.positionals[0])
    result = ctx.call("load", {"file": path})
    return _emit(ctx, result, f"Loaded {path}")


def cmd_unload(ctx: Ctx, p: Parsed) -> int:
    path = _abs(p.positionals[0])
    result = ctx.call("unload", {"file": path})
    if ctx.json:
        ctx.emit_json(result)
    elif result.get("removed"):
        ctx.print(f"Unloaded {path}: removed {', '.join(result['removed'])}")
    else:
        ctx.print(f"no workers were loaded from {path}")
    return 0


def _is_file_target(target: str) -> bool:
    if "/" in target or target.endswith(_FILE_SUFFIXES) or target.startswith("~"):
        return True
    return os.path.isfile(target)


def cmd_reload(ctx: Ctx, p: Parsed) -> int:
    target = p.positionals[0]
    force = bool(p.flag("force"))
    if _is_file_target(target):
        args: Dict[str, Any] = {"file": _existing(target), "force": force}
    else:
        args = {"name": target, "force": force}
    result = ctx.call("reload", args)
    what = args.get("file") or f"{target} from {result.get('file')}"
    return _emit(ctx, result, f"Reloaded {what}" + (" (--force)" if force else ""))


def cmd_saveconf(ctx: Ctx, p: Parsed) -> int:
    words = p.positionals
    if len(words) == 1:
        raise UsageError(
            "apm saveconf <name> <file>: the file is missing",
            hint="apm saveconf writes every worker back to its file; apm saveconf <name> <file> saves one",
        )
    if len(words) == 2:
        return _save_one(ctx, words[0], _abs(words[1]))
    result = ctx.call("saveconf", {})
    if ctx.json:
        ctx.emit_json(result)
    else:
        for item in result.get("saved") or []:
            ctx.print(f"saved {item['file']} ({', '.join(item.get('workers') or [])})")
        if not result.get("saved") and not result.get("refused") and not result.get("unsaved"):
            ctx.print("no workers to save")
    refused: List[Dict[str, Any]] = result.get("refused") or []
    for item in refused:
        ctx.eprint(f"apm: not saved: {item.get('reason')}")
        if item.get("hint"):
            ctx.eprint(f"  hint: {item['hint']}")
    unsaved: List[Dict[str, Any]] = result.get("unsaved") or []
    if unsaved and not ctx.json and _interactive(ctx):
        unsaved = _prompt_files(ctx, unsaved)
    if unsaved:
        names = ", ".join(str(u.get("name")) for u in unsaved)
        raise UsageError(
            f"{_plural(len(unsaved), 'worker')} without a config file: {names}",
            hint="save each one to a file: apm saveconf <name> <file>",
        )
    if refused:
        raise Conflict(f"{_plural(len(refused), 'file')} left untouched (see above)")
    return 0


def _interactive(ctx: Ctx) -> bool:
    try:
        return sys.stdin.isatty() and ctx.out.isatty()
    except (AttributeError, ValueError):
        return False


def _prompt_files(ctx: Ctx, unsaved: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    left = []
    for item in unsaved:
        name = str(item.get("name"))
        where = f" (runs in {item['path']})" if item.get("path") else ""
        try:
            answer = input(f"config file for {name}{where}, empty to skip: ").strip()
        except EOFError:
            answer = ""
        if not answer:
            left.append(item)
            continue
        _save_one(ctx, name, _abs(answer))
    return left


def _save_one(ctx: Ctx, name: str, path: str) -> int:
    result = ctx.call("saveconf", {"name": name, "file": path})
    if ctx.json:
        ctx.emit_json(result)
        return 0
    others = [w for w in (result.get("saved") or [{}])[0].get("workers") or [] if w != name]
    ctx.print(f"saved {name} to {path}" + (f" (with {', '.join(others)})" if others else ""))
    if result.get("previous"):
        ctx.print(f"  {path} is now its config file; {result['previous']} still has its old block")
    return 0


# --------------------------------------------------------------------------- local commands


def require_module(module: str, command: str) -> None:
    from alter.cli import admin

    admin.require_module(module, command)


def _load_local(path: str) -> Any:
    if path.lower().endswith(_JS):
        raise UsageError(
            f"{path} is a JavaScript ecosystem file: apm loads apm.conf and JSON files",
            hint=f"convert it: apm convert {path} {os.path.splitext(path)[0]}.conf",
        )
    with open(path, "rb") as fh:
        head = fh.read(512).lstrip()
    if path.lower().endswith(".json") or head.startswith((b"{", b"[")):
        from alter.config.ecosystem import load_json

        return load_json(path)
    from alter.config.loader import load_file

    return load_file(path)


def _ask_daemon(ctx: Ctx, path: str, result: Any) -> Any:
    """The daemon's plan for this file, or a string saying why there is none (never starts a daemon)."""
    from alter.control.client import DaemonNotRunning

    workers = [{"config": w.config, "origin": dict(w.origin)} for w in result.workers]
    args: Dict[str, Any] = {"file": path, "workers": workers}
    if result.daemon:
        args["daemon"] = result.daemon
    try:
        return ctx.call("plan", args, autostart=False, timeout=10.0)
    except DaemonNotRunning:
        return "no daemon is running: loading the file would create every worker"
    except ApmError as err:
        return f"could not ask the daemon what would change: {err.message}"


def cmd_check(ctx: Ctx, p: Parsed) -> int:
    require_module("alter.config.loader", "check")
    path = _existing(p.positionals[0])
    result = _load_local(path)
    errors = list(result.errors)
    warnings = [str(w) for w in result.warnings]
    plan: Any = None if errors else _ask_daemon(ctx, path, result)
    actions = _actions(result, plan)
    if ctx.json:
        ctx.emit_json(
            {
                "file": path,
                "ok": not errors,
                "errors": [e.message for e in errors],
                "warnings": warnings + (plan.get("warnings", []) if isinstance(plan, dict) else []),
                "workers": actions,
                "plan": plan if isinstance(plan, dict) else None,
                "note": plan if isinstance(plan, str) else None,
            }
        )
        return 2 if errors else 0
    s = ctx.style
    for err in errors:
        ctx.print(s("error:", "red", "bold") + " " + err.message)
        if err.hint:
            ctx.print("  " + s("hint:", "yellow") + " " + err.hint)
    for warning in warnings + (plan.get("warnings", []) if isinstance(plan, dict) else []):
        ctx.print(s("warning:", "yellow") + " " + warning)
    if errors:
        ctx.print(f"{path}: {_plural(len(errors), 'error')}; a reload would change nothing until they are fixed")
        return 2
    ctx.print(f"{path}: OK, {_plural(len(result.workers), 'worker')}")
    words = {
        "create": ("would create", "green"),
        "change": ("would change", "yellow"),
        "remove": ("would remove", "red"),
        "unchanged": ("unchanged", "dim"),
        "skip": ("would skip", "dim"),
    }
    keys = plan.get("changed_keys", {}) if isinstance(plan, dict) else {}
    for item in actions:
        label, colour = words[item["action"]]
        extra = f" ({', '.join(keys[item['name']])})" if keys.get(item["name"]) else ""
        ctx.print(f"  {s(label.ljust(12), colour)} {item['name']}{extra}")
    if isinstance(plan, dict) and plan.get("daemon_changed"):
        ctx.print(f"  {s('daemon'.ljust(12), 'yellow')} {', '.join(plan['daemon_changed'])}")
    if isinstance(plan, str):
        ctx.print(f"({plan})")
    return 0


def _actions(result: Any, plan: Any) -> List[Dict[str, str]]:
    if not isinstance(plan, dict):
        return [{"name": w.name, "action": "create"} for w in result.workers]
    out: List[Dict[str, str]] = []
    for key, action in (
        ("created", "create"),
        ("changed", "change"),
        ("removed", "remove"),
        ("unchanged", "unchanged"),
        ("skipped", "skip"),
    ):
        out.extend({"name": name, "action": action} for name in plan.get(key) or [])
    return out


def cmd_convert(ctx: Ctx, p: Parsed) -> int:
    require_module("alter.config.pm2", "convert")
    from alter.config.pm2 import convert

    source = p.positionals[0]
    output = p.positionals[1] if len(p.positionals) > 1 else None
    if not os.path.exists(source):
        raise UsageError(f"no such file: {source}", hint="give a PM2 ecosystem file (.json, .js, .cjs, .mjs)")
    if output and os.path.exists(output) and not p.flag("force"):
        raise Conflict(f"{output} already exists", hint="choose another file, or add --force to overwrite it")
    text = convert(source)
    text = text if text.endswith("\n") else text + "\n"
    if not output or output == "-":
        ctx.out.write(text)
        return 0
    from alter.config.printer import write_atomic

    write_atomic(output, text)
    ctx.eprint(f"wrote {output} (from {source})")
    return 0


# --------------------------------------------------------------------------- the table entries

FILE = Arg("file", "config file (apm.conf syntax or ecosystem JSON)")

COMMANDS: tuple[Command, ...] = (
    Command(
        "boot",
        "Reload the daemon's own config file (/etc/apm/apm.conf); done at every daemon start",
        cmd_boot,
        group="Config",
        json=True,
        description=(
            "Reconciles the boot file like `apm reload`: starts its new workers, restarts changed ones, stops "
            "the ones that came from it and are gone from it. Workers of other origins (apm run, other files) "
            "are never touched. Safe to run again: unchanged workers keep running."
        ),
        examples=("apm boot",),
    ),
    Command(
        "load",
        "Load a config file and start its workers (existing ones are skipped)",
        cmd_load,
        group="Config",
        args=(FILE,),
        json=True,
        examples=("apm load /etc/apm/apm.conf.d/api.conf", "apm load ecosystem.json"),
    ),
    Command(
        "unload",
        "Stop and remove every worker loaded from a config file",
        cmd_unload,
        group="Config",
        args=(FILE,),
        json=True,
        examples=("apm unload /etc/apm/apm.conf.d/api.conf",),
    ),
    Command(
        "reload",
        "Apply a config file's changes: start new, restart changed, stop removed workers",
        cmd_reload,
        group="Config",
        args=(Arg("target", "config file, or the name of a worker loaded from one"),),
        flags=(Flag("force", "restart unchanged workers too"),),
        json=True,
        usage="apm reload <file|worker> [--force]",
        description=(
            "Unchanged workers keep running untouched (same pids). Changed ones restart, one instance at a "
            "time when `rolling` is set; a change of only instances/enabled/namespace applies without a "
            "restart. A file with errors changes nothing: every error is listed with file:line:col. "
            "A worker name reloads just that worker from its file. A target containing `/` or ending in "
            ".conf/.json is a file (write ./name for a file without either)."
        ),
        examples=("apm reload /etc/apm/apm.conf", "apm reload api", "apm reload apm.conf --force"),
    ),
    Command(
        "saveconf",
        "Write workers back to their config files (or one worker to a file)",
        cmd_saveconf,
        group="Config",
        args=(Arg("name", "worker name", required=False), Arg("file", "file to save it to", required=False)),
        json=True,
        usage="apm saveconf [<name> <file>]",
        description=(
            "Without arguments every worker loaded from a file is written back to it, atomically, comments "
            "kept. Only files made of worker blocks are rewritten (see docs/config.md). Workers started with "
            "`apm run` have no file: on a terminal apm asks for one, otherwise it fails with a hint. "
            "With <name> <file> the worker is saved into that file, which becomes its config file."
        ),
        examples=("apm saveconf", "apm saveconf myapp /etc/apm/apm.conf.d/myapp.conf"),
    ),
    Command(
        "check",
        "Validate a config file: every error, then what loading it would change",
        cmd_check,
        group="Config",
        args=(FILE,),
        json=True,
        write=False,
        description=(
            "Runs here, with your rights. Lists every error (file:line:col) and warning, then asks a running "
            "daemon (without starting one) which workers a reload would create, change or remove. Exit 2 "
            "when the file has errors."
        ),
        examples=("apm check /etc/apm/apm.conf",),
    ),
    Command(
        "convert",
        "Convert a PM2 ecosystem file into apm.conf worker blocks",
        cmd_convert,
        group="Config",
        args=(Arg("pm2-config", "PM2 ecosystem file"), Arg("output", "output file (default: stdout)", required=False)),
        flags=(Flag("force", "overwrite the output file"),),
        write=False,
        description=(
            "JavaScript ecosystems (.js, .cjs, .mjs) are evaluated with the local node. Fields apm has no "
            "equivalent for become `# WARN:` comments above their worker. The output file is written "
            "atomically."
        ),
        examples=(
            "apm convert ecosystem.config.js > apm.conf",
            "apm convert ecosystem.json /etc/apm/apm.conf.d/app.conf",
        ),
    ),
)

"""Handlers of the daemon, install and config commands.

`daemon`, `install`/`uninstall`, `check` and `convert` import their packages
lazily inside the handler (the only place they may be imported from the CLI),
and fail with a clear message when this build does not have them.
"""

from __future__ import annotations

import os
import sys

from alter import __version__
from alter.cli.context import Ctx
from alter.cli.flags import Parsed
from alter.errors import ApmError, Conflict, UsageError

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import Any, Dict, List


def require_module(module: str, command: str) -> None:
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ApmError(
            f"`apm {command}` is not available in this build ({module} is missing)",
            hint="install a complete apm build (`python3 build.py`), or see docs/cli.md",
        )


def _entry(module: str, command: str) -> Any:
    """`module.main`, imported only now (the daemon and installer never load for other commands)."""
    require_module(module, command)
    import importlib

    return importlib.import_module(module).main


# --------------------------------------------------------------------------- daemon


def cmd_daemon(ctx: Ctx, argv: List[str]) -> int:
    return int(_entry("alter.daemon.main", "daemon")(list(argv)) or 0)


def cmd_exit(ctx: Ctx, p: Parsed) -> int:
    if p.positionals != ["daemon"]:
        raise UsageError(
            "`apm exit` stops the daemon only when told so: apm exit daemon",
            hint="it stops every worker and then the daemon; `apm stopall` stops the workers only",
        )
    from alter.control.client import DaemonNotRunning

    client = ctx.client(autostart=False)
    try:
        result = client.call("exit")
    except DaemonNotRunning:
        if ctx.json:
            ctx.emit_json({"stopped": [], "running": False})
        else:
            ctx.print(f"no apm daemon is running on {client.socket_label}")
        return 0
    client.wait_gone()
    if ctx.json:
        ctx.emit_json(result)
        return 0
    stopped = result.get("stopped") if isinstance(result, dict) else []
    ctx.print(f"daemon stopped ({len(stopped or [])} worker{'s' if len(stopped or []) != 1 else ''} stopped)")
    return 0


def cmd_version(ctx: Ctx, p: Parsed) -> int:
    """CLI version, and the daemon's when one runs (never starts one)."""
    from alter.control.client import DaemonUnavailable

    client = ctx.client(autostart=False, timeout=5.0)
    daemon: Any = None
    problem = ""
    try:
        daemon = client.call("version")
    except DaemonUnavailable as err:
        problem = "not running" if type(err).__name__ == "DaemonNotRunning" else err.message
    except ApmError as err:
        problem = err.message
    if ctx.json:
        ctx.emit_json(
            {
                "cli": {"version": __version__, "python": sys.version.split()[0]},
                "daemon": daemon,
                "socket": client.socket_label,
            }
        )
        return 0
    ctx.print(f"apm {__version__}")
    if isinstance(daemon, dict):
        ctx.print(f"daemon {daemon.get('version', '?')} (pid {daemon.get('pid', '?')}) on {client.socket_label}")
        if daemon.get("version") not in (None, __version__):
            ctx.print(
                ctx.style(
                    "note: the daemon runs another version; `apm exit daemon` and any apm command restarts it "
                    "(workers are restored)",
                    "yellow",
                )
            )
    else:
        ctx.print(f"daemon {problem} ({client.socket_label})")
    return 0


# --------------------------------------------------------------------------- install


def _install(name: str) -> Any:
    def handler(ctx: Ctx, argv: List[str]) -> int:
        return int(_entry("alter.install", name)([name, *argv]) or 0)

    handler.__name__ = f"cmd_{name}"
    return handler


cmd_install = _install("install")
cmd_uninstall = _install("uninstall")


# --------------------------------------------------------------------------- config files


def _worker_name(worker: Any) -> str:
    if isinstance(worker, dict):
        return str(worker.get("name", "?"))
    name = vars(worker).get("name") if hasattr(worker, "__dict__") else None
    return str(name or getattr(worker, "name", "?"))


def _worker_config(worker: Any) -> Dict[str, Any]:
    if isinstance(worker, dict):
        return worker
    config = getattr(worker, "config", None)
    return config if isinstance(config, dict) else {}


def _comparable(config: Any) -> Dict[str, Any]:
    return {k: v for k, v in (config or {}).items() if k != "name" and v not in (None, [])}


def cmd_check(ctx: Ctx, p: Parsed) -> int:
    require_module("alter.config.loader", "check")
    from alter.config.loader import load_file

    path = p.positionals[0]
    if not os.path.exists(path):
        raise UsageError(f"no such file: {path}", hint="give the path of an apm.conf or ecosystem file")
    result = load_file(path)
    running: Dict[str, Dict[str, Any]] = {}
    try:
        for w in ctx.call("list", autostart=False, timeout=5.0).get("workers", []):
            running[str(w.get("name"))] = w
    except ApmError:
        pass
    workers = []
    for worker in list(getattr(result, "workers", []) or []):
        name = _worker_name(worker)
        if name not in running:
            action = "create"
        elif _comparable(running[name].get("config")) == _comparable(_worker_config(worker)):
            action = "unchanged"
        else:
            action = "reload"
        workers.append({"name": name, "action": action})
    errors = [str(e) for e in getattr(result, "errors", []) or []]
    warnings = [str(w) for w in getattr(result, "warnings", []) or []]
    if ctx.json:
        ctx.emit_json({"file": path, "ok": not errors, "workers": workers, "errors": errors, "warnings": warnings})
        return 2 if errors else 0
    s = ctx.style
    for warning in warnings:
        ctx.print(s("warning:", "yellow") + " " + warning)
    for error in errors:
        ctx.print(s("error:", "red", "bold") + " " + error)
    words = {"create": "would create", "reload": "would reload (changed)", "unchanged": "unchanged, skipped"}
    for w in workers:
        ctx.print(f"  {s(w['name'], 'bold')}: {words[w['action']]}")
    if errors:
        ctx.print(f"{path}: {len(errors)} error{'s' if len(errors) != 1 else ''}; nothing applied")
        return 2
    ctx.print(
        f"{path}: OK, {len(workers)} worker{'s' if len(workers) != 1 else ''}"
        + (" (daemon not running: all would be created)" if not running and workers else "")
    )
    return 0


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
    if not output:
        ctx.out.write(text if text.endswith("\n") else text + "\n")
        return 0
    tmp = f"{output}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, output)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ApmError(f"cannot write {output}: {exc.strerror}") from None
    ctx.eprint(f"wrote {output} (from {source})")
    return 0

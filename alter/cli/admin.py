"""Handlers of the daemon, install and config commands.

`daemon` and `install`/`uninstall` import their packages lazily inside the
handler (the only place they may be imported from the CLI), and fail with a
clear message when this build does not have them (`require_module`, which
the config commands in confcmds.py use too).
"""

from __future__ import annotations

import sys

from alter import __version__
from alter.cli.context import Ctx
from alter.cli.flags import Parsed
from alter.errors import ApmError, UsageError

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import Any, List


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

"""CLI commands for the web GUI and API: `apm gui`, `apm token` (entries of the command table).

    apm gui [start]              start the GUI (no-op if running), print its URL (+ setup token on first run)
    apm gui stop | url | status  stop it / print the URL only / show its state
    apm gui setup-token          a fresh first-run setup token (while no password is set)
    apm gui reset-password       forget the password, PIN and sessions; print a setup token
    apm token create [--name N]  an API token for `Authorization: Bearer ...`, shown once
    apm token list | revoke <id>

Both talk to the daemon's `gui` / `token` control commands (docs/api.md, "CLI").
"""

from __future__ import annotations

from alter.cli.flags import Arg, Flag
from alter.cli.table import Command
from alter.errors import UsageError

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import Any, Dict

    from alter.cli.context import Ctx
    from alter.cli.flags import Parsed

GUI_ACTIONS = ("start", "stop", "url", "status", "setup-token", "reset-password")
TOKEN_ACTIONS = ("create", "list", "revoke")


def _when(ts: Any) -> str:
    if not ts:
        return "never"
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(ts)))


def _print_setup(ctx: Ctx, result: Dict[str, Any]) -> None:
    token = result.get("setup_token")
    if not token:
        return
    s = ctx.style
    ctx.print("First run: open the URL and enter this setup token to choose the GUI password:")
    ctx.print("    " + s(str(token), "bold") + "   (single use, valid for 1 hour)")


def cmd_gui(ctx: Ctx, p: Parsed) -> int:
    action = p.positionals[0] if p.positionals else "start"
    if action not in GUI_ACTIONS:
        raise UsageError(f"unknown `apm gui` action {action!r}", hint="one of: " + ", ".join(GUI_ACTIONS))
    args: Dict[str, Any] = {"action": "status" if action == "url" else action}
    port = p.flag("port")
    bind = p.flag("bind")
    if (port is not None or bind is not None) and action != "start":
        raise UsageError("--port and --bind go with `apm gui` / `apm gui start`")
    if port is not None:
        try:
            args["port"] = int(port)
        except ValueError:
            raise UsageError(f"--port must be a number, got {port!r}") from None
    if bind is not None:
        args["bind"] = str(bind)
    result = ctx.call("gui", args)
    if ctx.json:
        ctx.emit_json(result)
        return 0
    if action == "url":
        if not result.get("url"):
            ctx.eprint("apm: the GUI is not running (start it: apm gui)")
            return 1
        ctx.print(str(result["url"]))
        return 0
    if action == "stop":
        ctx.print("GUI stopped")
        return 0
    if action == "status":
        if result.get("running"):
            ctx.print(f"GUI: {result.get('url')} (listening on {result.get('bind')}:{result.get('port')})")
        else:
            ctx.print(f"GUI: not running (configured for {result.get('bind')}:{result.get('port')}; start: apm gui)")
        ctx.print("password: " + ("set" if result.get("password_set") else "not set yet (first-run setup pending)"))
        return 0
    if action == "reset-password":
        ctx.print("GUI password, PIN and sessions removed.")
        if result.get("stopped"):
            ctx.print(str(result["stopped"]) + "; start it on 127.0.0.1 to finish the setup: apm gui --bind 127.0.0.1")
    if result.get("url"):
        ctx.print(f"GUI: {result['url']}")
    _print_setup(ctx, result)
    return 0


def cmd_token(ctx: Ctx, p: Parsed) -> int:
    action = p.positionals[0] if p.positionals else "list"
    if action not in TOKEN_ACTIONS:
        raise UsageError(f"unknown `apm token` action {action!r}", hint="one of: " + ", ".join(TOKEN_ACTIONS))
    args: Dict[str, Any] = {"action": action}
    if action == "create":
        if len(p.positionals) > 1:
            raise UsageError("give the token's name with --name", hint="apm token create --name ci")
        args["name"] = str(p.flag("name") or "")
    elif action == "revoke":
        if len(p.positionals) < 2:
            raise UsageError("which token? apm token revoke <id>", hint="see the ids: apm token list")
        args["id"] = p.positionals[1]
    elif len(p.positionals) > 1:
        raise UsageError(f"unexpected argument {p.positionals[1]!r}", hint="usage: apm token list")
    result = ctx.call("token", args)
    if ctx.json:
        ctx.emit_json(result)
        return 0
    if action == "create":
        ctx.print(f"API token {result['id']} ({result['name']}):")
        ctx.print("    " + ctx.style(str(result["token"]), "bold"))
        ctx.print("It is shown only now: store it. Send it as the header `Authorization: Bearer <token>`.")
        return 0
    if action == "revoke":
        gone = result.get("revoked") or {}
        ctx.print(f"revoked {gone.get('id')} ({gone.get('name')})")
        return 0
    tokens = result.get("tokens") or []
    if not tokens:
        ctx.print("no API tokens (create one: apm token create --name NAME)")
        return 0
    from alter.cli.render import table

    rows = [[(t["id"], ()), (t["name"], ()), (_when(t["created"]), ()), (_when(t["last_used"]), ())] for t in tokens]
    ctx.lines(table(["ID", "NAME", "CREATED", "LAST USED"], rows, ctx.style, width=ctx.width))
    return 0


COMMANDS: tuple[Command, ...] = (
    Command(
        "gui",
        "Start the web GUI and print its URL (stop, url, status, setup-token, reset-password)",
        cmd_gui,
        group="Daemon",
        args=(Arg("action", "start (default), stop, url, status, setup-token or reset-password", required=False),),
        flags=(
            Flag("port", "listen on this port (this run of the GUI)", value="N"),
            Flag("bind", "listen on this address (a non-loopback one needs a password)", value="ADDR"),
        ),
        json=True,
        usage="apm gui [start|stop|url|status|setup-token|reset-password] [--port N] [--bind ADDR]",
        description=(
            "The GUI and the HTTP API (/api/v1) listen on gui_bind:gui_port, 127.0.0.1:6789 by default. "
            "While no password is set, `apm gui` prints a one-time setup token for the first-run page. "
            "The daemon refuses a non-loopback address until a password exists."
        ),
        examples=("apm gui", "apm gui url", "apm gui stop", "apm gui --bind 0.0.0.0 --port 8080"),
    ),
    Command(
        "token",
        "Manage API tokens for the HTTP API (create, list, revoke)",
        cmd_token,
        group="Daemon",
        args=(
            Arg("action", "create, list (default) or revoke", required=False),
            Arg("id", "token id (revoke)", required=False),
        ),
        flags=(Flag("name", "a label for the new token", value="NAME"),),
        json=True,
        usage="apm token create [--name NAME] | list | revoke <id>",
        description=(
            "An API token authenticates HTTP API calls with `Authorization: Bearer <token>`. It is shown "
            "once when created; the daemon keeps only its hash. Tokens cannot change passwords or tokens."
        ),
        examples=("apm token create --name ci", "apm token list", "apm token revoke tk_1a2b3c4d"),
    ),
)

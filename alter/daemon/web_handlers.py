"""Control-socket commands for the web GUI: `gui` and `token` (see docs/api.md, "CLI").

    gui    {"action": "start" | "stop" | "status" | "setup-token" | "reset-password", "port"?, "bind"?}
    token  {"action": "create" | "list" | "revoke", "name"?, "id"?}

`register_web_commands(commands, daemon)` creates the daemon's GuiService,
registers both commands (write rights: they hand out credentials) and
returns the service; the daemon starts it from `start()` and closes it from
`_cleanup()`.
"""

from __future__ import annotations

from typing import Any, Dict

from alter.errors import UsageError
from alter.web.service import GuiService

GUI_ACTIONS = ("start", "stop", "status", "url", "setup-token", "reset-password")
TOKEN_ACTIONS = ("create", "list", "revoke")


def _action(req: Any, allowed: tuple, default: str) -> str:
    action = req.args.get("action", default)
    if not isinstance(action, str) or action not in allowed:
        raise UsageError(f"{req.cmd}: unknown action {action!r}", hint="one of: " + ", ".join(allowed))
    return action


def register_web_commands(commands: Any, daemon: Any) -> GuiService:
    service = GuiService(daemon)

    def gui(req: Any) -> None:
        action = _action(req, GUI_ACTIONS, "status")
        if action == "start":
            port = req.args.get("port")
            bind = req.args.get("bind")
            if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535):
                raise UsageError(f"gui: port must be 1-65535, got {port!r}")
            if bind is not None and (not isinstance(bind, str) or not bind.strip()):
                raise UsageError("gui: bind must be an address like 127.0.0.1 or 0.0.0.0")
            was_running = service.running
            status = service.start(port, bind)
            result: Dict[str, Any] = dict(status)
            token = service.announce(status) if not was_running else None
            if token is None and status["setup_required"]:
                token = service.auth.issue_setup_token()
            if token is not None:
                result["setup_token"] = token
            req.reply(result)
        elif action == "stop":
            req.reply(service.stop())
        elif action == "setup-token":
            result = service.status()
            result["setup_token"] = service.auth.issue_setup_token()
            req.reply(result)
        elif action == "reset-password":
            req.reply(service.reset_password())
        else:
            req.reply(service.status())

    def token(req: Any) -> None:
        action = _action(req, TOKEN_ACTIONS, "list")
        if action == "create":
            name = req.args.get("name") or ""
            if not isinstance(name, str):
                raise UsageError("token: name must be a string")
            req.reply(service.auth.create_token(name))
            service.settings_changed()  # open pages see security.tokens change
        elif action == "revoke":
            token_id = req.args.get("id")
            if not isinstance(token_id, str) or not token_id:
                raise UsageError("token revoke: the token id is required", hint="see them: apm token list")
            req.reply({"revoked": service.auth.revoke_token(token_id)})
            service.settings_changed()
        else:
            req.reply({"tokens": service.auth.list_tokens()})

    commands.register("gui", gui)
    commands.register("token", token)
    return service

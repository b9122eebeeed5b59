"""/api/v1/auth/*: setup, login, logout, lock/unlock, activity, password, PIN, API tokens."""

from __future__ import annotations

from typing import Any, Dict

from alter import __version__
from alter.errors import PermissionDenied, UsageError
from alter.web.message import Call


def _session(call: Call) -> Any:
    """The caller's browser session; API tokens have no session to lock or unlock."""
    if call.session is None:
        raise PermissionDenied(
            f"{call.method} {call.path} is about a dashboard session", hint="API tokens do not lock: nothing to do"
        )
    return call.session


def _session_reply(call: Call, sid: str, session: Any) -> Dict[str, Any]:
    call.set_cookies.append(call.service.session_cookie(sid))
    return {"ok": True, "session": call.service.auth.session_info(session)}


def status(call: Call) -> Dict[str, Any]:
    """Public: what the page should show (setup, login, lock screen or the app)."""
    auth = call.service.auth
    out: Dict[str, Any] = dict(auth.state())
    principal = call.principal
    out["authenticated"] = principal is not None
    out["via"] = principal.kind if principal is not None else None
    out["session"] = auth.session_info(principal.session) if principal is not None and principal.session else None
    if principal is not None:
        out["version"] = __version__
    return out


def setup(call: Call) -> Dict[str, Any]:
    sid, session = call.service.auth.setup(call.body.get("setup_token"), call.body.get("password"), call.client)
    return _session_reply(call, sid, session)


def login(call: Call) -> Dict[str, Any]:
    sid, session = call.service.auth.login(call.body.get("password"), call.client)
    return _session_reply(call, sid, session)


def logout(call: Call) -> Dict[str, Any]:
    if call.session is not None:
        call.service.auth.logout(call.session)
    call.set_cookies.append(call.service.session_cookie(""))
    return {"ok": True}


def lock(call: Call) -> Dict[str, Any]:
    session = _session(call)
    call.service.auth.lock(session)
    return {"ok": True, "session": call.service.auth.session_info(session)}


def unlock(call: Call) -> Dict[str, Any]:
    body = call.body
    session = _session(call)
    call.service.auth.unlock(session, call.client, pin=body.get("pin"), password=body.get("password"))
    return {"ok": True, "session": call.service.auth.session_info(session)}


def activity(call: Call) -> Dict[str, Any]:
    # The guard already counted this request as activity.
    return {"ok": True, "session": call.service.auth.session_info(_session(call))}


def change_password(call: Call) -> Dict[str, Any]:
    auth = call.service.auth
    sid, session = auth.change_password(_session(call), call.body.get("current"), call.body.get("new"), call.client)
    return _session_reply(call, sid, session)


def set_pin(call: Call) -> Dict[str, Any]:
    call.service.auth.set_pin(call.body.get("pin"), call.body.get("password"), call.client)
    call.service.settings_changed()  # security.has_pin
    return {"ok": True, "has_pin": True}


def remove_pin(call: Call) -> Dict[str, Any]:
    call.service.auth.remove_pin()
    call.service.settings_changed()
    return {"ok": True, "has_pin": False}


def list_tokens(call: Call) -> Dict[str, Any]:
    return {"tokens": call.service.auth.list_tokens()}


def create_token(call: Call) -> Any:
    name = call.body.get("name") or ""
    if not isinstance(name, str):
        raise UsageError("token name must be a string")
    from alter.web.message import Response

    created = call.service.auth.create_token(name)
    call.service.settings_changed()  # security.tokens
    return Response.json(created, status=201)


def revoke_token(call: Call) -> Dict[str, Any]:
    revoked = call.service.auth.revoke_token(call.params["id"])
    call.service.settings_changed()
    return {"revoked": revoked}

"""docs/openapi.json, generated from the route table (a unit test fails when it is stale).

python3 -m alter.web.openapi > docs/openapi.json
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Dict, List

from alter import __version__
from alter.web import routes

ERROR = {"$ref": "#/components/schemas/Error"}


def _type_of(description: str) -> str:
    head = description.split(",", 1)[0].split(" ", 1)[0].lower()
    if head in ("boolean", "integer", "object", "array", "string"):
        return head
    if re.match(r"^\d", description):
        return "integer"
    return "string"


def _errors(route: routes.Route) -> Dict[str, Any]:
    out: Dict[str, Any] = {"400": {"description": "bad request (UsageError, ConfigError)"}}
    if route.access != routes.PUBLIC:
        out["401"] = {"description": "no valid session or API token"}
        out["403"] = {"description": "CSRF header missing/wrong, foreign origin, or not allowed"}
    if route.access in (routes.USER, routes.SESSION):
        out["423"] = {"description": "the session is locked"}
    if "{" in route.path:
        out["404"] = {"description": "no such worker / token"}
    if route.path.endswith(("/login", "/setup", "/unlock", "/password", "/pin")):
        out["429"] = {"description": "too many failed attempts: wait Retry-After seconds"}
    return {
        k: {"description": v["description"], "content": {"application/json": {"schema": ERROR}}} for k, v in out.items()
    }


def _security(access: str) -> List[Dict[str, List[str]]]:
    if access == routes.PUBLIC:
        return []
    if access == routes.SESSION:
        return [{"session": []}]
    return [{"session": []}, {"bearer": []}]


def document() -> Dict[str, Any]:
    paths: Dict[str, Any] = {}
    for route in routes.ROUTES:
        op: Dict[str, Any] = {
            "operationId": f"{route.handler.__name__}",
            "summary": route.summary,
            "tags": [route.tag],
            "x-access": route.access,
            "security": _security(route.access),
        }
        params = []
        for name in re.findall(r"\{(\w+)\}", route.path):
            params.append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
        for name, description in route.query.items():
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": "required" in description,
                    "description": description,
                    "schema": {"type": _type_of(description)},
                }  # fmt: skip
            )
        if params:
            op["parameters"] = params
        if route.body:
            props = {k: {"type": _type_of(v), "description": v} for k, v in route.body.items()}
            op["requestBody"] = {
                "required": False,
                "content": {"application/json": {"schema": {"type": "object", "properties": props}}},
            }
        if route.mutating and route.access != routes.PUBLIC:
            op.setdefault("parameters", []).append(
                {
                    "name": "X-CSRF-Token",
                    "in": "header",
                    "required": False,
                    "description": "the session's CSRF token (required with a session cookie)",
                    "schema": {"type": "string"},
                }  # fmt: skip
            )
        ok_type = "text/event-stream" if route.path.endswith("/stream") else (
            "text/plain" if route.path.endswith("/download") else "application/json"
        )  # fmt: skip
        responses: Dict[str, Any] = {str(route.status): {"description": "success", "content": {ok_type: {}}}}
        responses.update(_errors(route))
        op["responses"] = responses
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "apm HTTP API",
            "version": __version__,
            "description": "The web dashboard's API. See docs/api.md for the auth model and the live stream.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "apm_session"},
                "bearer": {"type": "http", "scheme": "bearer", "description": "apm token create"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "type": {"type": "string"},
                                "kind": {"type": "string"},
                                "message": {"type": "string"},
                                "hint": {"type": "string"},
                                "exit": {"type": "integer"},
                                "detail": {"type": "object"},
                            },
                        }
                    },
                }
            },
        },
        "paths": paths,
    }


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())

"""The route table: matching, access levels, and the generated docs staying current."""

from __future__ import annotations

import os

import pytest

from alter.errors import NotFound
from alter.web import openapi, routes
from alter.web.errors import MethodNotAllowed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_match_decodes_params_and_orders_specific_routes_first():
    route, params = routes.match("POST", "/api/v1/workers/api%231/stop")
    assert route.handler.__name__ == "stop_worker" and params == {"name": "api#1"}
    route, params = routes.match("POST", "/api/v1/workers/stopall")
    assert route.handler.__name__ == "stop_all" and params == {}
    route, params = routes.match("GET", "/api/v1/workers/stopall")  # a worker may be called that
    assert route.handler.__name__ == "get_worker" and params == {"name": "stopall"}
    with pytest.raises(MethodNotAllowed) as exc:
        routes.match("PUT", "/api/v1/workers")
    assert exc.value.allowed == "GET, POST"
    with pytest.raises(MethodNotAllowed):
        routes.match("HEAD", "/api/v1/stream")  # HEAD is for static files only
    with pytest.raises(NotFound):
        routes.match("GET", "/api/v1/nope")
    with pytest.raises(NotFound):
        routes.match("GET", "/api/v1/workers/a/b/c")


def test_every_route_is_unique_and_sensible():
    seen = set()
    for r in routes.ROUTES:
        assert (r.method, r.path) not in seen, (r.method, r.path)
        seen.add((r.method, r.path))
        assert r.access in (routes.PUBLIC, routes.LOCKED, routes.USER, routes.SESSION)
        assert r.path.startswith("/api/v1/") and r.summary
        if r.access == routes.PUBLIC:
            assert r.path in ("/api/v1/auth/status", "/api/v1/auth/setup", "/api/v1/auth/login", "/api/v1/health")
    # Credential management is never open to API tokens.
    for path in ("/api/v1/auth/tokens", "/api/v1/auth/password", "/api/v1/auth/pin"):
        assert {r.access for r in routes.ROUTES if r.path == path} == {routes.SESSION}


def test_openapi_json_is_current():
    with open(os.path.join(ROOT, "docs", "openapi.json")) as f:
        assert f.read() == openapi.render(), (
            "docs/openapi.json is stale: python3 -m alter.web.openapi > docs/openapi.json"
        )


def test_api_md_lists_every_route():
    with open(os.path.join(ROOT, "docs", "api.md")) as f:
        text = f.read()
    for r in routes.ROUTES:
        assert f"`{r.method} {r.path[len(routes.PREFIX) :]}`" in text, f"docs/api.md lacks {r.method} {r.path}"

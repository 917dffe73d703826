"""agent_desk/openapi.yaml describes the desk's API as it is: every route the app registers
is in it and nothing else, path parameters match, and it is a valid OpenAPI document."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import schemathesis
from aiohttp import web

from agent_desk.app import make_app, openapi_document
from dialplan import config

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("get", "put", "post", "delete", "patch")


def _app() -> web.Application:
    # Only the routing table is read: no database is needed to build it.
    cfg = config.load(ROOT / "config" / "hotline.yaml")
    return make_app(cfg, None, None, "postgresql://unused")  # type: ignore[arg-type]


def app_routes() -> set[tuple[str, str]]:
    """(METHOD, path template) of every route the desk registers (HEAD comes with GET)."""
    out = set()
    for route in _app().router.routes():
        if route.method == "HEAD":
            continue
        resource = route.resource
        assert resource is not None
        path = resource.canonical
        if isinstance(resource, web.StaticResource):
            path += "/{filename}"
        out.add((route.method, path))
    return out


def spec_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, item in doc["paths"].items() for m in item
            if m in METHODS}


def test_every_route_is_described_and_nothing_else() -> None:
    doc = openapi_document()
    routes, described = app_routes(), spec_routes(doc)
    assert routes - described == set(), "routes missing from agent_desk/openapi.yaml"
    assert described - routes == set(), "described in openapi.yaml but not in the app"


def test_path_parameters_are_described() -> None:
    doc = openapi_document()
    for path, item in doc["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for method in (m for m in item if m in METHODS):
            params = item.get("parameters", []) + item[method].get("parameters", [])
            declared = set()
            for p in params:
                if "$ref" in p:
                    p = doc["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]
                if p["in"] == "path":
                    declared.add(p["name"])
            assert declared == names, f"{method.upper()} {path}"


def test_it_is_a_valid_openapi_document_with_error_shapes() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.0")
    schemes = doc["components"]["securitySchemes"]
    assert schemes["session"] == {**schemes["session"], "in": "cookie",
                                  "name": "hotline_session"}
    assert schemes["csrf"]["in"] == "header" and schemes["csrf"]["name"] == "X-Hotline-CSRF"
    schema = schemathesis.openapi.from_dict(doc)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(spec_routes(doc))
    # Every error answer of the desk's own API is documented as {"error": "..."}.
    for path, item in doc["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method in (m for m in item if m in METHODS):
            for status, response in item[method]["responses"].items():
                if status.startswith("4") and "$ref" in response:
                    name = response["$ref"].rsplit("/", 1)[1]
                    body = doc["components"]["responses"][name]["content"]
                    assert body["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/Error"}, f"{method} {path} {status}"

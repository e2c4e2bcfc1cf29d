"""The editor API's OpenAPI document: valid 3.1, complete, served without a token.

Completeness is checked against the routes the real editor app registers, so a new
route without documentation fails here. Whether the document is *true* (statuses,
shapes) is what ``test_openapi_fuzz`` checks against a running server.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from openapi_spec_validator import OpenAPIV31SpecValidator

from gateway.config import ServeSettings
from gateway.serve import build_editor_app
from gateway.services import Services
from tests.canvases import shop
from tests.harness import serve
from trace_store.document import schema
from trace_store.metrics import Metrics

METHODS = ("get", "head", "post", "put", "patch", "delete", "options", "trace")


def _document() -> dict[str, Any]:
    raw = resources.files("gateway").joinpath("openapi.json").read_text()
    doc: dict[str, Any] = json.loads(raw)
    return doc


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def _editor_app() -> web.Application:
    # Routes are registered when the app is built; nothing here opens a connection.
    none: Any = None
    return build_editor_app(Services(ServeSettings(), {}, none, none, none, Metrics(), none))


def test_document_is_valid_openapi_3_1() -> None:
    doc = _document()
    assert doc["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(doc).validate()


def test_every_editor_route_is_documented_and_nothing_else() -> None:
    doc = _document()
    documented = {(method, path) for method, path, _ in _operations(doc)}
    registered = set()
    for route in _editor_app().router.routes():
        method, path = route.method.lower(), route.resource.canonical if route.resource else ""
        # aiohttp adds a HEAD to every GET; it is documented only where it is meant for
        # clients (signed downloads). A GET documents its implicit HEAD.
        if method == "head" and ("head", path) not in documented:
            method = "get"
        registered.add((method, path))
    assert registered - documented == set(), "routes missing from gateway/openapi.json"
    assert documented - registered == set(), "documented operations no route serves"


def test_api_routes_need_the_bearer_token_and_say_so() -> None:
    doc = _document()
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        **doc["components"]["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    for method, path, op in _operations(doc):
        protected = path.startswith("/api/") and path != "/api/v1/openapi.json"
        assert op["security"] == ([{"bearerAuth": []}] if protected else []), (method, path)
        if protected:
            assert {"401"} <= set(op["responses"]), (method, path)
        if "{canvas}" in path:
            assert {"400", "401", "403", "404"} <= set(op["responses"]), (method, path)


def test_every_error_response_has_the_error_shape() -> None:
    doc = _document()
    shared = doc["components"]["responses"]
    for method, path, op in _operations(doc):
        for status, response in op["responses"].items():
            # readyz answers 503 with its own report of which dependency is down.
            if int(status) < 400 or method == "head" or path == "/readyz":
                continue
            if "$ref" in response:
                response = shared[response["$ref"].rsplit("/", 1)[1]]
            schema_ = response["content"]["application/json"]["schema"]
            assert {"$ref": "#/components/schemas/ApiError"} in schema_["allOf"], (path, status)


#: Server-side errors that never answer an editor-API request, and why.
NEVER_AN_EDITOR_ANSWER = {
    "StrataError": "the root class: only its subclasses are raised",
    "AlreadyExists": "create-only puts of the writer, never a request's",
    "ConfigError": "start-up and the command line",
    "RoutingError": "canvas registration at start-up",
    "UnrecordedBuiltin": "replay, which runs on the command line",
    "ApiError": "the client's view of an error answer",
    "ServerUnreachable": "the client, when the server does not answer",
}


def _error_classes(root: type) -> list[type]:
    found = []
    for sub in root.__subclasses__():
        found += [sub, *_error_classes(sub)]
    return found


def test_every_error_status_the_server_raises_is_documented() -> None:
    """A new error class with a status the document never mentions fails here, so the
    document cannot silently fall behind the handlers (the fuzzer may never hit it)."""
    import gateway.serve  # noqa: F401  (imports every module that defines an error)
    from trace_store.errors import StrataError

    documented = {status for _, _, op in _operations(_document()) for status in op["responses"]}
    server_side = [
        cls
        for cls in _error_classes(StrataError)
        if cls.__module__.split(".")[0] in ("trace_store", "gateway", "runtime")
        and cls.__module__ != "trace_store.client"
        and cls.__name__ not in NEVER_AN_EDITOR_ANSWER
    ]
    missing = {cls.__name__: cls.status for cls in server_side if str(cls.status) not in documented}
    assert missing == {}, "error statuses gateway/openapi.json does not document"


def test_patch_schema_is_the_shipped_patch_schema() -> None:
    """The document's Patch is a copy of ``patch.schema.json`` (refs moved to components)."""
    shipped = schema.load("patch")

    def moved(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: v.replace("#/$defs/", "#/components/schemas/") if k == "$ref" else moved(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [moved(v) for v in node]
        return node

    schemas = _document()["components"]["schemas"]
    for name, definition in shipped["$defs"].items():
        assert schemas[name] == moved(definition), name
    root = {k: v for k, v in shipped.items() if k not in ("$schema", "$id", "$defs", "title")}
    assert schemas["Patch"] == moved(root)


async def test_document_is_served_without_a_token(database_url: str, tmp_path: Path) -> None:
    shipped = resources.files("gateway").joinpath("openapi.json").read_bytes()
    async with serve(database_url, tmp_path, {"shop": shop}) as server:
        for headers in ({}, {"Authorization": "Bearer strata_not-a-token"}):
            url = server.editor + "/api/v1/openapi.json"
            async with server.http.get(url, headers=headers) as response:
                assert response.status == 200
                assert response.content_type == "application/json"
                assert await response.read() == shipped


def test_document_ships_as_package_data() -> None:
    # A wheel without it would serve 500s; setuptools only ships what pyproject names.
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert 'gateway = ["py.typed", "openapi.json"]' in pyproject

"""The OpenAPI 3.1 document, generated from the route table and the API's pydantic models.

Each :class:`Route` names its handler, the model of its answer, the model of its body, its
query parameters and the error statuses it can give; the application registers the same
table, so the document cannot leave a route out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp.typedefs import Handler
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bridge import __version__
from bridge.api.schemas import Problem

ERROR_TITLES = {
    400: "Bad query or body",
    401: "Token missing or wrong",
    403: "Not allowed: point not writable, or writes disabled, or a foreign page",
    404: "Unknown device, point or route",
    409: "The bridge was not started from a device file",
    413: "Body too large",
    422: "Value of the wrong type or out of range, or a device file with errors",
    502: "The device refused the request",
    503: "Device offline, not ready, or too many stream clients",
    504: "The device did not answer in time",
}


@dataclass(frozen=True)
class Query:
    """A query parameter; ``repeat`` ones may be given several times."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    repeat: bool = False


@dataclass(frozen=True)
class Route:
    """One operation: how it is served and how it is documented."""

    method: str
    path: str
    handler: Handler
    summary: str
    answer: type[BaseModel] | None
    errors: tuple[int, ...] = ()
    query: tuple[Query, ...] = ()
    body: type[BaseModel] | None = None
    answer_type: str = "application/json"
    open: bool = False  # no token needed
    description: str = ""
    write: bool = False  # needs a write token
    operation_id: str = ""  # default: the handler's name without "_handler"
    tag: str = ""  # default: by path (see _tag)


#: the groups of operations, in the order a generated client or a reader meets them
TAGS = {
    "readings": "Latest readings and their history",
    "devices": "Devices, their status and statistics; polling now",
    "writes": "Writing a point (needs a write token)",
    "stream": "Live readings over a WebSocket",
    "configuration": "Reloading the device file (needs a write token)",
    "service": "Health, readiness, metrics and this document",
}
READ_OR_WRITE: list[dict[str, list[str]]] = [{"readToken": []}, {"writeToken": []}]
WRITE: list[dict[str, list[str]]] = [{"writeToken": []}]


def _tag(route: Route) -> str:
    if route.tag:
        return route.tag
    if route.write and route.method == "PUT":
        return "writes"
    if route.write:
        return "configuration"
    if not route.path.startswith("/api/"):
        return "service"
    if route.path.endswith("/stream"):
        return "stream"
    if "readings" in route.path or "/points/" in route.path:
        return "readings"
    return "devices"


def _operation_id(route: Route) -> str:
    return route.operation_id or route.handler.__name__.removesuffix("_handler")


def _path_parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", "pattern": "^[a-z0-9_-]+$"}}
        for name in names
    ]  # fmt: skip


def _query(query: Query) -> dict[str, Any]:
    parameter: dict[str, Any] = {
        "name": query.name,
        "in": "query",
        "required": False,
        "description": query.description,
        "schema": query.schema,
    }
    if query.repeat:
        parameter.update(schema={"type": "array", "items": query.schema}, explode=True)
    return parameter


def document(routes: list[Route], root_path: str = "", tokens: bool = True) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these routes, served under ``root_path``."""
    models: set[type[BaseModel]] = {Problem}
    for route in routes:
        models.update(m for m in (route.answer, route.body) if m is not None)
    keyed, schemas = models_json_schema(
        [(model, "serialization") for model in sorted(models, key=lambda m: m.__name__)]
        + [(route.body, "validation") for route in routes if route.body is not None],
        ref_template="#/components/schemas/{model}",
    )
    ref = {model: keyed[(model, "serialization")] for model in models}
    body_ref = {r.body: keyed[(r.body, "validation")] for r in routes if r.body is not None}
    problem = {"application/problem+json": {"schema": ref[Problem]}}

    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        responses: dict[str, Any] = {}
        if route.answer is not None:
            ok = {"schema": ref[route.answer]}
            responses["200"] = {"description": route.summary, "content": {route.answer_type: ok}}
        else:
            responses["200"] = {
                "description": route.summary,
                "content": {route.answer_type: {"schema": {"type": "string"}}},
            }
        errors = set(route.errors)
        if tokens and not route.open:
            errors.add(401)
        for status in sorted(errors):
            responses[str(status)] = {"description": ERROR_TITLES[status], "content": problem}
        operation: dict[str, Any] = {
            "operationId": _operation_id(route),
            "tags": [_tag(route)],
            "summary": route.summary,
            "parameters": _path_parameters(route.path) + [_query(q) for q in route.query],
            "responses": responses,
        }
        if route.description:
            operation["description"] = route.description
        if route.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body_ref[route.body]}},
            }
        operation["security"] = [] if route.open else WRITE if route.write else READ_OR_WRITE
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "device-bridge",
            "version": __version__,
            "description": "Readings of devices polled by the bridge; writes with read-back.",
        },
        "servers": [{"url": root_path or "/"}],
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "readToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "BRIDGE_READ_TOKEN (reads are open without one)",
                },
                "writeToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "BRIDGE_WRITE_TOKEN; it may also read",
                },
            },
        },
    }

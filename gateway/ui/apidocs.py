"""The API reference: the merged OpenAPI as a readable page, with who may call each operation.

Server-rendered like every page (no script, the same CSP), so it needs no JavaScript library;
the machine-readable document stays at ``/api/v1/openapi.json``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from gateway import policy
from gateway.ui.kit import Kit

METHODS = ("get", "post", "put", "patch", "delete")


@dataclass
class Operation:
    method: str
    path: str
    summary: str
    description: str
    anchor: str
    who: list[str]
    parameters: list[dict[str, Any]] = field(default_factory=list)
    body: str | None = None
    responses: list[tuple[str, str]] = field(default_factory=list)


def type_of(schema: dict[str, Any]) -> str:
    """A short, readable type: a schema's name, "list of X", "one of a | b", or the JSON type."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    for combined in ("anyOf", "oneOf", "allOf"):
        if combined in schema:
            return " or ".join(type_of(s) for s in schema[combined] if s.get("type") != "null") or "null"
    if schema.get("type") == "array":
        return f"list of {type_of(schema.get('items', {}))}"
    kind = str(schema.get("type", "any"))
    return f"{kind} ({schema['format']})" if "format" in schema else kind


def who_may(method: str, path: str) -> list[str]:
    for rule in policy.RULES:
        if method in rule.methods and rule.path.match(path):
            return [] if rule.roles is policy.PUBLIC else sorted(rule.roles)
    return ["admin"]  # deny by default: no rule, no caller


def operations(spec: dict[str, Any]) -> dict[str, list[Operation]]:
    """The operations by their first tag, in path order."""
    groups: dict[str, list[Operation]] = {}
    for path, item in sorted(spec.get("paths", {}).items()):
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            groups.setdefault((op.get("tags") or ["other"])[0], []).append(
                Operation(
                    method=method.upper(),
                    path=path,
                    summary=str(op.get("summary", "")),
                    description=str(op.get("description", "")),
                    anchor="op-" + re.sub(r"[^a-z0-9]+", "-", f"{method}{path}".lower()).strip("-"),
                    who=who_may(method.upper(), path),
                    parameters=[
                        {
                            "name": p.get("name"),
                            "in": p.get("in"),
                            "required": bool(p.get("required")),
                            "type": type_of(p.get("schema", {})),
                            "description": p.get("description", ""),
                        }
                        for p in op.get("parameters", [])
                    ],
                    body=type_of(body) if body else None,
                    responses=[(code, str(r.get("description", ""))) for code, r in sorted(op["responses"].items())],
                )
            )
    return dict(sorted(groups.items()))


def schemas(spec: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(name, description, fields) for every data format the operations use."""
    found = []
    for name, schema in sorted(spec.get("components", {}).get("schemas", {}).items()):
        required = set(schema.get("required", []))
        fields = [
            {
                "name": key,
                "type": type_of(value),
                "required": key in required,
                "description": value.get("description", ""),
            }
            for key, value in schema.get("properties", {}).items()
        ]
        found.append((name, str(schema.get("description", "")), fields))
    return found


def add_routes(router: APIRouter, ui: Kit) -> None:
    @router.get("/api", response_class=HTMLResponse)
    async def api_reference(request: Request) -> Response:
        spec: dict[str, Any] = await request.app.state.public_openapi()
        return ui.render(
            request,
            "api.html",
            user=await ui.current(request),
            info=spec.get("info", {}),
            groups=operations(spec),
            schemas=schemas(spec),
        )

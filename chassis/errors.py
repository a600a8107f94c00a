"""Problem Details (RFC 9457) for every error a service answers with."""

from __future__ import annotations

import copy
import json
import logging
import traceback
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://integration.landsberg.de/problems/"


class Problem(Exception):
    """Raise from a route to answer with Problem Details."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers
        self.extensions = extensions


def problem_response(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + kind if kind else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors as the ``errors`` member of a validation problem."""
    return [
        {"location": list(map(str, err.get("loc", ()))), "message": err.get("msg", ""), "type": err.get("type", "")}
        for err in errors
    ]


#: What every error answer looks like, for the OpenAPI document (``problem_document``).
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "Problem Details (RFC 9457). `type` names the kind of problem; a problem may carry more members.",
    "properties": {
        "type": {"type": "string", "description": f"`about:blank` or {PROBLEM_BASE}<kind>"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The path that was called"},
        "errors": {
            "type": "array",
            "description": "An invalid request's fields, each with where it is and what is wrong",
            "items": {
                "type": "object",
                "properties": {
                    "location": {"type": "array", "items": {"type": "string"}},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
                "required": ["location", "message", "type"],
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
}
#: FastAPI's own 422 shapes, which these handlers never answer with.
_FRAMEWORK_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def problem_document(openapi: dict[str, Any]) -> dict[str, Any]:
    """Say in an OpenAPI document (in place) what the handlers answer: every 4xx of an ``/api/`` operation
    is Problem Details as ``application/problem+json``, 422 included (FastAPI documents its own shape)."""
    for route, item in openapi.get("paths", {}).items():
        if not route.startswith("/api/"):
            continue
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if "422" in responses:
                responses["422"] = _problem_response("Invalid request: `errors` names what is wrong")
            responses.setdefault("4XX", _problem_response("Refused: not allowed, not found or in conflict"))
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Problem", copy.deepcopy(PROBLEM_SCHEMA))
    for name in _FRAMEWORK_SCHEMAS:  # the outer one first: it refers to the inner one
        others = {key: value for key, value in schemas.items() if key != name}
        if f'"#/components/schemas/{name}"' not in json.dumps([openapi.get("paths", {}), others]):
            schemas.pop(name, None)
    return openapi


def install_problem_handlers(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_document(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.detail,
            kind=exc.kind,
            title=exc.title,
            instance=request.url.path,
            headers=exc.headers,
            **exc.extensions,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(
            422,
            "The request is not valid; see errors.",
            kind="validation",
            title="Invalid request",
            instance=request.url.path,
            errors=validation_errors(exc.errors()),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(
            exc.status_code,
            str(exc.detail),
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, StatementError):
            log.error("unhandled error on %s %s: %s", request.method, request.url.path, database_error(exc))
        else:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "An unexpected error occurred; it has been logged.", instance=request.url.path)


def database_error(exc: StatementError) -> str:
    """A database error as a log may hold it: the driver's error type and code, the statement without its
    parameters, and where it happened. Not the message: the driver's (PostgreSQL's "Failing row contains ...")
    repeats the row, personal data included."""
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    statement = " ".join((exc.statement or "").split())[:500]
    frames = "".join(traceback.format_tb(exc.__traceback__)[-5:])
    kind = type(orig if orig is not None else exc).__name__
    return f"{kind} (SQLSTATE {code}) in [{statement}]\n{frames}"

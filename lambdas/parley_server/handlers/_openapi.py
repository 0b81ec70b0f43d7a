"""The OpenAPI 3.1 document of the HTTP API (GET /v1/openapi.json), built from the
routes as declared (handlers/_routes.py) and msgspec's JSON Schema of their structs,
so it describes exactly what the routes check and answer.

Built once per execution environment, at the document's first request: no other
route needs it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from parley_server.handlers._routes import OPERATIONS, Operation, Param

__all__ = ["document"]

_REF = "#/components/schemas/{name}"
_SUCCESS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}


@functools.cache
def document(title: str, version: str, description: str) -> str:
    """The document as JSON text."""
    operations = list(OPERATIONS)
    types = _types(operations)
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    schema_of = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(
            operation, schema_of
        )
    return msgspec.json.encode(
        {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version, "description": description},
            "paths": paths,
            "components": {
                "schemas": components,
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
                },
            },
        }
    ).decode()


def _types(operations: Iterable[Operation]) -> list[Any]:
    """Every type the document names: bodies, answers, parameters (in order, once)."""
    found: dict[Any, None] = {}
    for operation in operations:
        if operation.body is not None:
            found[operation.body] = None
        if _is_schema(operation.answer):
            found[operation.answer] = None
        for param in (*operation.path_params, *operation.query):
            found[param.kind] = None
        for answer in operation.responses.values():
            for content in answer.get("content", {}).values():
                found[content["model"]] = None
    return list(found)


def _is_schema(answer: Any) -> bool:
    return answer is not None and answer is not Any and answer is not type(None)


def _operation(operation: Operation, schema_of: Mapping[Any, Any]) -> dict[str, Any]:
    described: dict[str, Any] = {"operationId": operation.name}
    if operation.summary:
        described["summary"] = operation.summary
    if operation.description:
        described["description"] = operation.description
    if operation.tags:
        described["tags"] = list(operation.tags)
    parameters = [_parameter(p, "path", schema_of) for p in operation.path_params] + [
        _parameter(p, "query", schema_of) for p in operation.query
    ]
    if parameters:
        described["parameters"] = parameters
    if operation.body is not None:
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema_of[operation.body]}},
        }
    described["responses"] = _responses(operation, schema_of)
    if operation.secured:
        described["security"] = [{"bearer": []}]
    return described


def _parameter(param: Param, where: str, schema_of: Mapping[Any, Any]) -> dict[str, Any]:
    schema = dict(schema_of[param.kind])
    described: dict[str, Any] = {"name": param.name, "in": where, "required": param.required}
    if "description" in schema:
        described["description"] = schema.pop("description")
    described["schema"] = schema
    return described


def _responses(operation: Operation, schema_of: Mapping[Any, Any]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    if operation.status not in operation.responses:
        success: dict[str, Any] = {"description": _SUCCESS.get(operation.status, "OK")}
        if _is_schema(operation.answer):
            success["content"] = {"application/json": {"schema": schema_of[operation.answer]}}
        answers[str(operation.status)] = success
    for status, answer in operation.responses.items():
        described = {"description": answer["description"]}
        if "content" in answer:
            described["content"] = {
                media: {"schema": schema_of[content["model"]]}
                for media, content in answer["content"].items()
            }
        answers[str(status)] = described
    return dict(sorted(answers.items()))

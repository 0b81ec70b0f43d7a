"""How a route of the HTTP API reads its request and writes its answer.

Powertools' resolver routes each request and runs the auth middleware and the
exception handlers (http_api.py); `Routes` declares each route on it from the
function's own signature, as the resolver's validation did, without pydantic:

- a parameter named in the path (`/v1/keys/<user_id>`) is a path parameter, any
  other parameter without a struct type a query parameter; `Annotated[str,
  Meta(pattern=...)]` and the like constrain them (msgspec converts and checks);
- the parameter whose type is a request struct (models/http.py) is the JSON body,
  decoded and checked by msgspec (a struct with a `checked` function has it run on
  the decoded JSON first);
- the return annotation is the answer's schema; a struct, a dict or a list is sent as
  JSON with the route's status, None as the status alone (204), a `Response` as it is.

Whatever breaks a declaration is one `invalid_request` (400) whose `problems` name
each field ("body.phone", "path.user_id", "query.changes_after") without echoing
the input back, a body that is not JSON 400 too, one of another content type 415.

Every route is also recorded as an `Operation`, which handlers/_openapi.py turns
into the OpenAPI document, only when GET /v1/openapi.json asks for it.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from aws_lambda_powertools.event_handler import Response

from parley_server.models.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

__all__ = ["MAX_BODY_BYTES", "OPERATIONS", "Operation", "Routes"]

# Far above any valid request (a full key upload is ~8 KB); refused before parsing.
MAX_BODY_BYTES = 128 * 1024

OPERATIONS: list[Operation] = []  # every route declared, in order, for the document

_RULE_PARAM = re.compile(r"<(\w+)>")
_MISSING_OR_UNKNOWN = re.compile(r"Object (?:missing required|contains unknown) field `([^`]+)`")
_AT = re.compile(r" - at `\$([^`]*)`$")
_INDEX = re.compile(r"\[(\d+)\]")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Param:
    """A path or query parameter: its name, type (constraints in Annotated) and
    whether a query parameter may be left out."""

    name: str
    kind: Any
    required: bool


@dataclass(frozen=True)
class Operation:
    """One route as the document describes it."""

    method: str
    path: str  # the document's form: /v1/keys/{user_id}
    name: str
    status: int
    summary: str | None
    description: str | None
    tags: tuple[str, ...]
    secured: bool
    path_params: tuple[Param, ...]
    query: tuple[Param, ...]
    body: type[msgspec.Struct] | None
    body_arg: str | None  # the function's parameter that takes the body
    answer: Any  # the return annotation: a struct, None or Any (then `responses` says)
    responses: Mapping[int, Any] = field(default_factory=dict)


class Routes:
    """Declares routes on a Powertools resolver or router (`target`)."""

    def __init__(self, target: Any) -> None:
        self.target = target

    @property
    def context(self) -> dict[str, Any]:
        context: dict[str, Any] = self.target.context
        return context

    @property
    def current_event(self) -> Any:
        return self.target.current_event

    def get(self, rule: str, **options: Any) -> Callable[[F], F]:
        return self.route("GET", rule, **options)

    def post(self, rule: str, **options: Any) -> Callable[[F], F]:
        return self.route("POST", rule, **options)

    def put(self, rule: str, **options: Any) -> Callable[[F], F]:
        return self.route("PUT", rule, **options)

    def delete(self, rule: str, **options: Any) -> Callable[[F], F]:
        return self.route("DELETE", rule, **options)

    def route(
        self,
        method: str,
        rule: str,
        *,
        status_code: int = 200,
        summary: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
        security: list[dict[str, list[str]]] | None = None,
        responses: Mapping[int, Any] | None = None,
        cache_control: str | None = None,
        include_in_schema: bool = True,
    ) -> Callable[[F], F]:
        def declare(function: F) -> F:
            operation = _operation(
                function,
                method,
                rule,
                status=status_code,
                summary=summary,
                description=description,
                tags=tuple(tags or ()),
                secured=bool(security),
                responses=responses or {},
            )
            if include_in_schema:
                OPERATIONS.append(operation)

            def call(**path_args: str) -> Response[Any]:
                arguments = _arguments(operation, path_args, self.current_event)
                return _answer(function(**arguments), status_code)

            call.__name__ = function.__name__
            self.target.route(rule, method, cache_control=cache_control)(call)
            return function

        return declare


def _operation(function: Callable[..., Any], method: str, rule: str, **described: Any) -> Operation:
    hints = typing.get_type_hints(function, include_extras=True)
    in_path = set(_RULE_PARAM.findall(rule))
    body: type[msgspec.Struct] | None = None
    body_arg: str | None = None
    path_params: list[Param] = []
    query: list[Param] = []
    for name, parameter in inspect.signature(function).parameters.items():
        kind = hints[name]
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
            body, body_arg = kind, name
        elif name in in_path:
            path_params.append(Param(name, kind, required=True))
        else:
            optional = parameter.default is not inspect.Parameter.empty
            query.append(Param(name, _without_none(kind) if optional else kind, not optional))
    if in_path != {p.name for p in path_params}:
        raise TypeError(f"{function.__name__}: the path names {sorted(in_path)}")
    return Operation(
        method=method,
        path=_RULE_PARAM.sub(r"{\1}", rule),
        name=function.__name__,
        path_params=tuple(path_params),
        query=tuple(query),
        body=body,
        body_arg=body_arg,
        answer=hints.get("return"),
        **described,
    )


def _without_none(kind: Any) -> Any:
    """`T | None` of a query parameter with a default as T: left out, it takes the
    default; given, it is a T."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        kept = [arm for arm in typing.get_args(kind) if arm is not type(None)]
        if len(kept) == 1:
            return kept[0]
    return kind


def _arguments(operation: Operation, path_args: Mapping[str, str], event: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    problems: list[dict[str, str]] = []
    for param in operation.path_params:
        _convert(param, path_args.get(param.name), "path", arguments, problems)
    given = event.query_string_parameters or {}
    for param in operation.query:
        if param.name in given or param.required:
            _convert(param, given.get(param.name), "query", arguments, problems)
    if operation.body is not None and operation.body_arg is not None:
        try:
            arguments[operation.body_arg] = _body(operation.body, event)
        except msgspec.ValidationError as refused:
            problems.append(_problem("body", str(refused)))
    if problems:
        message = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        raise BadRequest(message, problems=problems)
    return arguments


def _convert(
    param: Param,
    value: str | None,
    where: str,
    arguments: dict[str, Any],
    problems: list[dict[str, str]],
) -> None:
    if value is None:
        problems.append({"field": f"{where}.{param.name}", "problem": "required"})
        return
    try:
        arguments[param.name] = msgspec.convert(value, param.kind, strict=False)
    except msgspec.ValidationError as refused:
        problems.append(_problem(f"{where}.{param.name}", str(refused)))


def _problem(where: str, error: str) -> dict[str, str]:
    """msgspec's "Expected `int`, got `str` - at `$.a[0].b`" as the field it names
    ("body.a.0.b") and the problem ("Expected `int`, got `str`")."""
    at = _AT.search(error)
    path = _INDEX.sub(r".\1", at.group(1)) if at else ""
    problem = error[: at.start()] if at else error
    named = _MISSING_OR_UNKNOWN.match(problem)
    if named:
        path += "." + named.group(1)
    return {"field": where + path, "problem": problem}


def _body(model: type[msgspec.Struct], event: Any) -> msgspec.Struct:
    content_type = (event.headers.get("content-type") or "").strip().lower()
    if content_type and not content_type.startswith("application/json"):
        raise UnsupportedMediaType("send application/json")
    text = event.decoded_body or ""  # a body that is not UTF-8 raises UnicodeDecodeError
    if len(text) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        raw = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):  # a ValidationError: a number out of range
        raise BadRequest("the body is not valid JSON") from None
    checked = getattr(model, "checked", None)
    if checked is not None:
        raw = checked(raw)
    return msgspec.convert(raw, model)


def _answer(result: Any, status: int) -> Response[Any]:
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status_code=status, body="")
    return Response(
        status_code=status,
        content_type="application/json",
        body=msgspec.json.encode(result).decode(),
    )

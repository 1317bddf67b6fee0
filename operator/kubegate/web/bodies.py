"""Request bodies: JSON only, bounded in size, validated by a pydantic model that refuses unknown fields
(or by a pydantic TypeAdapter, for bodies read on a hot path: it skips building model objects).

The content type must say JSON, except on a request with an `Authorization` header: Flipt's gateway reads
any body as JSON and its Go SDK sends none. A page on another site can make a browser send a cookie with a
form or `text/plain` body, but never an `Authorization` header, and sending `application/json` across sites
needs the target's CORS consent: so only a request that may be authenticated by cookie must say JSON.

Bad input always ends as a 4xx `ApiProblem` (415, 413, 400 with one violation per bad field), never a 500.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from kubegate.web.errors import FieldViolation, invalid, unsupported_media_type
from kubegate.web.request import Request

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class RequestModel(BaseModel):
    """Base of request bodies: camelCase on the wire (snake_case accepted too, as Flipt's gateway does),
    unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
        frozen=True,
    )


_JSON = "application/json"


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def read_json(request: Request, model: type[M], *, allow_empty: bool = False) -> M:
    """The request's body (read by the adapter: the route declares `reads_body`) as `model`; an empty body
    gives `model()` when `allow_empty`."""
    raw = request.body
    if allow_empty and not raw.strip():
        return model()
    return json_body(request, model)


def json_body(request: Request, schema: type[T] | TypeAdapter[T]) -> T:
    """The request's body validated as `schema` (a model or a TypeAdapter); an empty body is refused."""
    raw = request.body
    if not raw.strip():
        raise invalid("the request needs a JSON object as its body")
    _require_json(request)
    return parse_json(raw, schema)


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}
"""Each model's TypeAdapter, made once: it validates into the model as `model_validate_json` does."""


def _require_json(request: Request) -> None:
    headers = request.headers
    if headers.get("Content-Type") == _JSON or "Authorization" in headers:
        return  # the common case without parsing the header; a header-authenticated request is no CSRF
    if "Content-Type" not in headers or not _is_json(request.content_type):
        sent = repr(request.content_type) if "Content-Type" in headers else "none"
        raise unsupported_media_type(
            f"the body must be JSON: send 'Content-Type: application/json' (got {sent}); only a request with "
            "an Authorization header may leave it out"
        )


def parse_json(raw: bytes, schema: type[T] | TypeAdapter[T]) -> T:
    """`raw` validated as `schema` (a model or a TypeAdapter); 400 naming every bad field otherwise."""
    if isinstance(schema, TypeAdapter):
        adapter: TypeAdapter[T] = schema
    else:
        adapter = _ADAPTERS.get(schema) or _ADAPTERS.setdefault(schema, TypeAdapter(schema))
    try:
        # The common case, a valid body, in one pass (pydantic parses the JSON itself).
        return adapter.validate_json(raw)
    except ValidationError:
        pass  # Read it again, step by step, to say exactly what is wrong.
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise invalid(f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError):
        raise invalid("the body is not valid UTF-8 JSON, or is nested too deeply") from None
    if not isinstance(data, dict):
        raise invalid(f"the body must be a JSON object, not {_json_type(data)}")
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        violations = [FieldViolation(_field(error["loc"]), error["msg"]) for error in exc.errors(include_input=False)]
        summary = "; ".join(f"{v.field or 'body'}: {v.description}" for v in violations)
        raise invalid(f"the body has invalid fields: {summary}", violations) from None


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"

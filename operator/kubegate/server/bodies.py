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

from aiohttp import hdrs, web
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from kubegate.server.errors import FieldViolation, invalid, unsupported_media_type

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


async def read_json(request: web.Request, model: type[M], *, allow_empty: bool = False) -> M:
    """The request's body as `model`; an empty body gives `model()` when `allow_empty`.

    aiohttp refuses a body over the application's `client_max_size` with 413 while reading it.
    """
    raw = await request.read()
    if allow_empty and not raw.strip():
        return model()
    return json_body(request, raw, model)


def json_body(request: web.Request, raw: bytes, schema: type[T] | TypeAdapter[T]) -> T:
    """`raw`, the body just read from `request`, validated as `schema`; an empty body is refused.

    Not a coroutine, unlike `read_json`: a hot path awaits `request.read()` itself and saves one.
    """
    if not raw.strip():
        raise invalid("the request needs a JSON object as its body")
    _require_json(request)
    return parse_json(raw, schema)


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}
"""Each model's TypeAdapter, made once: it validates into the model as `model_validate_json` does."""


def _require_json(request: web.Request) -> None:
    if request.headers.get(hdrs.CONTENT_TYPE) == _JSON or hdrs.AUTHORIZATION in request.headers:
        return  # the common case without parsing the header; a header-authenticated request is no CSRF
    if hdrs.CONTENT_TYPE not in request.headers or not _is_json(request.content_type):
        sent = repr(request.content_type) if hdrs.CONTENT_TYPE in request.headers else "none"
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

"""Response values: what a handler returns, whatever serves it. JSON from the API's pydantic models is
camelCase with every field present."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

JSON = "application/json"
EMPTY_JSON = b"{}"


@dataclass(slots=True)
class Response:
    """An answer: status, body bytes and headers. Never changed once made, so a handler may return the same
    one twice (not `frozen`: a frozen dataclass costs a microsecond to make, and some are made per request)."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    """The Content-Type header; None: none (or the one in `headers`)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    wire_headers: bytes | None = field(default=None, repr=False, compare=False)
    """Content-Type and `headers` as the server writes them, kept by the server the first time it writes this
    answer: a handler that returns the same answer again (one kept per credential) costs no encoding."""


def json_response(model: BaseModel, *, status: int = 200) -> Response:
    return Response(status=status, body=model.model_dump_json(by_alias=True).encode("utf-8"), content_type=JSON)


def json_document(document: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """Any JSON value (a plain dict) as the body."""
    return Response(status=status, body=json.dumps(document).encode("utf-8"), content_type=JSON, headers=headers or {})


def empty_response() -> Response:
    """Flipt answers deletions and expirations with an empty object."""
    return Response(body=EMPTY_JSON, content_type=JSON)

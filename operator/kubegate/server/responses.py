"""JSON responses from the API's pydantic models: camelCase, every field present."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel


def json_response(model: BaseModel, *, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=model.model_dump_json(by_alias=True).encode("utf-8"), content_type="application/json"
    )


EMPTY_JSON = b"{}"


def empty_response() -> web.Response:
    """Flipt answers deletions and expirations with an empty object."""
    return web.Response(body=EMPTY_JSON, content_type="application/json")

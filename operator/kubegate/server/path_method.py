"""`GET /auth/v1/method` (public): the authentication methods and whether they are enabled, as Flipt lists them."""

from __future__ import annotations

from aiohttp import web

from kubegate.server.context import context_of
from kubegate.server.responses import json_response
from kubegate.server.routing import add_route
from kubegate.verify.model import Method, ResponseModel

PATH = "/auth/v1/method"


class MethodInfo(ResponseModel):
    method: Method
    enabled: bool
    session_compatible: bool
    """Whether the method can set the browser session cookie (OIDC can)."""
    metadata: dict[str, str]


class ListMethodsResponse(ResponseModel):
    methods: list[MethodInfo]


def register(app: web.Application) -> None:
    add_route(app, "GET", PATH, list_methods)


async def list_methods(request: web.Request) -> web.Response:
    context = context_of(request)
    # OIDC login arrives with its own issue; until then it is listed as off.
    return json_response(
        ListMethodsResponse(
            methods=[
                MethodInfo(method=Method.TOKEN, enabled=True, session_compatible=False, metadata={}),
                MethodInfo(
                    method=Method.KUBERNETES,
                    enabled=context.kubernetes_exchange is not None,
                    session_compatible=False,
                    metadata={},
                ),
                MethodInfo(method=Method.OIDC, enabled=False, session_compatible=True, metadata={}),
            ]
        )
    )

"""`GET /auth/v1/method` (public): the authentication methods and whether they are enabled, as Flipt lists them."""

from __future__ import annotations

from kubegate.contracts.authentication import Method, ResponseModel
from kubegate.web.request import Request
from kubegate.web.responses import Response, json_response
from kubegate.web.routes import Public, Route

PATH = "/auth/v1/method"


class MethodInfo(ResponseModel):
    method: Method
    enabled: bool
    session_compatible: bool
    """Whether the method can set the browser session cookie (OIDC can)."""
    metadata: dict[str, str]


class ListMethodsResponse(ResponseModel):
    methods: list[MethodInfo]


class MethodList:
    def __init__(self, *, kubernetes_enabled: bool) -> None:
        # OIDC login arrives with its own issue; until then it is listed as off.
        self._answer = json_response(
            ListMethodsResponse(
                methods=[
                    MethodInfo(method=Method.TOKEN, enabled=True, session_compatible=False, metadata={}),
                    MethodInfo(
                        method=Method.KUBERNETES, enabled=kubernetes_enabled, session_compatible=False, metadata={}
                    ),
                    MethodInfo(method=Method.OIDC, enabled=False, session_compatible=True, metadata={}),
                ]
            )
        )

    def routes(self) -> list[Route]:
        return [Route("GET", PATH, self.list_methods, Public())]

    async def list_methods(self, request: Request) -> Response:
        return self._answer

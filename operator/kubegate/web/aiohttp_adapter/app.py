"""Routes on aiohttp: every answer in the JSON error shape, every request counted by route, every route's
access declaration enforced before its handler runs.

Each route is wrapped once, at start: the caller is authenticated (for `Authenticated` routes) and the
body read (for routes that read one); expected problems (`ApiProblem`, aiohttp's 413 while reading a body)
become their answers; a client that hangs up before its body arrived is counted and access-logged as 499
(nginx's "client closed request"), since no answer can reach it and the server did nothing wrong; anything
else is a bug, logged with its traceback and answered with a generic 500 that reveals nothing. A catch-all
route, added last, answers unknown paths (404) and wrong methods (405) in the same shape.

Why not an aiohttp middleware: a middleware runs on every request through two extra coroutines and a
context manager, which cost a tenth of a forward-auth answer; the wrapper costs one frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler as AiohttpHandler
from multidict import CIMultiDictProxy, MultiMapping

from kubegate.verify import Authentication
from kubegate.web.authenticate import Authenticator, require
from kubegate.web.errors import ApiProblem, http_error, internal
from kubegate.web.responses import Response
from kubegate.web.routes import Authenticated, Route

log = logging.getLogger(__name__)

UNMATCHED = "unmatched"
"""The route label of requests no route matched (and of those aiohttp refused before routing)."""
CLIENT_CLOSED_REQUEST = 499
"""The status counted and logged for a request whose client went away mid-request (nginx's code)."""
AUTHENTICATION = web.RequestKey("kubegate_authentication", Authentication)
"""Set on a request once it is authenticated; the access log reads the token id from it."""
_FALLBACK_PATH = "/{unmatched_path:.*}"
_FALLBACK_NAME = "kubegate-unmatched"

Application = web.Application
"""What `build_application` makes: the server runs it with `listener.listening`, tests with aiohttp's client."""
CountRequest = Callable[[str, str, int], None]
"""Counts one answered request: route template, method, status (the server's metrics)."""


class AiohttpRequest:
    """The `Request` view over aiohttp's request: attribute reads, nothing copied."""

    __slots__ = ("_request", "authentication", "body", "headers")

    def __init__(self, request: web.Request, body: bytes) -> None:
        self._request = request
        self.body = body
        self.authentication: Authentication | None = None
        # Read by nearly every request (the credential check, the body's content type): a slot, not a property.
        self.headers: CIMultiDictProxy[str] = request.headers

    @property
    def method(self) -> str:
        return self._request.method

    @property
    def params(self) -> Mapping[str, str]:
        return self._request.match_info

    @property
    def query(self) -> MultiMapping[str]:
        return self._request.query

    @property
    def query_string(self) -> str:
        return self._request.query_string

    @property
    def cookies(self) -> Mapping[str, str]:
        return self._request.cookies

    @property
    def content_type(self) -> str:
        return self._request.content_type

    def authenticated_as(self, authentication: Authentication) -> None:
        self.authentication = authentication
        self._request[AUTHENTICATION] = authentication


def build_application(
    routes: Iterable[Route],
    *,
    authenticator: Authenticator,
    count_request: CountRequest,
    max_body_bytes: int,
    max_header_field_bytes: int,
) -> Application:
    """An aiohttp application serving `routes`, then the catch-all for everything else."""
    app = web.Application(client_max_size=max_body_bytes, handler_args={"max_field_size": max_header_field_bytes})
    for route in routes:
        app.router.add_route(route.method, route.path, _answering(route, authenticator, count_request))
    app.router.add_route("*", _FALLBACK_PATH, _answering_unmatched(count_request), name=_FALLBACK_NAME)
    return app


def route_of(request: web.BaseRequest) -> str:
    """The route template (`/auth/v1/tokens/{id}`), never the raw path: it holds no client data."""
    # A request aiohttp refused before routing it has no match info.
    match_info = getattr(request, "_match_info", None)
    resource = match_info.route.resource if match_info is not None else None
    if resource is None or resource.name == _FALLBACK_NAME:
        return UNMATCHED
    canonical: str = resource.canonical
    return canonical


def to_aiohttp(response: Response) -> web.Response:
    return web.Response(
        status=response.status,
        body=response.body or None,
        content_type=response.content_type,
        headers=response.headers,
    )


def _answering(route: Route, authenticator: Authenticator, count: CountRequest) -> AiohttpHandler:
    # Everything a request needs is looked up once, here: this runs on every request's path.
    handler, reads_body, label = route.handler, route.reads_body, route.path
    access = route.access if isinstance(route.access, Authenticated) else None
    authenticate = authenticator.authenticate
    surface = access.surface if access is not None else ""
    requirement = access.requirement if access is not None else None
    action = access.action if access is not None else ""

    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            view = AiohttpRequest(request, b"")
            if access is not None:
                authentication = await authenticate(view, surface=surface)
                view.authenticated_as(authentication)
                if requirement is not None:
                    require(authentication, requirement, action=action)
            if reads_body:
                view.body = await request.read()
            response = to_aiohttp(await handler(view))
        except ApiProblem as problem:
            response = to_aiohttp(problem.response())
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = to_aiohttp(http_error(exc.status, exc.reason, allow=exc.headers.get("Allow")).response())
        except ConnectionResetError:
            # aiohttp fails a body read this way once the client is gone; the same error from a
            # connection of ours (to the Kubernetes API) while the client is still there is a bug.
            if request.transport is not None:
                log.exception("unexpected failure in %s %s", request.method, label)
                response = to_aiohttp(internal().response())
            else:
                log.debug("client closed the connection during %s %s", request.method, label)
                response = web.Response(status=CLIENT_CLOSED_REQUEST)
        except Exception:
            log.exception("unexpected failure in %s %s", request.method, label)
            response = to_aiohttp(internal().response())
        count(label, request.method, response.status)
        return response

    return answer


def _answering_unmatched(count: CountRequest) -> AiohttpHandler:
    async def answer(request: web.Request) -> web.StreamResponse:
        """404, or 405 with `Allow` when another route has this path (error paths only: it asks every route)."""
        allowed: set[str] = set()
        for resource in request.app.router.resources():
            if resource.name != _FALLBACK_NAME:
                _, methods = await resource.resolve(request)
                allowed |= methods
        if allowed:
            problem = http_error(405, "Method Not Allowed", allow=",".join(sorted(allowed)))
        else:
            problem = http_error(404, "Not Found")
        count(UNMATCHED, request.method, problem.status)
        return to_aiohttp(problem.response())

    return answer

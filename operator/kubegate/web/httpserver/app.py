"""Routes as the protocol serves them: each route wrapped once, at start, so that its caller is authenticated
(for `Authenticated` routes) before its handler runs, expected problems (`ApiProblem`) become their answers
and anything else is a bug, logged with its traceback and answered with a generic 500 that reveals nothing.
Unknown paths get 404 and wrong methods 405 (with `Allow`), in the same JSON shape. Every answered request
is counted by route template and, when the access log is on, written to it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from kubegate.web.authenticate import Authenticator, require
from kubegate.web.errors import ApiProblem, http_error, internal
from kubegate.web.httpserver.access_log import AccessLog
from kubegate.web.httpserver.request import HttpRequest
from kubegate.web.httpserver.routing import Router, label_of
from kubegate.web.responses import Response
from kubegate.web.routes import Authenticated, Route

log = logging.getLogger(__name__)

CountRequest = Callable[[str, str, int], None]
"""Counts one answered request: route template, method, status (the server's metrics)."""
Answer = Callable[[HttpRequest], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class RouteTarget:
    label: str
    """The route template without expressions: the `route` label of metrics and the access log."""
    answer: Answer
    reads_body: bool


class HttpApp:
    """What a listener serves: the routes, the request counter and (set by the listener) the access log."""

    def __init__(self, routes: Iterable[Route], *, authenticator: Authenticator, count_request: CountRequest) -> None:
        self.router = Router(
            (
                route.method,
                route.path,
                RouteTarget(label_of(route.path), _answering(route, authenticator), route.reads_body),
            )
            for route in routes
        )
        self._count = count_request
        self.access_log: AccessLog | None = None

    def unmatched(self, allowed: frozenset[str]) -> Response:
        if allowed:
            return http_error(405, "Method Not Allowed", allow=",".join(sorted(allowed))).response()
        return http_error(404, "Not Found").response()

    def record(self, method: str, label: str, status: int, *, seconds: float, remote: str, token_id: str) -> None:
        self._count(label, method, status)
        if self.access_log is not None:
            self.access_log.write(method, label, status, seconds=seconds, remote=remote, token_id=token_id)


def _answering(route: Route, authenticator: Authenticator) -> Answer:
    # Everything a request needs is looked up once, here: this runs on every request's path.
    handler, label = route.handler, route.path
    access = route.access if isinstance(route.access, Authenticated) else None
    authenticate = authenticator.authenticate
    surface = access.surface if access is not None else ""
    requirement = access.requirement if access is not None else None
    action = access.action if access is not None else ""

    async def answer(request: HttpRequest) -> Response:
        try:
            if access is not None:
                authentication = await authenticate(request, surface=surface)
                request.authentication = authentication
                if requirement is not None:
                    require(authentication, requirement, action=action)
            return await handler(request)
        except ApiProblem as problem:
            return problem.response()
        except Exception:
            log.exception("unexpected failure in %s %s", request.method, label)
            return internal().response()

    return answer

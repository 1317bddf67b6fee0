"""Routes: every answer in the JSON error shape, and every request counted by route.

Each handler is registered through `add_route`, which wraps it once, at start: expected problems
(`ApiProblem`, aiohttp's 413 while reading a body) become their answers; a client that hangs up before
its body arrived is counted and access-logged as 499 (nginx's "client closed request"), since no answer
can reach it and the server did nothing wrong; anything else is a bug, logged with its traceback and
answered with a generic 500 that reveals nothing. A catch-all route, added last by `add_fallback`, answers
unknown paths (404) and wrong methods (405) in the same shape.

Why not an aiohttp middleware: a middleware runs on every request through two extra coroutines and a
context manager, which cost a tenth of a forward-auth answer; the wrapper costs one frame.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from kubegate.server.context import CONTEXT
from kubegate.server.errors import ApiProblem, from_http_exception, internal

log = logging.getLogger(__name__)

UNMATCHED = "unmatched"
"""The route label of requests no route matched (and of those aiohttp refused before routing)."""
CLIENT_CLOSED_REQUEST = 499
"""The status counted and logged for a request whose client went away mid-request (nginx's code)."""
_FALLBACK_PATH = "/{unmatched_path:.*}"
_FALLBACK_NAME = "kubegate-unmatched"


def add_route(app: web.Application, method: str, path: str, handler: Handler) -> None:
    """Register `handler` for `method` (`*`: any) on `path`, answering and counting as described above."""
    app.router.add_route(method, path, _answering(app, path, handler))


def add_fallback(app: web.Application) -> None:
    """Answer every request no other route takes; call it after every other route is registered."""
    app.router.add_route("*", _FALLBACK_PATH, _answering(app, UNMATCHED, _unmatched), name=_FALLBACK_NAME)


def route_of(request: web.BaseRequest) -> str:
    """The route template (`/auth/v1/tokens/{id}`), never the raw path: it holds no client data."""
    # A request aiohttp refused before routing it has no match info.
    match_info = getattr(request, "_match_info", None)
    resource = match_info.route.resource if match_info is not None else None
    if resource is None or resource.name == _FALLBACK_NAME:
        return UNMATCHED
    canonical: str = resource.canonical
    return canonical


def _answering(app: web.Application, route: str, handler: Handler) -> Handler:
    count = app[CONTEXT].metrics.count_request

    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except ApiProblem as problem:
            response = problem.response()
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = from_http_exception(exc).response()
        except ConnectionResetError:
            # aiohttp fails a body read this way once the client is gone; the same error from a
            # connection of ours (to the Kubernetes API) while the client is still there is a bug.
            if request.transport is not None:
                log.exception("unexpected failure in %s %s", request.method, route)
                response = internal().response()
            else:
                log.debug("client closed the connection during %s %s", request.method, route)
                response = web.Response(status=CLIENT_CLOSED_REQUEST)
        except Exception:
            log.exception("unexpected failure in %s %s", request.method, route)
            response = internal().response()
        count(route, request.method, response.status)
        return response

    return answer


async def _unmatched(request: web.Request) -> web.StreamResponse:
    """404, or 405 with `Allow` when another route has this path (error paths only: it asks every route)."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.name != _FALLBACK_NAME:
            _, methods = await resource.resolve(request)
            allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()

"""The one middleware: every answer in the JSON error shape, and every request counted by route.

Expected problems (ApiProblem, aiohttp's 404/405/413) become their answers; anything else is a bug,
logged with its traceback and answered with a generic 500 that reveals nothing.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from kubegate.server.context import CONTEXT
from kubegate.server.errors import ApiProblem, from_http_exception, internal

log = logging.getLogger(__name__)

UNMATCHED = "unmatched"


def route_of(request: web.BaseRequest) -> str:
    """The route template (`/auth/v1/tokens/{id}`), never the raw path: it holds no client data."""
    # A request aiohttp refused before routing it has no match info.
    match_info = getattr(request, "_match_info", None)
    resource = match_info.route.resource if match_info is not None else None
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except ApiProblem as problem:
        response = problem.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = from_http_exception(exc).response()
    except Exception:
        log.exception("unexpected failure in %s %s", request.method, route_of(request))
        response = internal().response()
    request.app[CONTEXT].metrics.count_request(route_of(request), request.method, response.status)
    return response

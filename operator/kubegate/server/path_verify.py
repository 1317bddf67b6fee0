"""Forward auth, `/auth/v1/verify`: the check that ingress proxies make before they forward a request.

- nginx `auth_request`, Traefik `ForwardAuth`: point them at `/auth/v1/verify`, optionally with required
  groups as query parameters: `/auth/v1/verify?group=a&group=b` requires membership in a AND b.
- Envoy `ext_authz` (HTTP service, `path_prefix: /auth/v1/verify`): Envoy appends the client's own path
  and query, which land on `/auth/v1/verify/{tail}`. Such a query string is the client's, so it never
  sets requirements there.

Any HTTP method is accepted (proxies forward the client's). 200 carries the identity in headers
(`X-Auth-Request-User`, `X-Auth-Request-Groups` comma-separated, as oauth2-proxy names them, plus
`X-Kubegate-Token-Id` and `X-Kubegate-Method`); 401
carries `WWW-Authenticate: Bearer`; 403 names the missing groups.
"""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict

from kubegate.server.auth import authenticate
from kubegate.server.errors import field_error, forbidden
from kubegate.server.routing import add_route
from kubegate.verify import Authentication

PATH = "/auth/v1/verify"
PREFIX_PATH = "/auth/v1/verify/{tail:.*}"
USER_HEADER = "X-Auth-Request-User"
GROUPS_HEADER = "X-Auth-Request-Groups"
KUBEGATE_ID_HEADER = "X-Kubegate-Token-Id"
KUBEGATE_METHOD_HEADER = "X-Kubegate-Method"


def register(app: web.Application) -> None:
    handler = ForwardAuth().verify
    add_route(app, "*", PATH, handler)
    add_route(app, "*", PREFIX_PATH, handler)


def identity_headers(authentication: Authentication) -> CIMultiDict[str]:
    """The headers a 200 carries for `authentication`. Pure."""
    identity = authentication.identity
    return CIMultiDict(
        {
            USER_HEADER: identity.username,
            GROUPS_HEADER: ",".join(identity.groups),
            KUBEGATE_ID_HEADER: authentication.id,
            KUBEGATE_METHOD_HEADER: authentication.method.value,
        }
    )


class ForwardAuth:
    """Proxies ask about the same few credentials over and over: the headers for one are built once and
    kept with its Authentication (see `Authentication.derived`, keyed by this object)."""

    async def verify(self, request: web.Request) -> web.Response:
        authentication = await authenticate(request, surface="verify")
        if "tail" not in request.match_info and request.query_string:
            _require_groups(authentication, request.query.getall("group", []))
        derived = authentication.derived
        headers = derived.get(self)
        if headers is None:
            headers = derived[self] = identity_headers(authentication)
        return web.Response(headers=headers)


def _require_groups(authentication: Authentication, required: list[str]) -> None:
    """403 unless the caller is in every group of `required`; 400 for an empty group name."""
    if any(not group for group in required):
        raise field_error("group", "must name a group; remove the empty group parameter")
    identity = authentication.identity
    missing = [group for group in required if group not in identity.groups]
    if missing:
        raise forbidden(
            f"{identity.username} is not a member of the required groups {', '.join(missing)}",
            requirement={"requirement": "group", "allOf": required, "missing": missing},
        )

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

from kubegate.server.auth import authenticate
from kubegate.server.errors import field_error, forbidden

PATH = "/auth/v1/verify"
PREFIX_PATH = "/auth/v1/verify/{tail:.*}"
USER_HEADER = "X-Auth-Request-User"
GROUPS_HEADER = "X-Auth-Request-Groups"
KUBEGATE_ID_HEADER = "X-Kubegate-Token-Id"
KUBEGATE_METHOD_HEADER = "X-Kubegate-Method"


def register(app: web.Application) -> None:
    app.router.add_route("*", PATH, verify)
    app.router.add_route("*", PREFIX_PATH, verify)


async def verify(request: web.Request) -> web.Response:
    authentication = await authenticate(request, surface="verify")
    identity = authentication.identity
    if "tail" not in request.match_info and request.query_string:
        required = request.query.getall("group", [])
        if any(not group for group in required):
            raise field_error("group", "must name a group; remove the empty group parameter")
        missing = [group for group in required if group not in identity.groups]
        if missing:
            raise forbidden(
                f"{identity.username} is not a member of the required groups {', '.join(missing)}",
                requirement={"requirement": "group", "allOf": required, "missing": missing},
            )
    return web.Response(
        headers={
            USER_HEADER: identity.username,
            GROUPS_HEADER: ",".join(identity.groups),
            KUBEGATE_ID_HEADER: authentication.id,
            KUBEGATE_METHOD_HEADER: authentication.method.value,
        }
    )

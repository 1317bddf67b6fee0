"""Forward auth, `/auth/v1/verify`: the check that ingress proxies make before they forward a request.

- nginx `auth_request`, Traefik `ForwardAuth`: point them at `/auth/v1/verify`, optionally with required
  groups as query parameters: `/auth/v1/verify?group=a&group=b` requires membership in a AND b.
- Envoy `ext_authz` (HTTP service, `path_prefix: /auth/v1/verify`): Envoy appends the client's own path
  and query, which land on `/auth/v1/verify/{tail}`. Such a query string is the client's, so it never
  sets requirements there.

Any HTTP method is accepted (proxies forward the client's). 200 carries the identity in headers
(`X-Auth-Request-User`, `X-Auth-Request-Groups` comma-separated, as oauth2-proxy names them, and
`X-Auth-Request-Email` for an OIDC token with an email, plus `X-Kubegate-Token-Id` and `X-Kubegate-Method`); 401
carries `WWW-Authenticate: Bearer`; 403 names the missing groups.
"""

from __future__ import annotations

from kubegate.verify import Authentication
from kubegate.verify.requirements import Requirement
from kubegate.web.authenticate import require
from kubegate.web.errors import field_error
from kubegate.web.request import Request, caller
from kubegate.web.responses import Response
from kubegate.web.routes import Authenticated, Route

PATH = "/auth/v1/verify"
PREFIX_PATH = "/auth/v1/verify/{tail:.*}"
USER_HEADER = "X-Auth-Request-User"
GROUPS_HEADER = "X-Auth-Request-Groups"
KUBEGATE_ID_HEADER = "X-Kubegate-Token-Id"
KUBEGATE_METHOD_HEADER = "X-Kubegate-Method"
EMAIL_HEADER = "X-Auth-Request-Email"
EMAIL_METADATA = "io.kubegate.auth.oidc.email"


def identity_headers(authentication: Authentication) -> dict[str, str]:
    """The headers a 200 carries for `authentication`. Pure. A plain dict: one is kept per credential in use,
    and a case-insensitive multidict takes three times the memory."""
    identity = authentication.identity
    headers = {
        USER_HEADER: identity.username,
        GROUPS_HEADER: ",".join(identity.groups),
        KUBEGATE_ID_HEADER: authentication.id,
        KUBEGATE_METHOD_HEADER: authentication.method.value,
    }
    email = authentication.metadata.get(EMAIL_METADATA)
    if email:
        headers[EMAIL_HEADER] = email
    return headers


class ForwardAuth:
    """Proxies ask about the same few credentials over and over: the answer for one is built once and
    kept with its Authentication (see `Authentication.derived`, keyed by this object)."""

    def routes(self) -> list[Route]:
        access = Authenticated(surface="verify")
        return [
            Route("*", PATH, self.verify, access, now=self.verify_now),
            Route("*", PREFIX_PATH, self.verify, access, now=self.verify_now),
        ]

    async def verify(self, request: Request) -> Response:
        return self.verify_now(request)

    def verify_now(self, request: Request) -> Response:
        """The answer for the authenticated caller: it never waits."""
        authentication = caller(request)
        if request.query_string and "tail" not in request.params:
            _require_groups(authentication, request.query.getall("group", []))
        derived = authentication.derived
        answer: Response | None = derived.get(self)
        if answer is None:
            answer = derived[self] = Response(headers=identity_headers(authentication))
        return answer


def _require_groups(authentication: Authentication, required: list[str]) -> None:
    """403 unless the caller is in every group of `required`; 400 for an empty group name."""
    if any(not group for group in required):
        raise field_error("group", "must name a group; remove the empty group parameter")
    require(authentication, Requirement.all_of(required))

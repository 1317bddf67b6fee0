"""`/.well-known/openid-configuration` and `/.well-known/jwks.json`: how anyone verifies client tokens.

kubegate is the issuer of its client tokens; these two documents let third-party libraries verify them
offline, as Kubernetes publishes its service-account issuer. There is no login at this issuer, so the
discovery document names only what a verifier needs.
"""

from __future__ import annotations

from kubegate.state.public_keys import PublicKeys
from kubegate.verify.client_tokens import ALGORITHM
from kubegate.web.errors import not_found, unavailable
from kubegate.web.request import Request
from kubegate.web.responses import Response, json_document
from kubegate.web.routes import Public, Route

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"
# Verifiers may cache the keys briefly; a rotation publishes the new key before it signs anything new
# that they could not verify, since they refetch on an unknown kid.
CACHE_CONTROL = "public, max-age=60"
_CACHED = {"Cache-Control": CACHE_CONTROL}


class Discovery:
    """The issuer's documents; `issuer` and `public_keys` are None on a server that issues no client tokens."""

    def __init__(self, *, issuer: str | None, public_keys: PublicKeys | None) -> None:
        self._issuer = issuer
        self._public_keys = public_keys

    def routes(self) -> list[Route]:
        return [
            Route("GET", DISCOVERY_PATH, self.discovery, Public()),
            Route("GET", JWKS_PATH, self.jwks, Public()),
        ]

    def _issuing(self) -> tuple[str, PublicKeys]:
        if self._issuer is None or self._public_keys is None:
            raise not_found("this server issues no client tokens: it has no --issuer-url")
        return self._issuer, self._public_keys

    async def discovery(self, request: Request) -> Response:
        issuer, _ = self._issuing()
        document = {
            "issuer": issuer,
            "jwks_uri": issuer + JWKS_PATH,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "nbf",
                "jti",
                "uid",
                "method",
                "groups",
                "metadata",
            ],
        }
        return json_document(document, headers=_CACHED)

    async def jwks(self, request: Request) -> Response:
        _, public_keys = self._issuing()
        published = public_keys.current()
        if published is None:
            raise unavailable("the operator has not published client-token signing keys yet")
        return json_document(published.jwks, headers=_CACHED)

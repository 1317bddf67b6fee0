"""`/.well-known/openid-configuration` and `/.well-known/jwks.json`: how anyone verifies client tokens.

kubegate is the issuer of its client tokens; these two documents let third-party libraries verify them
offline, as Kubernetes publishes its service-account issuer. There is no login at this issuer, so the
discovery document names only what a verifier needs.
"""

from __future__ import annotations

from aiohttp import web

from kubegate.server.context import context_of
from kubegate.server.errors import not_found, unavailable
from kubegate.server.routing import add_route
from kubegate.verify.client_tokens import ALGORITHM

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"
# Verifiers may cache the keys briefly; a rotation publishes the new key before it signs anything new
# that they could not verify, since they refetch on an unknown kid.
CACHE_CONTROL = "public, max-age=60"


def register(app: web.Application) -> None:
    add_route(app, "GET", DISCOVERY_PATH, discovery)
    add_route(app, "GET", JWKS_PATH, jwks)


def _issuer(request: web.Request) -> str:
    context = context_of(request)
    issuer = context.settings.issuer_url
    if issuer is None or context.signing_keys is None:
        raise not_found("this server issues no client tokens: it has no --issuer-url")
    return issuer


async def discovery(request: web.Request) -> web.Response:
    issuer = _issuer(request)
    document = {
        "issuer": issuer,
        "jwks_uri": issuer + JWKS_PATH,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "uid", "method", "groups", "metadata"],
    }
    return web.json_response(document, headers={"Cache-Control": CACHE_CONTROL})


async def jwks(request: web.Request) -> web.Response:
    _issuer(request)
    signing_keys = context_of(request).signing_keys
    keyset = signing_keys.current() if signing_keys is not None else None
    if keyset is None:
        raise unavailable("the operator has not published client-token signing keys yet")
    return web.json_response(keyset.jwks(), headers={"Cache-Control": CACHE_CONTROL})

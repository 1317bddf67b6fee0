"""The two verifiers of OIDC access tokens, built together over one provider directory and one HTTP client:
the server and an in-process verifier wire them the same way."""

from __future__ import annotations

from dataclasses import dataclass

from kubegate.state.providers import Providers
from kubegate.verify.oidc.access_tokens import OidcAccessTokenVerifier
from kubegate.verify.oidc.keys import ProviderKeyCache
from kubegate.verify.oidc.opaque import OpaqueOidcVerifier
from kubegate.verify.oidc.provider_http import ProviderHttp


@dataclass(frozen=True)
class OidcVerifiers:
    access_tokens: OidcAccessTokenVerifier
    """JWT access tokens, from the providers' keys (the engine's `OidcVerifier`)."""
    opaque: OpaqueOidcVerifier
    """Opaque access tokens, by introspection or userinfo (the engine's `OpaqueTokenVerifier`)."""


def oidc_verifiers(
    providers: Providers,
    http: ProviderHttp,
    *,
    leeway: float,
    jwks_refetch_cooldown: float,
    cache_seconds: float,
    cache_size: int,
    accept_refresh_tokens: bool,
) -> OidcVerifiers:
    """Both verifiers over `providers`, calling providers through `http`; the keyword arguments are the
    server's `oidc_*` settings."""
    return OidcVerifiers(
        access_tokens=OidcAccessTokenVerifier(
            providers=providers,
            keys=ProviderKeyCache(http=http, refetch_cooldown=jwks_refetch_cooldown),
            leeway=leeway,
            cache_seconds=cache_seconds,
            cache_size=cache_size,
        ),
        opaque=OpaqueOidcVerifier(
            providers=providers,
            http=http,
            cache_seconds=cache_seconds,
            cache_size=cache_size,
            accept_refresh_tokens=accept_refresh_tokens,
        ),
    )

"""Verifying OIDC access tokens inside a Python service, without Kubernetes and without a kubegate server.

The service names its trusted issuers (`discovery.discover` reads each one), and gets the same `Verifier`
the server runs, fed by `Providers.publish` instead of the operator's Secrets:

    http = ProviderHttp(timeout=5.0)
    dex = await discover("https://dex.example/dex", http, audiences=["my-api"])
    async with in_process_verifier([dex], http=http) as local:
        authentication = await local.verify(token)

JWTs are verified from memory (one JWKS read per cooldown when a token names an unknown key), opaque tokens
by introspection or userinfo where a provider opts in; static tokens and client tokens are kubegate's own
and have no place here, so none is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

from kubegate.contracts.authentication import Authentication
from kubegate.state.providers import Providers
from kubegate.state.static_tokens import StaticTokenIndex
from kubegate.validation_config.providers import ProviderConfig
from kubegate.verify.engine import Verifier
from kubegate.verify.oidc.provider_http import ProviderHttp
from kubegate.verify.oidc.verifiers import oidc_verifiers


@dataclass(frozen=True, kw_only=True)
class InProcessVerifier:
    """A `Verifier` of the trusted issuers' tokens, and what it holds: close it (or use `async with`) when
    done, which closes the connections to the providers."""

    verifier: Verifier
    providers: Providers
    """The trusted issuers: `publish` and `withdraw` change them while the verifier runs."""
    http: ProviderHttp

    async def verify(self, token: str, *, provider_hint: str | None = None) -> Authentication:
        """`Verifier.verify`: raises Unauthenticated, RequirementFailed or VerifierUnavailable
        (`kubegate.verify.errors`)."""
        return await self.verifier.verify(token, provider_hint=provider_hint)

    async def close(self) -> None:
        await self.http.close()

    async def __aenter__(self) -> InProcessVerifier:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()


def in_process_verifier(
    configs: Iterable[ProviderConfig],
    *,
    http: ProviderHttp | None = None,
    provider_timeout: float = 5.0,
    provider_max_concurrent: int = 16,
    leeway: float = 30.0,
    jwks_refetch_cooldown: float = 30.0,
    cache_seconds: float = 300.0,
    cache_size: int = 10_000,
    accept_refresh_tokens: bool = False,
) -> InProcessVerifier:
    """A verifier of the access tokens of `configs` (from `discovery.discover`); the keyword arguments are
    the server's `oidc_*` settings, with their defaults.

    `http`: the provider client `discover` used (its connections are reused); None: a new one, with
    `provider_timeout` (seconds per call) and `provider_max_concurrent` (calls in flight per provider).
    Either way `close` closes it.
    `leeway`: seconds of clock skew allowed for `exp`, `nbf` and `iat`.
    `jwks_refetch_cooldown`: least seconds between two reads of one provider's JWKS (unknown key ids).
    `cache_seconds`, `cache_size`: how long (never past `exp`) and how many verified tokens are remembered.
    `accept_refresh_tokens`: accept what introspection calls a refresh token (see `OpaqueOidcVerifier`).

    Raises ValueError when two configs have one issuer.
    """
    providers = Providers()
    for config in configs:
        providers.publish(config)
    if http is None:
        http = ProviderHttp(
            timeout=provider_timeout, max_concurrent=provider_max_concurrent, user_agent="kubegate-in-process"
        )
    verifiers = oidc_verifiers(
        providers,
        http,
        leeway=leeway,
        jwks_refetch_cooldown=jwks_refetch_cooldown,
        cache_seconds=cache_seconds,
        cache_size=cache_size,
        accept_refresh_tokens=accept_refresh_tokens,
    )
    verifier = Verifier(static_tokens=StaticTokenIndex(), oidc=verifiers.access_tokens, opaque=verifiers.opaque)
    return InProcessVerifier(verifier=verifier, providers=providers, http=http)

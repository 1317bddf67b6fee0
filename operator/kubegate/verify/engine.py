"""The one verification engine: every surface (API, TokenReview webhook, forward auth, decorators) calls it.

It classifies the credential first (see `classify`), then hands it to the verifier of its kind. Client
tokens, OIDC access tokens and opaque tokens plug in through the protocols below; until a verifier is
plugged in, its kind is refused like any unknown credential.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Container
from typing import Protocol

from kubegate.contracts.authentication import Authentication
from kubegate.contracts.token_format import is_generated_shape, token_digest
from kubegate.state.static_tokens import StaticTokenIndex
from kubegate.verify.classify import Kind, classify
from kubegate.verify.errors import Unauthenticated
from kubegate.verify.jwt_segments import UnverifiedJwt, looks_like_jwt


class ClientTokenVerifier(Protocol):
    """Verifies kubegate's own client tokens offline (signature, expiry, deny-list); issue 5."""

    @property
    def issuer(self) -> str:
        """The `iss` of every client token kubegate signs."""
        ...

    async def verify(self, token: str) -> Authentication:
        """Raise Unauthenticated for any token that is not a valid, unrevoked client token."""
        ...


class OidcVerifier(Protocol):
    """Verifies access tokens of configured OIDC providers (JWKS, introspection, userinfo)."""

    @property
    def issuers(self) -> Container[str]:
        """The `iss` values of the configured providers: a live container (providers come and go), which
        the Verifier reads once and keeps."""
        ...

    async def verify(
        self, token: str, *, issuer: str | None, unverified: UnverifiedJwt | None = None
    ) -> Authentication:
        """Verify a JWT whose (unverified) `iss` is `issuer`; opaque tokens go to an `OpaqueTokenVerifier`.
        `unverified`: the token as the classifier read it, when it did (saves reading it again).

        Raise Unauthenticated when it is invalid, VerifierUnavailable when the provider cannot be reached,
        RequirementFailed when its holder misses a requirement of the provider.
        """
        ...

    def seen(self, token: str) -> Authentication | None:
        """The authentication of a token verified before and still valid, from memory and without parsing it;
        None when `verify` must decide. Raises RequirementFailed as `verify` does."""
        ...


class OpaqueTokenVerifier(Protocol):
    """Verifies credentials that are neither JWTs nor known static tokens (OIDC token introspection)."""

    async def verify(self, token: str, *, provider_hint: str | None = None) -> Authentication:
        """Raise Unauthenticated when no provider vouches for `token`, VerifierUnavailable when one cannot be
        asked now. `provider_hint` (a provider's name or issuer, from the request) narrows the providers
        asked to that one."""
        ...


log = logging.getLogger(__name__)
_NO_ISSUERS: frozenset[str] = frozenset()


class Verifier:
    def __init__(
        self,
        *,
        static_tokens: StaticTokenIndex,
        client_tokens: ClientTokenVerifier | None = None,
        oidc: OidcVerifier | None = None,
        opaque: OpaqueTokenVerifier | None = None,
        static_token_prefix: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """
        `opaque`: asked about a credential that is not JWT-shaped and not a known static token, unless the
        credential looks like a kubegate static token (see `_may_be_opaque`); None: such credentials are
        refused at once.
        `static_token_prefix`: the prefix of kubegate's generated static tokens (the operator's
        `token_prefix`), so that a credential carrying it is never sent to an opaque-token verifier.
        """
        self.static_tokens = static_tokens
        self._client_tokens = client_tokens
        self._oidc = oidc
        self._opaque = opaque
        self._static_token_prefix = static_token_prefix
        self._clock = clock
        self._client_issuer = client_tokens.issuer if client_tokens is not None else None
        self._oidc_issuers = oidc.issuers if oidc is not None else _NO_ISSUERS

    async def verify(self, credential: str, *, provider_hint: str | None = None) -> Authentication:
        """The authentication a credential stands for; raises Unauthenticated when it stands for none,
        RequirementFailed when its holder misses a requirement of its provider, VerifierUnavailable when a
        source needed to decide cannot be reached.

        `credential` comes from `credentials.credential_from`, which already refused malformed input.
        `provider_hint` names the OIDC provider an opaque token comes from (its name or issuer).
        """
        classified = classify(credential, client_issuer=self._client_issuer, oidc_issuers=self._oidc_issuers)
        if classified.kind is Kind.STATIC:
            authentication = self.verify_static(credential)
            if authentication is None:
                assert self._opaque is not None
                return await self._opaque.verify(credential, provider_hint=provider_hint)
            return authentication
        if classified.kind is Kind.CLIENT and self._client_tokens is not None:
            return await self._client_tokens.verify(credential)
        if classified.kind is Kind.OIDC and self._oidc is not None:
            return await self._oidc.verify(credential, issuer=classified.issuer, unverified=classified.unverified)
        log.debug("refused a JWT (iss %r): %s", classified.issuer, classified.reason or "no verifier for its kind")
        raise Unauthenticated("untrusted_issuer")

    def verify_now(self, credential: str) -> Authentication | None:
        """The authentication of a credential that needs no waiting, or None when `verify` must be awaited.

        Not JWT-shaped means a static token: looked up in memory (raises Unauthenticated when unknown or
        expired), or, when unknown, possibly an opaque token for `verify` to hand on. The shortcut saves the
        hot path a coroutine; so is an OIDC access token its verifier has seen; `verify` decides every other
        credential.
        """
        if looks_like_jwt(credential):
            # A seen OIDC access token is answered from memory, as a static token is.
            return self._oidc.seen(credential) if self._oidc is not None else None
        return self.verify_static(credential)

    def verify_static(self, credential: str) -> Authentication | None:
        """The authentication of a known static token; None when `credential` is unknown but may be an opaque
        token for the opaque-token verifier. Raises Unauthenticated when it is expired, or unknown and not
        for the opaque-token verifier."""
        record = self.static_tokens.lookup(token_digest(credential))
        if record is None:
            if self._may_be_opaque(credential):
                return None
            raise Unauthenticated("unknown")
        if record.expired(self._clock()):
            raise Unauthenticated("expired")
        return self.static_tokens.authentication(record)

    def _may_be_opaque(self, credential: str) -> bool:
        """Whether an unknown credential goes to the opaque-token verifier: only when one is configured, and
        never a credential shaped like a kubegate static token (the configured prefix, or the shape of a
        generated token with any prefix): an unknown, revoked or mistyped kubegate token must not reach an
        identity provider."""
        if self._opaque is None:
            return False
        if self._static_token_prefix and credential.startswith(self._static_token_prefix):
            return False
        return not is_generated_shape(credential)

"""Verify OIDC access tokens that are JWTs, from memory: the provider's keys, its issuer, audiences and
allowed algorithms, then its claim mapping and requirements.

Every check that needs no key comes first, in the order of what is cheapest to refuse: the header (an allowed
asymmetric algorithm, a key id, an access-token or plain JWT type, no header that points at keys elsewhere),
then the claims (issuer, expiry, not-before, issued-at, audience). Only a token that passes those can make the
server read a provider's JWKS (see `keys.ProviderKeyCache`), and only with the provider's own `jwks_uri`:
`jku`, `x5u`, `jwk` and `x5c` headers are refused, never followed.

A verified token is remembered under its SHA-256 until it expires or for `cache_seconds`, whichever is
sooner, and as long as its provider's config and keys are unchanged: a repeat costs a hash and a lookup and
returns the same `Authentication` object (so what surfaces derive from it is kept too).
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kubegate.contracts.authentication import Authentication
from kubegate.contracts.token_format import token_digest
from kubegate.validation_config.providers import ProviderConfig
from kubegate.verify.errors import RequirementFailed, Unauthenticated
from kubegate.verify.jwt_segments import UnverifiedJwt, read_jwt
from kubegate.verify.oidc.identity import authentication_from_claims, check_requirements
from kubegate.verify.oidc.keys import SUPPORTED_ALGORITHMS, ProviderKeyCache, VerificationKey, decode_signature

ACCESS_TOKEN_TYPES = frozenset({"jwt", "at+jwt"})
"""Accepted `typ` values (absent is accepted too): a plain JWT, or an RFC 9068 access token. Compared
case-insensitively, with or without `application/` (RFC 7515, section 4.1.9)."""
REFUSED_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit", "b64", "cty"})
"""Keys named by the token itself (RFC 8725, section 3.10: a verifier trusts only the provider's keys),
extensions kubegate does not implement (`crit`, `b64`, RFC 7797), and nested tokens (`cty`)."""
MAX_SIGNATURE = 2048
"""Characters of a signature segment: an 8192-bit RSA signature takes 1366."""
MAX_TIME = 253_402_300_799
"""The last second of year 9999: a larger `exp`, `nbf` or `iat` is no time any provider writes."""

log = logging.getLogger(__name__)


class IssuerDirectory(Protocol):
    """The published providers, as `state.providers` keeps them."""

    @property
    def issuers(self) -> Container[str]:
        """The issuers of the published providers: a live container."""
        ...

    def by_issuer(self, issuer: str) -> ProviderConfig | None: ...


@dataclass(frozen=True, slots=True)
class _Verified:
    authentication: Authentication
    provider: ProviderConfig
    keys: Mapping[str, VerificationKey]
    """The provider's keys when the token was verified: once they change, the token is verified again."""
    until: float
    satisfied: bool
    """Whether it met the provider's requirements; when not, they are checked again to raise a fresh error."""


class OidcAccessTokenVerifier:
    """The engine's `OidcVerifier` for JWT access tokens of the published providers."""

    def __init__(
        self,
        *,
        providers: IssuerDirectory,
        keys: ProviderKeyCache,
        leeway: float = 30.0,
        cache_seconds: float = 300.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """
        `providers`: the published provider configs, by issuer.
        `keys`: the providers' keys (shares `clock`).
        `leeway`: seconds of clock skew allowed for `exp`, `nbf` and `iat` (setting `oidc_leeway`).
        `cache_seconds`: longest time a verified token is remembered, never past its `exp` (setting
        `oidc_cache_seconds`); 0: not remembered.
        `cache_size`: most tokens remembered at once (setting `oidc_cache_size`); the oldest goes first.
        `clock`: wall-clock seconds.
        """
        self._providers = providers
        self._keys = keys
        self._leeway = leeway
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size if cache_seconds > 0 else 0
        self._clock = clock
        self._verified: OrderedDict[bytes, _Verified] = OrderedDict()

    @property
    def issuers(self) -> Container[str]:
        return self._providers.issuers

    async def verify(
        self, token: str, *, issuer: str | None, unverified: UnverifiedJwt | None = None
    ) -> Authentication:
        """The authentication of a valid access token of the provider whose issuer is `issuer`.

        Raises Unauthenticated for any token that is not one, RequirementFailed when its holder misses a
        requirement of the provider, VerifierUnavailable when it names a key the provider could not be asked
        about.
        """
        digest = token_digest(token)
        return self._seen(digest) or await self._verify(token, issuer, digest, unverified)

    def seen(self, token: str) -> Authentication | None:
        """The authentication of `token` when it was verified before and nothing has changed since (see the
        module); None when it must go through `verify`. Raises RequirementFailed as `verify` does.

        Needs no classification: a token is only remembered after its `iss` was checked against the
        provider it is remembered with, which must still be the published one. A surface may call this
        before the engine, to spare a seen token the parsing of its segments.
        """
        return self._seen(token_digest(token))

    def _seen(self, digest: bytes) -> Authentication | None:
        seen = self._verified.get(digest)
        if seen is None:
            return None
        provider = seen.provider
        if (
            self._providers.by_issuer(provider.issuer) is provider
            and self._keys.keys(provider) is seen.keys
            and self._clock() < seen.until
        ):
            if not seen.satisfied:
                check_requirements(provider, seen.authentication)
            return seen.authentication
        self._verified.pop(digest, None)
        return None

    async def _verify(
        self, token: str, issuer: str | None, digest: bytes, unverified: UnverifiedJwt | None
    ) -> Authentication:
        provider = self._providers.by_issuer(issuer) if issuer is not None else None
        if provider is None:
            raise Unauthenticated("untrusted_issuer")
        if unverified is None:
            unverified = read_jwt(token)
        if unverified is None or unverified.payload is None or len(unverified.signature) > MAX_SIGNATURE:
            raise Unauthenticated("malformed")
        algorithm, kid = _checked_header(unverified.header, provider)
        claims = unverified.payload
        expires = self._checked_claims(claims, provider)
        key = await self._keys.key(provider, kid)
        signature = decode_signature(unverified.signature)
        signing_input = token.rpartition(".")[0].encode("ascii")
        # The claims checked above are the payload segment's; the signature covers that very segment.
        if signature is None or not key.verify(algorithm, signing_input, signature):
            log.debug("OIDC provider %s: signature of a token does not verify with key %r", provider.name, kid)
            raise Unauthenticated("unknown")
        authentication = authentication_from_claims(provider, claims, digest=digest)
        try:
            check_requirements(provider, authentication)
        except RequirementFailed:
            self._remember(digest, authentication, provider, key, expires, satisfied=False)
            raise
        self._remember(digest, authentication, provider, key, expires, satisfied=True)
        return authentication

    def _checked_claims(self, claims: Mapping[str, Any], provider: ProviderConfig) -> float:
        """Check issuer, lifetime and audience; the token's `exp`."""
        if claims.get("iss") != provider.issuer:
            raise Unauthenticated("unknown")
        expires = _time(claims.get("exp"))
        if expires is None:
            raise Unauthenticated("malformed")
        now = self._clock()
        if now >= expires + self._leeway:
            raise Unauthenticated("expired")
        for claim in ("nbf", "iat"):
            if claim in claims:
                at = _time(claims[claim])
                if at is None:
                    raise Unauthenticated("malformed")
                if at > now + self._leeway:
                    log.debug("OIDC provider %s: a token's %s is in the future", provider.name, claim)
                    raise Unauthenticated("unknown")
        if provider.audiences is not None and not _audience_held(claims.get("aud"), provider.audiences):
            log.debug("OIDC provider %s: a token is for another audience", provider.name)
            raise Unauthenticated("unknown")
        return expires

    def _remember(
        self,
        digest: bytes,
        authentication: Authentication,
        provider: ProviderConfig,
        key: VerificationKey,
        expires: float,
        *,
        satisfied: bool,
    ) -> None:
        if self._cache_size <= 0:
            return
        keys = self._keys.keys(provider)
        if keys.get(key.kid) is not key:
            # The keys changed while the token waited for a JWKS read: the next request verifies it again.
            return
        while len(self._verified) >= self._cache_size:
            self._verified.popitem(last=False)
        until = min(expires + self._leeway, self._clock() + self._cache_seconds)
        self._verified[digest] = _Verified(authentication, provider, keys, until, satisfied)


def _checked_header(header: Mapping[str, Any], provider: ProviderConfig) -> tuple[str, str]:
    """The algorithm and key id of a token whose header is acceptable for `provider`."""
    algorithm, kid = header["alg"], header.get("kid")
    if algorithm not in SUPPORTED_ALGORITHMS or algorithm not in provider.algorithms:
        log.debug("OIDC provider %s: a token is signed with %r, not an allowed algorithm", provider.name, algorithm)
        raise Unauthenticated("unsupported")
    refused = REFUSED_HEADERS.intersection(header)
    if refused:
        log.debug("OIDC provider %s: a token carries the header(s) %s", provider.name, ", ".join(sorted(refused)))
        raise Unauthenticated("unsupported")
    if not _access_token_type(header.get("typ")):
        raise Unauthenticated("unsupported")
    if not isinstance(kid, str) or not kid:
        raise Unauthenticated("malformed")
    return algorithm, kid


def _access_token_type(typ: Any) -> bool:
    if typ is None:
        return True
    if not isinstance(typ, str):
        return False
    value = typ.lower()
    return value.removeprefix("application/") in ACCESS_TOKEN_TYPES


def _time(value: Any) -> float | None:
    """A NumericDate (RFC 7519, section 2), or None when `value` is not one kubegate accepts."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not 0 <= value <= MAX_TIME:
        return None
    return float(value)


def _audience_held(aud: Any, audiences: tuple[str, ...]) -> bool:
    if isinstance(aud, str):
        return aud in audiences
    if isinstance(aud, list):
        return any(isinstance(one, str) and one in audiences for one in aud)
    return False

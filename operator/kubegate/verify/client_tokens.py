"""Verify client tokens offline, from public keys alone: explicit type, ES256 only, a published kid,
issuer, audience, lifetime, deny-list. What passes becomes an `Authentication` like any other credential's.

The keys come as a `PublicKeySet`: the JWKS kubegate publishes at `/.well-known/jwks.json` and the longest
lifetime a client token may have. Private keys never reach this module (see `client_tokens/keys.py`,
where they are generated, and `client_tokens/mint.py`, where they sign).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from kubegate.contracts.authentication import Authentication, Identity, Method
from kubegate.contracts.jwks import ES256, PublicKeySet, es256_keys
from kubegate.contracts.token_format import token_digest
from kubegate.verify.classify import is_client_typ
from kubegate.verify.errors import Unauthenticated, VerifierUnavailable
from kubegate.verify.jwt_segments import read_jwt

ALGORITHM = ES256
"""The only algorithm client tokens are signed with."""
_REQUIRED = ["exp", "iat", "iss", "aud", "sub", "jti"]
VERIFIED_CACHE_SIZE = 16_384
"""Tokens whose signature was verified, kept to skip ES256 on repeat requests (about 2 KiB each)."""
# Only methods that issue client tokens; a static token is never a JWT.
_METHODS = {Method.KUBERNETES.value: Method.KUBERNETES, Method.OIDC.value: Method.OIDC}


class JwksClientTokenVerifier:
    """The engine's `ClientTokenVerifier`: kubegate's client tokens, verified with the published keys.

    `keys` returns the current public keys (None while none are published) and is called on every
    verification; `revoked` tells whether a token id is on the deny-list.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: Callable[[], PublicKeySet | None],
        revoked: Callable[[str], bool],
        clock: Callable[[], float] = time.time,
        leeway: float = 30.0,
    ) -> None:
        self._issuer = issuer
        self._audience = audience
        self._keys = keys
        self._revoked = revoked
        self._clock = clock
        self._leeway = leeway
        self._verified: dict[bytes, tuple[Authentication, float, str]] = {}
        self._parsed_from: PublicKeySet | None = None
        self._parsed: dict[str, ec.EllipticCurvePublicKey] = {}

    @property
    def issuer(self) -> str:
        return self._issuer

    async def verify(self, token: str) -> Authentication:
        return self.verify_now(token)

    def verify_now(self, token: str) -> Authentication:
        """Raise Unauthenticated unless `token` is a valid, unrevoked client token signed by a published key.

        A signature that checked out once is not checked again: the result is kept under the token's
        SHA-256. Expiry, the deny-list and whether the signing key is still published (a key withdrawn
        after a compromise ends its tokens at once) are checked on every call.
        """
        digest = token_digest(token)
        cached = self._verified.get(digest)
        if cached is not None:
            authentication, expires, kid = cached
            if kid not in self._published()[1]:
                del self._verified[digest]
                raise Unauthenticated("unknown")
            if self._clock() >= expires + self._leeway:
                del self._verified[digest]
                raise Unauthenticated("expired")
            if self._revoked(authentication.id):
                raise Unauthenticated("unknown")
            return authentication
        authentication, kid = self._verify_signed(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        assert authentication.expires_at is not None
        self._verified[digest] = (authentication, authentication.expires_at.timestamp(), kid)
        return authentication

    def _published(self) -> tuple[PublicKeySet | None, Mapping[str, ec.EllipticCurvePublicKey]]:
        """The current key set and its keys by kid, parsed once for each key set the provider hands out."""
        public = self._keys()
        if public is None:
            return None, {}
        if public is not self._parsed_from:
            self._parsed = es256_keys(public.jwks)
            self._parsed_from = public
        return public, self._parsed

    def _verify_signed(self, token: str) -> tuple[Authentication, str]:
        unverified = read_jwt(token)
        if unverified is None:
            raise Unauthenticated("malformed")
        header = unverified.header
        if not is_client_typ(header.get("typ")) or header.get("alg") != ALGORITHM:
            raise Unauthenticated("malformed")
        public, keys = self._published()
        if public is None:
            # Readiness per source: until the keys are loaded a client token can be neither accepted nor
            # refused, so the caller is told to retry (503) rather than that its token is bad (401).
            raise VerifierUnavailable("the client-token signing keys are not loaded yet")
        kid = header.get("kid")
        key = keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthenticated("unknown")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                # Time is checked below with the injected clock, so that tests and replicas agree on "now".
                options={"require": _REQUIRED, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise Unauthenticated("unknown") from None
        assert isinstance(kid, str)
        return self._authentication(claims, public), kid

    def _authentication(self, claims: dict[str, Any], public: PublicKeySet) -> Authentication:
        issued, expires = claims["iat"], claims["exp"]
        if not isinstance(issued, int) or not isinstance(expires, int):
            raise Unauthenticated("malformed")
        if expires - issued > public.max_token_lifetime_seconds + self._leeway:
            # Longer than any key is kept: not a token kubegate signed under these settings.
            raise Unauthenticated("unknown")
        now = self._clock()
        if now >= expires + self._leeway:
            raise Unauthenticated("expired")
        not_before = claims.get("nbf", issued)
        if issued > now + self._leeway or not isinstance(not_before, int) or not_before > now + self._leeway:
            raise Unauthenticated("unknown")
        token_id = claims["jti"]
        if not isinstance(token_id, str) or self._revoked(token_id):
            raise Unauthenticated("unknown")
        method = _METHODS.get(claims.get("method", ""))
        groups = claims.get("groups", [])
        metadata = claims.get("metadata", {})
        subject, uid = claims["sub"], claims.get("uid", claims["sub"])
        if (
            method is None
            or not isinstance(subject, str)
            or not isinstance(uid, str)
            or not isinstance(groups, list)
            or not all(isinstance(g, str) for g in groups)
            or not isinstance(metadata, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
        ):
            raise Unauthenticated("malformed")
        created = datetime.fromtimestamp(issued, UTC)
        return Authentication(
            id=token_id,
            method=method,
            expires_at=datetime.fromtimestamp(expires, UTC),
            created_at=created,
            updated_at=created,
            metadata=metadata,
            identity=Identity(username=subject, uid=uid, groups=tuple(groups), claims=claims),
        )

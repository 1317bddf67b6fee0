"""Verify client tokens offline: explicit type, ES256 only, a published kid, issuer, audience, lifetime,
deny-list. What passes becomes an `Authentication` like any other credential's."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jwt

from kubegate.client_tokens.keys import ALGORITHM, KeySet
from kubegate.contracts.token_format import token_digest
from kubegate.verify.classify import is_client_typ
from kubegate.verify.errors import Unauthenticated
from kubegate.verify.model import Authentication, Identity, Method

_REQUIRED = ["exp", "iat", "iss", "aud", "sub", "jti"]
VERIFIED_CACHE_SIZE = 16_384
"""Tokens whose signature was verified, kept to skip ES256 on repeat requests (about 2 KiB each)."""
# Only methods that issue client tokens; a static token is never a JWT.
_METHODS = {Method.KUBERNETES.value: Method.KUBERNETES, Method.OIDC.value: Method.OIDC}


class ClientTokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: Callable[[], KeySet | None],
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
            keyset = self._keys()
            if keyset is None or keyset.by_kid(kid) is None:
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

    def _verify_signed(self, token: str) -> tuple[Authentication, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed") from None
        if not is_client_typ(header.get("typ")) or header.get("alg") != ALGORITHM:
            raise Unauthenticated("malformed")
        keyset = self._keys()
        kid = header.get("kid")
        key = keyset.by_kid(kid) if keyset is not None and isinstance(kid, str) else None
        if key is None or keyset is None:
            raise Unauthenticated("unknown")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key(),
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                # Time is checked below with the injected clock, so that tests and replicas agree on "now".
                options={"require": _REQUIRED, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise Unauthenticated("unknown") from None
        return self._authentication(claims, keyset), key.kid

    def _authentication(self, claims: dict[str, Any], keyset: KeySet) -> Authentication:
        issued, expires = claims["iat"], claims["exp"]
        if not isinstance(issued, int) or not isinstance(expires, int):
            raise Unauthenticated("malformed")
        if expires - issued > keyset.max_token_lifetime_seconds + self._leeway:
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
            identity=Identity(username=subject, uid=uid, groups=tuple(groups)),
        )

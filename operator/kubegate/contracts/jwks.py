"""Select verification keys from a JWKS (RFC 7517). Pure: no I/O.

Only what kubegate signs client tokens with is accepted: EC P-256 keys for ES256 signatures (RFC 7518,
section 3.4), marked for signatures; every other key is passed over, so a key never serves an algorithm it
was not published for (RFC 8725, section 3.1). A JWKS is public: one that holds a private member is
refused whole, since whoever published it has leaked a private key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from jwt.exceptions import InvalidKeyError

ES256 = "ES256"
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
"""JWK members that hold private or symmetric key material (RFC 7518, section 6)."""
_EC_PUBLIC = ("kty", "crv", "x", "y")

log = logging.getLogger(__name__)


def check_public(jwks: Mapping[str, Any]) -> None:
    """Raise ValueError unless `jwks` is a JWKS (`{"keys": [...]}` of JSON objects) without any private member.

    The message names the key by its kid, never its material.
    """
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not all(isinstance(jwk, Mapping) for jwk in keys):
        raise ValueError('a JWKS is an object whose "keys" member is a list of JWK objects')
    for jwk in keys:
        private = PRIVATE_MEMBERS.intersection(jwk)
        if private:
            raise ValueError(
                f"the JWK with kid {jwk.get('kid')!r} holds private members ({', '.join(sorted(private))}): "
                "publish only the public half of a key"
            )


def es256_keys(jwks: Mapping[str, Any]) -> dict[str, ec.EllipticCurvePublicKey]:
    """The keys of `jwks` that verify ES256 signatures, by kid. Raises ValueError when `jwks` is not a
    public JWKS (see `check_public`).

    A key is taken when it is EC P-256, its `alg` is ES256 and its `use` is `sig` (all three present: a
    JWKS kubegate publishes always says so), and its kid is a string no other key has.
    """
    check_public(jwks)
    found: dict[str, ec.EllipticCurvePublicKey] = {}
    ambiguous: set[str] = set()
    for jwk in jwks["keys"]:
        kid = jwk.get("kid")
        key = _es256_key(jwk)
        if key is None or not isinstance(kid, str) or not kid:
            log.debug("JWK with kid %r is not an ES256 signing key; passed over", kid)
            continue
        if kid in found:
            ambiguous.add(kid)
        found[kid] = key
    for kid in ambiguous:
        # Which of two keys a token means is not for the verifier to guess.
        log.warning("the JWKS has several keys with kid %r; none of them is used", kid)
        del found[kid]
    return found


def _es256_key(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey | None:
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or jwk.get("alg") != ES256 or jwk.get("use") != "sig":
        return None
    if not all(isinstance(jwk.get(member), str) for member in _EC_PUBLIC):
        return None
    try:
        key = ECAlgorithm.from_jwk(json.dumps({member: jwk[member] for member in _EC_PUBLIC}))
    except (InvalidKeyError, ValueError):
        # Not a point on the curve, or not base64url.
        return None
    return key if isinstance(key, ec.EllipticCurvePublicKey) else None


@dataclass(frozen=True, slots=True, eq=False)
class PublicKeySet:
    """What a verifier of client tokens needs: the published JWKS and the longest lifetime of a token.

    Refuses a JWKS with any private member (ValueError). A provider hands out the same object while the
    keys are unchanged: the verifier parses the keys again only when it gets a different object.
    """

    jwks: Mapping[str, Any]
    """RFC 7517 `{"keys": [...]}`, each key with `kid`, `alg` and `use`, as published."""
    max_token_lifetime_seconds: int
    """No client token lives longer (between `iat` and `exp`); one that claims to is refused."""

    def __post_init__(self) -> None:
        check_public(self.jwks)
        if self.max_token_lifetime_seconds <= 0:
            raise ValueError("the longest client-token lifetime must be positive")

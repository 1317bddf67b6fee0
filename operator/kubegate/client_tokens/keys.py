"""The signing keys of client tokens and their life cycle. Pure: no I/O.

A key signs while it is the newest; when a rotation replaces it, it is retired but stays published
(its public half in the JWKS, so verifiers accept what it signed) until every token it could have
signed has expired: `retired_at + max_token_lifetime`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from kubegate.contracts.jwks import PublicKeySet
from kubegate.verify.client_tokens import ALGORITHM

DATA_KEY = "keys.json"
SECRET_NAME = "kubegate-signing-keys"
LABEL = "kubegate.dev/signing-keys"
LABEL_VALUE = "client-tokens"
_PUBLIC_MEMBERS = ("kty", "crv", "x", "y")


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class SigningKey(_Model):
    kid: str
    """RFC 7638 thumbprint of the public key."""
    created_at: datetime
    retired_at: datetime | None = None
    """When a newer key replaced this one; it signs nothing after that."""
    private_jwk: dict[str, str] = Field(repr=False)
    """The private key as a JWK (EC P-256)."""

    def public_jwk(self) -> dict[str, str]:
        jwk = {k: self.private_jwk[k] for k in _PUBLIC_MEMBERS}
        return {**jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = ECAlgorithm.from_jwk(json.dumps(self.private_jwk))
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def public_key(self) -> ec.EllipticCurvePublicKey:
        key = ECAlgorithm.from_jwk(json.dumps({k: self.private_jwk[k] for k in _PUBLIC_MEMBERS}))
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key


class KeySet(_Model):
    """Everything the Secret holds: the keys, newest last, and how long client tokens may live."""

    keys: tuple[SigningKey, ...]
    max_token_lifetime_seconds: int = Field(gt=0)
    """No client token lives longer; retired keys stay published this long."""

    @property
    def max_token_lifetime(self) -> timedelta:
        return timedelta(seconds=self.max_token_lifetime_seconds)

    def active(self) -> SigningKey:
        """The key that signs new tokens: the newest one."""
        return self.keys[-1]

    def by_kid(self, kid: str) -> SigningKey | None:
        return next((k for k in self.keys if k.kid == kid), None)

    def jwks(self) -> dict[str, Any]:
        """The published JWKS: public keys only, the signing one first."""
        return {"keys": [k.public_jwk() for k in reversed(self.keys)]}

    def public(self) -> PublicKeySet:
        """What verifiers of client tokens get: the published JWKS and the longest token lifetime."""
        return PublicKeySet(jwks=self.jwks(), max_token_lifetime_seconds=self.max_token_lifetime_seconds)


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256) of an EC key, base64url without padding."""
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def new_key(now: datetime) -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(private, as_dict=True)
    private_jwk = {k: str(v) for k, v in jwk.items() if k in (*_PUBLIC_MEMBERS, "d")}
    return SigningKey(kid=thumbprint(private_jwk), created_at=now, private_jwk=private_jwk)


def initial(now: datetime, *, max_token_lifetime: timedelta) -> KeySet:
    return KeySet(keys=(new_key(now),), max_token_lifetime_seconds=int(max_token_lifetime.total_seconds()))


def rotation_due(keyset: KeySet, now: datetime, *, every: timedelta) -> bool:
    return now >= keyset.active().created_at + every


def rotate(keyset: KeySet, now: datetime) -> KeySet:
    """A new active key; the previous one is retired now and stays published for verification."""
    retired = tuple(k if k.retired_at is not None else k.model_copy(update={"retired_at": now}) for k in keyset.keys)
    return keyset.model_copy(update={"keys": (*retired, new_key(now))})


def prune(keyset: KeySet, now: datetime) -> KeySet:
    """Drop retired keys once no token they signed can still be valid."""
    keep = tuple(k for k in keyset.keys if k.retired_at is None or now < k.retired_at + keyset.max_token_lifetime)
    return keyset.model_copy(update={"keys": keep})


def with_lifetime(keyset: KeySet, max_token_lifetime: timedelta) -> KeySet:
    return keyset.model_copy(update={"max_token_lifetime_seconds": int(max_token_lifetime.total_seconds())})


def encode(keyset: KeySet) -> str:
    """The Secret's data value (base64 of JSON)."""
    raw = keyset.model_dump_json(by_alias=True).encode()
    return base64.b64encode(raw).decode("ascii")


def decode(data: str) -> KeySet:
    """Read the Secret's data value; raises ValueError when it is not a key set."""
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError as exc:
        raise ValueError(f"signing keys are not base64: {exc}") from exc
    keyset = KeySet.model_validate_json(raw)
    if not keyset.keys:
        raise ValueError("the signing-key set holds no key")
    return keyset

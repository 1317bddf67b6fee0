"""Fakes for OIDC access-token tests without a network: signing keys, a provider's published config, the
providers' state and a JWKS endpoint that counts its calls."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, get_default_algorithms

from kubegate.validation_config.providers import ProviderConfig
from kubegate.verify.oidc.provider_http import ProviderError, ProviderUnreachable

T0 = 1_780_000_000.0
ISSUER = "https://dex.example"
JWKS_URI = ISSUER + "/keys"
AUDIENCE = "kubegate"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: PrivateKey
    algorithm: str

    def jwk(self, **members: Any) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            found = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            found = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            found = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**found, "kid": self.kid, "use": "sig", "alg": self.algorithm, **members}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        """A token signed with this key; header members given as None are left out."""
        headers = {key: value for key, value in {"kid": self.kid, **header}.items() if value is not None}
        return self.sign_raw({"alg": self.algorithm, **headers}, claims)

    def sign_raw(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        """Any header and claims, signed with this key's algorithm whatever the header says."""
        signing_input = f"{segment(header)}.{segment(claims)}"
        signature = get_default_algorithms()[self.algorithm].sign(signing_input.encode(), self.private)
        return f"{signing_input}.{b64url(signature)}"


@cache
def rsa_private(n: int) -> rsa.RSAPrivateKey:
    """RSA keys take a while to generate: a few, made once per test run."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def rsa_key(kid: str = "rsa-1", number: int = 0, algorithm: str = "RS256") -> SigningKey:
    return SigningKey(kid, rsa_private(number), algorithm)


def ec_key(kid: str = "ec-1") -> SigningKey:
    return SigningKey(kid, ec.generate_private_key(ec.SECP256R1()), "ES256")


def ed_key(kid: str = "ed-1") -> SigningKey:
    return SigningKey(kid, ed25519.Ed25519PrivateKey.generate(), "EdDSA")


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [key.jwk() for key in keys]}


def provider(
    *keys: SigningKey,
    issuer: str = ISSUER,
    fetched_at: float | None = T0 - 600,
    **fields: Any,
) -> ProviderConfig:
    values: dict[str, Any] = {
        "name": "dex",
        "issuer": issuer,
        "jwks_uri": issuer + "/keys",
        "algorithms": ("RS256", "ES256"),
        "audiences": (AUDIENCE,),
        "jwks": jwks(*keys),
        "keys_fetched_at": None if fetched_at is None else datetime.fromtimestamp(fetched_at, UTC),
    }
    values.update(fields)
    return ProviderConfig(**values)


def claims(**changes: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "CgVhbGljZRIFbG9jYWw",
        "aud": AUDIENCE,
        "exp": int(T0) + 600,
        "iat": int(T0) - 10,
        "email": "alice@example.com",
        "groups": ["devs"],
    }
    found.update(changes)
    return {key: value for key, value in found.items() if value is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value).encode())


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeProviders:
    """Published providers by issuer, replaced whole as the state watcher does."""

    def __init__(self, *configs: ProviderConfig) -> None:
        self.configs = {config.issuer: config for config in configs}

    @property
    def issuers(self) -> dict[str, ProviderConfig]:
        return self.configs

    def by_issuer(self, issuer: str) -> ProviderConfig | None:
        return self.configs.get(issuer)

    def publish(self, config: ProviderConfig) -> None:
        self.configs[config.issuer] = config


@dataclass
class JwksEndpoint:
    """The providers' JWKS endpoints: answers `documents[url]`, or raises `failure`; counts every call."""

    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    failure: Exception | None = None
    gate: asyncio.Event | None = None
    """When set, each call waits for it: concurrent callers pile up on one read."""
    calls: list[str] = field(default_factory=list)

    async def get_json(self, url: str, *, ca_bundle: str | None) -> dict[str, Any]:
        self.calls.append(url)
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        if url not in self.documents:
            raise ProviderError(f"{url} answered 404", status=404)
        return self.documents[url]


def unreachable() -> ProviderUnreachable:
    return ProviderUnreachable("https://dex.example/keys cannot be reached: ClientConnectorError")

"""The keys each OIDC provider signs its access tokens with, kept in memory per provider.

A provider's keys start as the JWKS the operator published in its `ProviderConfig`. When a token names a key
id the server does not know (the provider rotated its key since the operator last read it), the server reads
the provider's `jwks_uri` itself: at most once per provider per cooldown, with every token waiting on the same
read, so a flood of tokens naming made-up key ids costs the provider one call per cooldown. Whichever copy was
read from the provider last, the operator's or the server's own, is the one used.

Only keys fit for the provider's allowed algorithms are kept, and each key only for the algorithms it fits
(RFC 8725, section 3.1): RSA keys of 2048 to 8192 bits for RS* and PS*, EC keys for the ES* algorithm of their
curve, Ed25519 keys for EdDSA. A key's own `alg`, `use` and `key_ops`, when present, narrow that further.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from enum import Enum
from typing import Any, NoReturn, Protocol

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import Algorithm, ECAlgorithm, OKPAlgorithm, RSAAlgorithm, get_default_algorithms
from jwt.exceptions import InvalidKeyError

from kubegate.contracts.jwks import check_public
from kubegate.validation_config.providers import ProviderConfig
from kubegate.verify.errors import Unauthenticated, VerifierUnavailable
from kubegate.verify.oidc.provider_http import ProviderError

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
"""The one ES algorithm each curve serves (RFC 7518, section 3.4)."""
OKP_ALGORITHMS = {"Ed25519": "EdDSA"}
SUPPORTED_ALGORITHMS = RSA_ALGORITHMS | frozenset(EC_ALGORITHMS.values()) | frozenset(OKP_ALGORITHMS.values())
"""Every algorithm a provider's access token may be signed with: asymmetric only, never `none` or HMAC."""
MIN_RSA_BITS = 2048
"""RFC 7518, section 3.3: smaller RSA keys MUST NOT be used."""
MAX_RSA_BITS = 8192
"""Larger keys only make verifying slow; no provider uses them."""

_SIGNERS: dict[str, Algorithm] = {name: get_default_algorithms()[name] for name in SUPPORTED_ALGORITHMS}

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, eq=False)
class VerificationKey:
    """One public key of a provider and the algorithms it may verify."""

    kid: str
    key: PublicKey
    algorithms: frozenset[str]
    """Fit for the key's type and curve, allowed by the provider, and the key's own `alg` when it names one."""

    def verify(self, algorithm: str, signing_input: bytes, signature: bytes) -> bool:
        """Whether `signature` over `signing_input` is this key's under `algorithm` (never another one)."""
        if algorithm not in self.algorithms:
            return False
        return _SIGNERS[algorithm].verify(signing_input, self.key, signature)


def select_keys(jwks: Mapping[str, Any], algorithms: Iterable[str]) -> dict[str, VerificationKey]:
    """The keys of `jwks` usable with `algorithms`, by kid. Pure.

    Raises ValueError when `jwks` is not a public JWKS (`contracts.jwks.check_public`): a set with a private
    member is refused whole. Keys without a kid, keys fit for none of `algorithms`, and keys whose kid another
    usable key shares (which of them a token means is not for the verifier to guess) are passed over.
    """
    check_public(jwks)
    allowed = frozenset(algorithms) & SUPPORTED_ALGORITHMS
    found: dict[str, VerificationKey] = {}
    ambiguous: set[str] = set()
    for jwk in jwks["keys"]:
        kid = jwk.get("kid")
        key = _usable(jwk, allowed)
        if key is None or not isinstance(kid, str) or not kid:
            log.debug("JWK with kid %r is not a signing key for %s; passed over", kid, sorted(allowed))
            continue
        if kid in found:
            ambiguous.add(kid)
        found[kid] = VerificationKey(kid=kid, key=key[0], algorithms=key[1])
    for kid in ambiguous:
        log.warning("the JWKS has several keys with kid %r; none of them is used", kid)
        del found[kid]
    return found


def _usable(jwk: Mapping[str, Any], allowed: frozenset[str]) -> tuple[PublicKey, frozenset[str]] | None:
    use, operations, own = jwk.get("use"), jwk.get("key_ops"), jwk.get("alg")
    if use is not None and use != "sig":
        return None
    if operations is not None and (not isinstance(operations, list) or "verify" not in operations):
        return None
    if own is not None:
        allowed = allowed & {own} if isinstance(own, str) else frozenset()
    if not allowed:
        return None
    parsed = _public_key(jwk)
    if parsed is None:
        return None
    key, fit = parsed
    algorithms = fit & allowed
    return (key, algorithms) if algorithms else None


def _public_key(jwk: Mapping[str, Any]) -> tuple[PublicKey, frozenset[str]] | None:
    """The key a JWK holds and the algorithms its type fits, or None when it holds no key kubegate can use."""
    kty = jwk.get("kty")
    try:
        if kty == "RSA" and _strings(jwk, "n", "e"):
            key = RSAAlgorithm.from_jwk({"kty": "RSA", "n": jwk["n"], "e": jwk["e"]})
            if isinstance(key, rsa.RSAPublicKey) and MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
                return key, RSA_ALGORITHMS
        elif kty == "EC" and _strings(jwk, "crv", "x", "y") and jwk["crv"] in EC_ALGORITHMS:
            ec_key = ECAlgorithm.from_jwk({"kty": "EC", "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"]})
            if isinstance(ec_key, ec.EllipticCurvePublicKey):
                return ec_key, frozenset({EC_ALGORITHMS[jwk["crv"]]})
        elif kty == "OKP" and _strings(jwk, "crv", "x") and jwk["crv"] in OKP_ALGORITHMS:
            okp_key = OKPAlgorithm.from_jwk({"kty": "OKP", "crv": jwk["crv"], "x": jwk["x"]})
            if isinstance(okp_key, ed25519.Ed25519PublicKey):
                return okp_key, frozenset({OKP_ALGORITHMS[jwk["crv"]]})
    except (InvalidKeyError, ValueError, binascii.Error):
        # Not base64url, not a point on the curve, an even modulus...
        return None
    return None


def _strings(jwk: Mapping[str, Any], *members: str) -> bool:
    """Whether each of `members` is a non-empty string (checked before any is used as a dict key)."""
    return all(isinstance(jwk.get(member), str) and jwk[member] for member in members)


def decode_signature(segment: str) -> bytes | None:
    """A JWS signature segment's bytes; None when it is not base64url."""
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None


class JwksSource(Protocol):
    """What the key cache needs of `provider_http.ProviderHttp`."""

    async def get_json(self, url: str, *, ca_bundle: str | None) -> dict[str, Any]: ...


class _Fetch(Enum):
    DONE = "done"
    UNUSABLE = "unusable"
    """The provider answered, but not with a public JWKS."""
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class _Fetched:
    jwks: Mapping[str, Any]
    jwks_uri: str
    at: float
    """Wall-clock time of the read, comparable with the operator's `keys_fetched_at`."""


@dataclass(slots=True)
class _ProviderKeys:
    chosen_for: ProviderConfig | None = None
    """The config `keys` were chosen for; another config object means choosing again."""
    keys: Mapping[str, VerificationKey] = field(default_factory=dict)
    fetched: _Fetched | None = None
    """The server's own read of the provider's JWKS, while it is newer than the operator's."""
    attempted_at: float | None = None
    last_outcome: _Fetch = _Fetch.DONE
    inflight: asyncio.Future[_Fetch] | None = None


class ProviderKeyCache:
    """The current keys of every provider, by issuer, and the reads of `jwks_uri` when a kid is unknown.

    Unknown kid, and the decision it leads to:
    - the read finds it: the token is verified with it;
    - the provider answered without it (or without a usable JWKS), or a read happened within the cooldown:
      401, the token names no key of this provider (one read per cooldown, then refused);
    - the provider could not be reached (connection, timeout, 5xx, too many calls in flight), on this read
      or the last one within the cooldown: 503 (VerifierUnavailable), since whether the key exists depends on
      the provider, and a valid token just signed with a rotated key must not be told it is invalid. Tokens
      whose keys are known keep verifying while the provider is down: the keys are in memory.
    """

    def __init__(
        self, *, http: JwksSource, refetch_cooldown: float = 30.0, clock: Callable[[], float] = time.time
    ) -> None:
        """
        `http`: reads the JWKS (a `ProviderHttp`, with the provider's CA bundle).
        `refetch_cooldown`: least seconds between two reads of one provider's JWKS (setting
        `oidc_jwks_refetch_cooldown`).
        `clock`: wall-clock seconds, also compared with the operator's `keys_fetched_at`.
        """
        self._http = http
        self._cooldown = refetch_cooldown
        self._clock = clock
        self._providers: dict[str, _ProviderKeys] = {}

    def keys(self, provider: ProviderConfig) -> Mapping[str, VerificationKey]:
        """The keys of `provider` now, by kid. The same mapping object is handed out until the keys change:
        when the operator publishes a new config, or the server reads the provider's JWKS itself."""
        state = self._providers.get(provider.issuer)
        if state is not None and state.chosen_for is provider:
            return state.keys
        return self._choose(provider)

    async def key(self, provider: ProviderConfig, kid: str) -> VerificationKey:
        """The key `kid` of `provider`, reading the provider's JWKS when it is unknown (see the class).

        Raises Unauthenticated when the provider has no such key, VerifierUnavailable when it could not be
        asked.
        """
        found = self.keys(provider).get(kid)
        if found is not None:
            return found
        state = self._providers[provider.issuer]
        inflight = state.inflight
        if inflight is None:
            now = self._clock()
            if state.attempted_at is not None and 0 <= now - state.attempted_at < self._cooldown:
                self._refuse(provider, state.last_outcome)
            state.attempted_at = now
            inflight = state.inflight = asyncio.ensure_future(self._fetch(provider, state))
        # Shielded: a caller that goes away does not cancel the read the others wait for.
        outcome = await asyncio.shield(inflight)
        found = self.keys(provider).get(kid)
        if found is None:
            self._refuse(provider, outcome)
        return found

    def _refuse(self, provider: ProviderConfig, outcome: _Fetch) -> NoReturn:
        if outcome is _Fetch.UNREACHABLE:
            raise VerifierUnavailable(f"OIDC provider {provider.name}: its JWKS cannot be read now")
        raise Unauthenticated("unknown")

    async def _fetch(self, provider: ProviderConfig, state: _ProviderKeys) -> _Fetch:
        try:
            state.last_outcome = await self._read(provider, state)
            return state.last_outcome
        finally:
            state.inflight = None

    async def _read(self, provider: ProviderConfig, state: _ProviderKeys) -> _Fetch:
        try:
            jwks = await self._http.get_json(provider.jwks_uri, ca_bundle=provider.ca_bundle)
            select_keys(jwks, provider.algorithms)
        except VerifierUnavailable as exc:
            log.warning("OIDC provider %s: reading its JWKS for an unknown key id failed: %s", provider.name, exc)
            return _Fetch.UNREACHABLE
        except (ProviderError, ValueError) as exc:
            log.warning("OIDC provider %s: its JWKS is not usable: %s", provider.name, exc)
            return _Fetch.UNUSABLE
        state.fetched = _Fetched(jwks=jwks, jwks_uri=provider.jwks_uri, at=self._clock())
        state.chosen_for = None
        return _Fetch.DONE

    def _choose(self, provider: ProviderConfig) -> Mapping[str, VerificationKey]:
        state = self._providers.setdefault(provider.issuer, _ProviderKeys())
        jwks: Mapping[str, Any] = provider.jwks
        fetched = state.fetched
        if fetched is not None and fetched.jwks_uri == provider.jwks_uri and fetched.at > _timestamp(provider):
            jwks = fetched.jwks
        else:
            # The operator's copy is newer (or from another jwks_uri): the server's own is of no more use.
            state.fetched = None
        try:
            keys = select_keys(jwks, provider.algorithms)
        except ValueError as exc:
            log.error("OIDC provider %s: the published JWKS is not usable: %s", provider.name, exc)
            keys = {}
        state.chosen_for, state.keys = provider, keys
        return keys


def _timestamp(provider: ProviderConfig) -> float:
    """When the operator read the provider's keys, as wall-clock seconds; never: -inf."""
    at = provider.keys_fetched_at
    if at is None:
        return float("-inf")
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()

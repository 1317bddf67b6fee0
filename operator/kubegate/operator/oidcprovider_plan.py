"""What an OIDCProvider's reconciliation decides, from what it read: pure functions, no I/O.

The reconciler (`oidcprovider.py`) reads the resource, the client Secret, the discovery document and the
JWKS; everything it concludes from them (is the document the issuer's, which algorithms and keys are
accepted, what is published, which keys stay published while the issuer cannot be reached) is here, so
that every outcome is tested without a network.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography import x509

from kubegate.contracts.jwks import check_public
from kubegate.contracts.timestamps import format_time
from kubegate.operator.conditions import Detail
from kubegate.resources.oidcprovider import SIGNING_ALGORITHMS, ClientSecretRef, OIDCProviderSpec
from kubegate.validation_config.providers import ClaimRules, ProviderConfig, RequirementRule

DISCOVERY_PATH = "/.well-known/openid-configuration"
REFRESH_ANNOTATION = "kubegate.dev/refresh"
"""A new value reads discovery and keys again at once, as `kubectl annotate --overwrite` sets it."""
DEFAULT_ALGORITHM = "RS256"
"""What OpenID Connect IssuerDiscovery 1.0 requires every provider to support; used when the document lists none."""
_QUOTE_LIMIT = 300

# The key type (and curve) each algorithm verifies with (RFC 7518 section 3.1, RFC 8037 section 3.1).
_KEY_TYPES: dict[str, tuple[str, frozenset[str] | None]] = {
    **{alg: ("RSA", None) for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}


class Problem(Exception):  # noqa: N818 - names what the user must fix
    """Something a user must fix (`transient` False: the resource is Stalled) or that may pass by itself
    (`transient` True: not ready, retried). The message says what and never holds a secret."""

    def __init__(self, reason: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.transient = transient


def quote(value: object) -> str:
    """A value read from elsewhere, for a message: repr, cut short."""
    text = repr(value)
    return text if len(text) <= _QUOTE_LIMIT else text[: _QUOTE_LIMIT - 3] + "..."


def discovery_url(issuer_url: str) -> str:
    """OpenID Connect IssuerDiscovery 1.0 section 4: a terminating slash of the issuer is removed first."""
    return issuer_url.rstrip("/") + DISCOVERY_PATH


def ca_bundle_pem(ca_bundle: str | None) -> str | None:
    """spec.caBundle (base64 of PEM certificates) as PEM text; None: the system's trust store."""
    if ca_bundle is None:
        return None
    try:
        pem = base64.b64decode(ca_bundle, validate=True).decode("ascii")
        x509.load_pem_x509_certificates(pem.encode("ascii"))
    except (binascii.Error, ValueError) as exc:
        raise Problem(
            "InvalidCABundle",
            f"spec.caBundle must be base64 of PEM certificates (-----BEGIN CERTIFICATE-----): {exc}; "
            "set it to the output of `base64 -w0 ca.pem`, or remove it to trust the system's CAs",
        ) from None
    return pem


@dataclass(frozen=True, kw_only=True)
class IssuerDiscovery:
    """What kubegate uses of a discovery document."""

    issuer: str
    jwks_uri: str
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    introspection_endpoint: str | None = None
    signing_algorithms: tuple[str, ...] = ()
    """id_token_signing_alg_values_supported, as listed."""

    def endpoints_status(self) -> dict[str, str]:
        """status.endpoints."""
        named = {
            "authorizationEndpoint": self.authorization_endpoint,
            "tokenEndpoint": self.token_endpoint,
            "userinfoEndpoint": self.userinfo_endpoint,
            "introspectionEndpoint": self.introspection_endpoint,
            "jwksURI": self.jwks_uri,
        }
        return {k: v for k, v in named.items() if v is not None}


def read_discovery(document: Mapping[str, Any], *, issuer_url: str, url: str) -> IssuerDiscovery:
    """Check a discovery document against spec.issuerURL; raises Problem."""
    issuer = document.get("issuer")
    if issuer != issuer_url:
        # Tokens carry the document's issuer in `iss`: trusting spec.issuerURL instead would accept none of
        # them, or, worse, let one issuer's document speak for another (OpenID Connect IssuerDiscovery section 4.3).
        hint = f"set spec.issuerURL to exactly {issuer!r}" if isinstance(issuer, str) else "check spec.issuerURL"
        raise Problem(
            "IssuerMismatch",
            f"the discovery document at {url} names issuer {quote(issuer)}, not spec.issuerURL {issuer_url!r}: "
            f"{hint} (tokens carry it in their iss claim, character for character)",
        )
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
        raise Problem(
            "DiscoveryFailed",
            f"the discovery document at {url} has no https jwks_uri (it says {quote(jwks_uri)}): "
            "kubegate needs the issuer's keys to verify its tokens",
            transient=True,
        )

    def endpoint(key: str) -> str | None:
        value = document.get(key)
        return value if isinstance(value, str) and value.startswith("https://") else None

    algorithms = document.get("id_token_signing_alg_values_supported")
    listed = tuple(a for a in algorithms if isinstance(a, str)) if isinstance(algorithms, list) else ()
    return IssuerDiscovery(
        issuer=issuer,
        jwks_uri=jwks_uri,
        authorization_endpoint=endpoint("authorization_endpoint"),
        token_endpoint=endpoint("token_endpoint"),
        userinfo_endpoint=endpoint("userinfo_endpoint"),
        introspection_endpoint=endpoint("introspection_endpoint"),
        signing_algorithms=listed,
    )


def allowed_algorithms(configured: Collection[str] | None, advertised: tuple[str, ...]) -> tuple[str, ...]:
    """spec.algorithms when set; else the asymmetric algorithms the provider advertises, else RS256.

    Never `none` nor HMAC, whatever the provider lists: an HMAC "key" would be its public key.
    """
    if configured:
        return tuple(a for a in SIGNING_ALGORITHMS if a in configured)
    chosen = tuple(a for a in SIGNING_ALGORITHMS if a in advertised)
    return chosen or (DEFAULT_ALGORITHM,)


def _usable_with(jwk: Mapping[str, Any], algorithm: str) -> bool:
    kty, curves = _KEY_TYPES[algorithm]
    if jwk.get("kty") != kty or (curves is not None and jwk.get("crv") not in curves):
        return False
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", algorithm) != algorithm:
        return False
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return False
    try:
        jwt.PyJWK({**jwk, "alg": algorithm})
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
        return False  # not a key of that type (a point off the curve, bad base64url, missing members)
    return True


def usable_keys(jwks: Mapping[str, Any], *, algorithms: tuple[str, ...], url: str) -> dict[str, Any]:
    """The keys of the issuer's JWKS that verify signatures of an allowed algorithm, as a JWKS; raises Problem
    (JWKSInvalid) when it holds private material or no such key."""
    try:
        check_public(jwks)
    except ValueError as exc:
        raise Problem("JWKSInvalid", f"the JWKS at {url} is refused: {exc}") from None
    keys = [jwk for jwk in jwks["keys"] if any(_usable_with(jwk, alg) for alg in algorithms)]
    if not keys:
        found = sorted({f"{k.get('kty')}/{k.get('alg', '-')}" for k in jwks["keys"]})
        raise Problem(
            "JWKSInvalid",
            f"the JWKS at {url} holds no signing key for the accepted algorithms {', '.join(algorithms)} "
            f"(its keys, as type/alg: {quote(', '.join(found)) if found else 'none'}): set spec.algorithms to "
            "the provider's signing algorithm, or fix the provider's keys",
        )
    return {"keys": keys}


def key_ids(jwks: Mapping[str, Any]) -> list[str]:
    return [k["kid"] for k in jwks.get("keys") or [] if isinstance(k.get("kid"), str)]


def client_secret(secret: Mapping[str, Any] | None, ref: ClientSecretRef) -> str:
    """The client secret from the referenced Secret (as read; None: it does not exist); raises Problem.

    Messages say where to put the value, never the value.
    """
    where = f"Secret {ref.namespace}/{ref.name}"
    if secret is None:
        raise Problem(
            "SecretNotFound",
            f"spec.clientSecretRef names {where}, which does not exist: create it with the client secret under "
            f"key {ref.key!r} (kubectl create secret generic {ref.name} -n {ref.namespace} "
            f"--from-literal={ref.key}=...), or remove spec.clientSecretRef",
        )
    raw = (secret.get("data") or {}).get(ref.key)
    if raw is None:
        raise Problem(
            "SecretNotFound",
            f"{where} has no key {ref.key!r}: add the client secret under that key, or set "
            "spec.clientSecretRef.key to the key that holds it",
        )
    try:
        value = base64.b64decode(raw, validate=True).decode("utf-8").strip()
    except (binascii.Error, ValueError):
        value = ""
    if not value:
        raise Problem(
            "SecretNotFound",
            f"key {ref.key!r} of {where} is empty or not UTF-8 text: put the client secret there",
        )
    return value


def provider_config(
    *,
    name: str,
    generation: int,
    spec: OIDCProviderSpec,
    discovery: IssuerDiscovery,
    algorithms: tuple[str, ...],
    jwks: dict[str, Any],
    keys_fetched_at: datetime | None,
    secret: str | None,
    ca_bundle: str | None,
) -> ProviderConfig:
    """What the servers get: the spec's rules, the discovered endpoints, the keys and the client credentials."""
    claims = spec.claims
    return ProviderConfig(
        name=name,
        issuer=spec.issuer_url,
        jwks_uri=discovery.jwks_uri,
        authorization_endpoint=discovery.authorization_endpoint,
        token_endpoint=discovery.token_endpoint,
        userinfo_endpoint=discovery.userinfo_endpoint,
        introspection_endpoint=discovery.introspection_endpoint,
        algorithms=algorithms,
        audiences=tuple(spec.audiences) if spec.audiences is not None else None,
        claims=ClaimRules(
            username=claims.username,
            groups=claims.groups,
            username_prefix=claims.username_prefix,
            groups_prefix=claims.groups_prefix,
        ),
        email_matches=tuple(spec.email_matches) if spec.email_matches is not None else None,
        requirements=tuple(
            RequirementRule(claim=r.claim, values=tuple(r.values), match=r.match, entitlements=r.entitlements)
            for r in spec.requirements or ()
        ),
        introspection=spec.introspection and discovery.introspection_endpoint is not None,
        userinfo=spec.userinfo and discovery.userinfo_endpoint is not None,
        client_id=spec.client_id,
        client_secret=secret,
        ca_bundle=ca_bundle,
        jwks=jwks,
        keys_fetched_at=keys_fetched_at,
        generation=generation,
    )


def discovery_of(config: ProviderConfig) -> IssuerDiscovery:
    """The discovery a published config was built from (to publish again while the issuer is unreachable)."""
    return IssuerDiscovery(
        issuer=config.issuer,
        jwks_uri=config.jwks_uri,
        authorization_endpoint=config.authorization_endpoint,
        token_endpoint=config.token_endpoint,
        userinfo_endpoint=config.userinfo_endpoint,
        introspection_endpoint=config.introspection_endpoint,
    )


def unused_features(spec: OIDCProviderSpec, discovery: IssuerDiscovery) -> str:
    """A sentence for the Ready message when the spec asks for an endpoint the issuer does not have."""
    missing = [
        f"spec.{field} is set, but the discovery document has no {endpoint}: that check is off"
        for field, wanted, endpoint, found in (
            ("introspection", spec.introspection, "introspection_endpoint", discovery.introspection_endpoint),
            ("userinfo", spec.userinfo, "userinfo_endpoint", discovery.userinfo_endpoint),
        )
        if wanted and found is None
    ]
    return "".join(f"; {m}" for m in missing)


@dataclass(frozen=True, kw_only=True)
class KeptKeys:
    """What stays published while the issuer cannot be reached."""

    jwks: dict[str, Any]
    until: datetime | None
    """When the kept keys are withdrawn; None when nothing is kept."""
    detail: Detail


def kept_keys(previous: ProviderConfig | None, *, issuer_url: str, now: datetime, max_age: timedelta) -> KeptKeys:
    """The last good keys stay published until they are `max_age` old; then none are."""
    fetched = previous.keys_fetched_at if previous is not None and previous.issuer == issuer_url else None
    if previous is None or fetched is None:
        return KeptKeys(
            jwks={"keys": []},
            until=None,
            detail=Detail(
                type="KeysPublished",
                status="False",
                reason="NoKeys",
                message="no keys were ever read from this issuer: its tokens are refused until it answers",
            ),
        )
    until = fetched + max_age
    count = len(previous.jwks.get("keys") or [])
    if now < until:
        return KeptKeys(
            jwks=previous.jwks,
            until=until,
            detail=Detail(
                type="KeysPublished",
                status="True",
                reason="KeysKept",
                message=f"the issuer cannot be read: the {count} keys read at {format_time(fetched)} stay "
                f"published until {format_time(until)} (--provider-keys-max-age after they were read)",
            ),
        )
    return KeptKeys(
        jwks={"keys": []},
        until=None,
        detail=Detail(
            type="KeysPublished",
            status="False",
            reason="KeysWithdrawn",
            message=f"the keys read at {format_time(fetched)} were withdrawn at {format_time(until)}, "
            "--provider-keys-max-age after they were read: this issuer's tokens are refused until it answers",
        ),
    )


def current_keys(count: int, fetched: datetime) -> Detail:
    return Detail(
        type="KeysPublished",
        status="True",
        reason="KeysCurrent",
        message=f"{count} keys read at {format_time(fetched)} are published",
    )


def nothing_published(reason: str) -> Detail:
    return Detail(
        type="KeysPublished",
        status="False",
        reason=reason,
        message="nothing is published for this provider while it is stalled (see Ready): its tokens are refused",
    )

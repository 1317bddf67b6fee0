"""What an OIDCProvider's reconciliation decides, from what it read: pure functions, no I/O.

The reconciler (`oidcprovider.py`) reads the resource, the client Secret, the discovery document and the
JWKS. Whether the document is the issuer's and which algorithms and keys are accepted is decided in
`verify/oidc/discovery.py`, the same code a Python service trusting an issuer in-process runs; what the
operator concludes besides (what is published, which keys stay published while the issuer cannot be
reached, what the status says) is here, so that every outcome is tested without a network.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from kubegate.contracts.timestamps import format_time
from kubegate.operator.conditions import Detail
from kubegate.resources.oidcprovider import ClientSecretRef, OIDCProviderSpec
from kubegate.validation_config.providers import ClaimRules, ProviderConfig, RequirementRule
from kubegate.verify.oidc import discovery as issuer
from kubegate.verify.oidc.discovery import IssuerDiscovery

SPEC_FIELDS = issuer.SettingNames(issuer_url="spec.issuerURL", algorithms="spec.algorithms")
"""How the verify layer's messages about an issuer name what to fix: the resource's fields."""
REFRESH_ANNOTATION = "kubegate.dev/refresh"
"""A new value reads discovery and keys again at once, as `kubectl annotate --overwrite` sets it."""


class Problem(Exception):  # noqa: N818 - names what the user must fix
    """Something a user must fix (`transient` False: the resource is Stalled) or that may pass by itself
    (`transient` True: not ready, retried). The message says what and never holds a secret."""

    def __init__(self, reason: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.transient = transient

    @classmethod
    def of(cls, error: issuer.DiscoveryError) -> Problem:
        """An issuer unfit as configured, as the resource's condition says it."""
        return cls(error.reason, error.message, transient=error.transient)


def keys_text(count: int) -> str:
    """ "1 key", "2 keys"."""
    return f"{count} key" if count == 1 else f"{count} keys"


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


def endpoints_status(discovery: IssuerDiscovery) -> dict[str, str]:
    """status.endpoints."""
    named = {
        "authorizationEndpoint": discovery.authorization_endpoint,
        "tokenEndpoint": discovery.token_endpoint,
        "userinfoEndpoint": discovery.userinfo_endpoint,
        "introspectionEndpoint": discovery.introspection_endpoint,
        "jwksURI": discovery.jwks_uri,
    }
    return {k: v for k, v in named.items() if v is not None}


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
    return issuer.provider_config(
        discovery,
        name=name,
        issuer=spec.issuer_url,
        algorithms=algorithms,
        jwks=jwks,
        keys_fetched_at=keys_fetched_at,
        audiences=spec.audiences,
        claims=ClaimRules(
            username=claims.username,
            groups=claims.groups,
            username_prefix=claims.username_prefix,
            groups_prefix=claims.groups_prefix,
        ),
        email_matches=spec.email_matches,
        requirements=[
            RequirementRule(claim=r.claim, values=tuple(r.values), match=r.match, entitlements=r.entitlements)
            for r in spec.requirements or ()
        ],
        introspection=spec.introspection,
        userinfo=spec.userinfo,
        client_id=spec.client_id,
        client_secret=secret,
        ca_bundle=ca_bundle,
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
                message=f"the issuer cannot be read: the {keys_text(count)} read at {format_time(fetched)} stay "
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
        message=f"{keys_text(count)} read at {format_time(fetched)} {'is' if count == 1 else 'are'} published",
    )


def nothing_published(reason: str) -> Detail:
    return Detail(
        type="KeysPublished",
        status="False",
        reason=reason,
        message="nothing is published for this provider while it is stalled (see Ready): its tokens are refused",
    )

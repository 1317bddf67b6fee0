"""What the operator publishes about each OIDCProvider for the servers: one Secret per provider. Pure; no I/O.

The operator reads the resource, the issuer's discovery document and JWKS, and the client Secret, and
writes a `ProviderConfig` into a Secret of its namespace (a Secret, not a ConfigMap: it holds the client
secret used for introspection). Servers watch these Secrets and verify access tokens from memory.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from pydantic.alias_generators import to_camel

PROVIDER_LABEL = "kubegate.dev/validation-config"
PROVIDER_LABEL_VALUE = "oidc-provider"
LABEL_SELECTOR = f"{PROVIDER_LABEL}={PROVIDER_LABEL_VALUE}"
PROVIDER_ANNOTATION = "kubegate.dev/oidc-provider"
"""Names the OIDCProvider a Secret was written for."""
DATA_KEY = "provider.json"
SECRET_TYPE = "kubegate.dev/validation-config"
SECRET_PREFIX = "kubegate-oidc-"


def secret_name(provider: str) -> str:
    """The Secret of provider `provider` (a DNS subdomain of at most 253 characters, so the name may be longer
    than a label; Secret names are subdomains too)."""
    return f"{SECRET_PREFIX}{provider}"[:253]


class _Frozen(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class ClaimRules(_Frozen):
    """How claims become the identity (copied from the resource's `claims`)."""

    username: str = "sub"
    groups: str = "groups"
    username_prefix: str = ""
    groups_prefix: str = ""


class RequirementRule(_Frozen):
    """A claim every accepted token must carry (copied from the resource's `requirements`)."""

    claim: str
    values: tuple[str, ...]
    match: Literal["all", "one"] | StrictInt = "all"
    entitlements: bool = False
    """The values are AARC-G069 entitlements, matched as such (a subgroup satisfies its parent group)."""


class ProviderConfig(_Frozen):
    """Everything a server needs to verify one provider's access tokens without asking the operator."""

    name: str
    """The OIDCProvider's name: the `{provider}` URL segment and the value of the provider hint."""
    issuer: str
    """Equal to the discovery document's `issuer` and to the tokens' `iss` (checked by the operator)."""
    jwks_uri: Annotated[str, Field(alias="jwksURI")]
    userinfo_endpoint: str | None = None
    introspection_endpoint: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    algorithms: tuple[str, ...] = ("RS256",)
    """Signature algorithms accepted (asymmetric only; never `none`, never HMAC)."""
    audiences: tuple[str, ...] | None = None
    """A token's `aud` must hold one of these; None: any audience."""
    claims: ClaimRules = ClaimRules()
    email_matches: tuple[str, ...] | None = None
    """Regular expressions; when set, the token's `email` claim must match one of them (in full)."""
    requirements: tuple[RequirementRule, ...] = ()
    introspection: bool = False
    """Opaque tokens may be checked with the introspection endpoint (RFC 7662)."""
    userinfo: bool = False
    """Opaque tokens may be checked with the userinfo endpoint (when introspection is off)."""
    client_id: Annotated[str | None, Field(alias="clientID")] = None
    client_secret: Annotated[str | None, Field(repr=False)] = None
    """From the referenced Secret; authenticates introspection calls. Never logged, never in a status."""
    ca_bundle: str | None = None
    """PEM certificates to trust for this issuer; None: the system's trust store."""
    jwks: dict[str, Any] = Field(default_factory=lambda: {"keys": []})
    """The issuer's public JWKS as last read (RFC 7517); empty when the last good keys grew too old."""
    keys_fetched_at: datetime | None = None
    """When `jwks` was last read from the issuer."""
    generation: StrictInt = 0
    """The OIDCProvider's metadata.generation this was built from."""


def encode(config: ProviderConfig) -> str:
    """The base64 text for the Secret's `data` key; deterministic, so an unchanged config is not rewritten."""
    raw = json.dumps(config.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode("ascii")


def decode(data: str) -> ProviderConfig:
    """Read a Secret's `data` value; raises ValueError (never echoing the content) when it is not a config."""
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError as exc:
        raise ValueError("the OIDC provider config is not base64") from exc
    try:
        return ProviderConfig.model_validate_json(raw)
    except ValueError as exc:
        # pydantic's message would quote the input, which holds the client secret.
        count = exc.error_count() if hasattr(exc, "error_count") else 1
        raise ValueError(f"the OIDC provider config is not valid ({count} errors)") from None


def secret_body(config: ProviderConfig, *, namespace: str, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Secret the operator writes for `config`; `owner`: an ownerReference to the OIDCProvider."""
    metadata: dict[str, Any] = {
        "name": secret_name(config.name),
        "namespace": namespace,
        "labels": {PROVIDER_LABEL: PROVIDER_LABEL_VALUE},
        "annotations": {PROVIDER_ANNOTATION: config.name},
    }
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": SECRET_TYPE,
        "data": {DATA_KEY: encode(config)},
    }

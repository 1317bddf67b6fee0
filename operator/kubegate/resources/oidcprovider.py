"""The OIDCProvider resource: an OpenID Connect issuer kubegate logs users in with and trusts tokens of."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, ConfigDict, Field, StrictInt

from kubegate.resources.common import (
    Conditions,
    DnsLabel,
    DnsSubdomain,
    Model,
    SecretKey,
    StatusModel,
    list_set,
)
from kubegate.resources.kinds import ResourceKind

_HTTPS_RULE = {
    "rule": "isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname() != ''",
    "message": "must be an absolute https URL, for example https://accounts.example.com",
}


def _https_url(value: str) -> str:
    # Mirrors _HTTPS_RULE so that models and API server accept the same values.
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"{value!r} must be an absolute https URL, for example https://accounts.example.com")
    return value


HttpsURL = Annotated[
    str,
    Field(max_length=2048, json_schema_extra={"x-kubernetes-validations": [_HTTPS_RULE]}),
    AfterValidator(_https_url),
]
ShortText = Annotated[str, Field(min_length=1, max_length=256)]

SigningAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
"""Asymmetric JWS algorithms (RFC 7518, RFC 8037). Never `none`, never HMAC: an HMAC key would be the
provider's public key, which anyone holds (RFC 8725, section 2.1)."""
SIGNING_ALGORITHMS: tuple[str, ...] = get_args(SigningAlgorithm)


class ClientSecretRef(Model):
    """Where the OAuth client secret is stored: a key of a Secret (OIDCProvider is cluster-scoped)."""

    namespace: DnsLabel
    """Namespace of the Secret."""
    name: DnsSubdomain
    """Name of the Secret."""
    key: SecretKey = "clientSecret"
    """Key in the Secret's data that holds the client secret."""


class ClaimMapping(Model):
    """How token claims become a kubegate identity."""

    username: ShortText = "sub"
    """Claim that names the user."""
    groups: ShortText = "groups"
    """Claim that lists the user's groups (a list of strings, or one string)."""
    username_prefix: Annotated[str, Field(max_length=64)] = ""
    """Prepended to every username from this provider, for example `corp:`, so names cannot collide."""
    groups_prefix: Annotated[str, Field(max_length=64)] = ""
    """Prepended to every group from this provider."""


# Strict: the API server refuses "2" (a string), so the model must too.
Match = Literal["all", "one"] | Annotated[StrictInt, Field(ge=1)]


class RequirementSpec(Model):
    """A claim the token must carry, as FLAAT's group and entitlement requirements."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "type(self.match) == string || self.match <= size(self.values)",
                    "message": "match cannot ask for more values than are listed",
                    "fieldPath": ".match",
                }
            ]
        }
    )

    claim: ShortText
    """Claim to look in, for example groups or eduperson_entitlement."""
    values: Annotated[list[ShortText], Field(min_length=1, max_length=256, json_schema_extra=list_set())]
    """Values to look for in the claim."""
    match: Annotated[
        Match,
        Field(
            json_schema_extra={
                "x-kubernetes-validations": [
                    {
                        "rule": "type(self) == int ? self >= 1 : self in ['all', 'one']",
                        "message": "match must be all, one, or a number of values (1 or more)",
                    }
                ]
            }
        ),
    ] = "all"
    """How many of the values must be present: all, one, or a number N."""
    entitlements: bool = False
    """The values are AARC-G069 entitlements (`urn:...:group:<group>[:<subgroup>...][:role=<role>]#<authority>`):
    a held subgroup entitlement satisfies its parent group, a required role must match, and so must the
    authority."""


class OIDCProviderSpec(Model):
    """How to reach the issuer, log users in, and which of its tokens to accept."""

    issuer_url: Annotated[HttpsURL, Field(alias="issuerURL")]
    """The issuer's URL, exactly as its tokens' `iss` claim says; discovery is read below it."""
    client_id: Annotated[Annotated[str, Field(min_length=1, max_length=512)] | None, Field(alias="clientID")] = None
    """OAuth client id; needed for login, introspection and audience checks."""
    client_secret_ref: ClientSecretRef | None = None
    """Where the OAuth client secret is stored; confidential clients only."""
    redirect_address: HttpsURL | None = None
    """External address of kubegate that the issuer redirects back to after login."""
    scopes: Annotated[list[ShortText], Field(max_length=64, json_schema_extra=list_set())] = [  # noqa: RUF012
        "openid",
        "profile",
        "email",
    ]
    """Scopes asked for at login."""
    use_pkce: Annotated[bool, Field(alias="usePKCE")] = True
    """Use PKCE (RFC 7636) in the login flow."""
    audiences: Annotated[list[ShortText], Field(max_length=64, json_schema_extra=list_set())] | None = None
    """Accept only tokens whose `aud` holds one of these; unset: any audience."""
    algorithms: (
        Annotated[list[SigningAlgorithm], Field(min_length=1, max_length=10, json_schema_extra=list_set())] | None
    ) = None
    """Signature algorithms to accept; unset: the asymmetric ones the discovery document lists (else RS256)."""
    claims: ClaimMapping = ClaimMapping()
    """How claims become username and groups."""
    email_matches: (
        Annotated[list[Annotated[str, Field(min_length=1, max_length=1024)]], Field(max_length=64)] | None
    ) = None
    """Regular expressions; when set, the user's email must match one of them."""
    requirements: Annotated[list[RequirementSpec], Field(max_length=16)] | None = None
    """Claims every accepted token must carry (all requirements must hold)."""
    introspection: bool = False
    """Check opaque access tokens with the issuer's introspection endpoint (RFC 7662)."""
    userinfo: bool = False
    """Read claims from the issuer's userinfo endpoint."""
    ca_bundle: Annotated[str, Field(json_schema_extra={"format": "byte"}, max_length=1_000_000)] | None = None
    """PEM certificates to trust for this issuer, base64-encoded; unset: the system's trust store."""


class DiscoveredEndpoints(StatusModel):
    """Endpoints read from the issuer's discovery document."""

    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    introspection_endpoint: str | None = None
    jwks_uri: Annotated[str | None, Field(alias="jwksURI")] = None


class OIDCProviderStatus(StatusModel):
    """What the operator learnt from the issuer."""

    conditions: Conditions | None = None
    """Ready, Reconciling and Stalled, as kstatus expects."""
    observed_generation: int | None = None
    """The metadata.generation the operator last acted on."""
    endpoints: DiscoveredEndpoints | None = None
    """Endpoints from the discovery document."""
    key_ids: Annotated[list[str] | None, Field(alias="keyIDs")] = None
    """Ids of the signing keys last read from the issuer's JWKS."""
    key_count: int | None = None
    """How many of the issuer's keys are published to the servers (0 once the last good keys grew too old)."""
    last_refresh_time: datetime | None = None
    """When discovery and keys were last read successfully."""


class OIDCProvider(ResourceKind):
    """An OpenID Connect provider; its name is the `{provider}` segment of the login URLs."""

    kind: ClassVar[str] = "OIDCProvider"
    plural: ClassVar[str] = "oidcproviders"
    singular: ClassVar[str] = "oidcprovider"
    short_names: ClassVar[tuple[str, ...]] = ("oidcp",)
    namespaced: ClassVar[bool] = False
    printer_columns: ClassVar[tuple[dict[str, str], ...]] = (
        {"name": "Issuer", "type": "string", "jsonPath": ".spec.issuerURL"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Keys", "type": "integer", "jsonPath": ".status.keyCount"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    )

    spec: OIDCProviderSpec
    status: OIDCProviderStatus | None = None

"""Reading an OIDC issuer: its discovery document, the algorithms accepted from it, and the keys fit for them.

One implementation for everyone who trusts an issuer: the operator (which publishes the result for the
servers) and a Python service that verifies in its own process (`discover`, with no Kubernetes). The checks
are pure functions of what was read; `read_issuer` and `discover` make the two calls (discovery, then JWKS).

A document is the issuer's only when its `issuer` equals the configured URL character for character
(OpenID Connect Discovery 1.0, section 4.3): tokens carry that value in `iss`, and a document that named
another issuer could speak for it. Which keys are kept is `keys.select_keys`'s rule (`keys.usable_jwks`), the
very one the verifier applies, so nothing is published that the verifier would pass over.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from kubegate.contracts import timestamps
from kubegate.resources.oidcprovider import SIGNING_ALGORITHMS
from kubegate.validation_config.providers import ClaimRules, ProviderConfig, RequirementRule
from kubegate.verify.oidc.keys import usable_jwks
from kubegate.verify.oidc.provider_http import ProviderError, ProviderUnreachable

DISCOVERY_PATH = "/.well-known/openid-configuration"
DEFAULT_ALGORITHM = "RS256"
"""What OpenID Connect Discovery 1.0 requires every provider to support; used when the document lists none."""
_QUOTE_LIMIT = 300

Reason = Literal["IssuerMismatch", "DiscoveryFailed", "JWKSInvalid"]


class DiscoveryError(Exception):
    """The issuer cannot be trusted as configured. `reason` names the kind; `transient` True: it may pass by
    itself (retry later), False: the configuration (or the provider) must be fixed. The message says what to
    fix and never holds a secret."""

    def __init__(self, reason: Reason, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message
        self.transient = transient


@dataclass(frozen=True, kw_only=True)
class SettingNames:
    """How the messages name what the user set: the resource's fields for the operator, the arguments of
    `discover` for a Python service."""

    issuer_url: str = "issuer_url"
    algorithms: str = "algorithms"


PYTHON_ARGUMENTS = SettingNames()


def quote(value: object) -> str:
    """A value read from elsewhere, for a message: repr, cut short."""
    text = repr(value)
    return text if len(text) <= _QUOTE_LIMIT else text[: _QUOTE_LIMIT - 3] + "..."


def discovery_url(issuer_url: str) -> str:
    """OpenID Connect Discovery 1.0 section 4: a terminating slash of the issuer is removed first."""
    return issuer_url.rstrip("/") + DISCOVERY_PATH


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


def read_discovery(
    document: Mapping[str, Any], *, issuer_url: str, url: str, names: SettingNames = PYTHON_ARGUMENTS
) -> IssuerDiscovery:
    """Check a discovery document read from `url` against the configured `issuer_url`; raises DiscoveryError."""
    issuer = document.get("issuer")
    if issuer != issuer_url:
        hint = f"set {names.issuer_url} to exactly {issuer!r}" if isinstance(issuer, str) else "check it"
        raise DiscoveryError(
            "IssuerMismatch",
            f"the discovery document at {url} names issuer {quote(issuer)}, not {names.issuer_url} {issuer_url!r}: "
            f"{hint} (tokens carry it in their iss claim, character for character)",
        )
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
        raise DiscoveryError(
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


def allowed_algorithms(configured: Collection[str] | None, advertised: Sequence[str]) -> tuple[str, ...]:
    """The configured algorithms when set; else the asymmetric algorithms the provider advertises, else RS256.

    Never `none` nor HMAC, whatever the provider lists: an HMAC "key" would be its public key.
    """
    if configured:
        return tuple(a for a in SIGNING_ALGORITHMS if a in configured)
    chosen = tuple(a for a in SIGNING_ALGORITHMS if a in advertised)
    return chosen or (DEFAULT_ALGORITHM,)


def usable_keys(
    jwks: Mapping[str, Any], *, algorithms: Sequence[str], url: str, names: SettingNames = PYTHON_ARGUMENTS
) -> dict[str, Any]:
    """The keys of the issuer's JWKS (read from `url`) that the verifier uses with `algorithms`, as a JWKS;
    raises DiscoveryError (JWKSInvalid) when it holds private material or no such key."""
    try:
        keys = [dict(jwk) for jwk in usable_jwks(jwks, algorithms)]
    except ValueError as exc:
        raise DiscoveryError("JWKSInvalid", f"the JWKS at {url} is refused: {exc}") from None
    if not keys:
        found = sorted({f"{k.get('kty')}/{k.get('alg', '-')}" for k in jwks["keys"] if isinstance(k, Mapping)})
        raise DiscoveryError(
            "JWKSInvalid",
            f"the JWKS at {url} holds no signing key for the accepted algorithms {', '.join(algorithms)} "
            f"(its keys, as type/alg: {quote(', '.join(found)) if found else 'none'}): set {names.algorithms} to "
            "the provider's signing algorithm, or fix the provider's keys",
        )
    return {"keys": keys}


class DocumentSource(Protocol):
    """The one call reading an issuer takes: `provider_http.ProviderHttp`, or a fake in tests."""

    async def get_json(self, url: str, *, ca_bundle: str | None) -> dict[str, Any]: ...


@dataclass(frozen=True, kw_only=True)
class IssuerRead:
    """What was read from an issuer and found fit."""

    discovery: IssuerDiscovery
    algorithms: tuple[str, ...]
    jwks: dict[str, Any]
    """Only the keys fit for `algorithms`."""


async def read_issuer(
    issuer_url: str,
    http: DocumentSource,
    *,
    ca_bundle: str | None,
    algorithms: Collection[str] | None,
    names: SettingNames = PYTHON_ARGUMENTS,
) -> IssuerRead:
    """Read the discovery document, then the JWKS it names, and check both.

    Raises DiscoveryError when what was read is unfit, and `ProviderUnreachable` or `ProviderError` (from
    `http`) when it could not be read.
    """
    url = discovery_url(issuer_url)
    discovery = read_discovery(
        await http.get_json(url, ca_bundle=ca_bundle), issuer_url=issuer_url, url=url, names=names
    )
    allowed = allowed_algorithms(algorithms, discovery.signing_algorithms)
    jwks = await http.get_json(discovery.jwks_uri, ca_bundle=ca_bundle)
    return IssuerRead(
        discovery=discovery,
        algorithms=allowed,
        jwks=usable_keys(jwks, algorithms=allowed, url=discovery.jwks_uri, names=names),
    )


async def discover(
    issuer_url: str,
    http: DocumentSource,
    *,
    name: str | None = None,
    ca_bundle: str | None = None,
    audiences: Sequence[str] | None = None,
    algorithms: Collection[str] | None = None,
    claims: ClaimRules | None = None,
    requirements: Sequence[RequirementRule] = (),
    email_matches: Sequence[str] | None = None,
    introspection: bool = False,
    userinfo: bool = False,
    client_id: str | None = None,
    client_secret: str | None = None,
    now: datetime | None = None,
) -> ProviderConfig:
    """A trusted issuer for a verifier in this process, read now from the issuer itself (no Kubernetes).

    `issuer_url`: the issuer, exactly as its tokens carry it in `iss` (no slash added or removed).
    `http`: reads the documents (a `ProviderHttp`).
    `name`: the provider's name (the value of a provider hint); default: `issuer_url`.
    `ca_bundle`: PEM certificates to trust for this issuer; None: the system's trust store.
    `audiences`: a token's `aud` must hold one of them; None: any audience.
    `algorithms`: accepted signature algorithms; None: the asymmetric ones the issuer advertises.
    `claims`: how claims map to the identity (username, groups, prefixes).
    `requirements`, `email_matches`: what every accepted token's claims must meet.
    `introspection`, `userinfo`: check opaque tokens with that endpoint (when the issuer has it);
    `client_id`, `client_secret`: the client credentials introspection authenticates with.
    `now`: when the keys were read (default: now).

    Raises DiscoveryError when the issuer cannot be read or what it answers is unfit (`reason` says which).
    """
    try:
        read = await read_issuer(issuer_url, http, ca_bundle=ca_bundle, algorithms=algorithms)
    except (ProviderUnreachable, ProviderError) as exc:
        raise DiscoveryError(
            "DiscoveryFailed",
            f"cannot read the issuer {issuer_url!r}: {exc}",
            transient=isinstance(exc, ProviderUnreachable),
        ) from exc
    return provider_config(
        read.discovery,
        name=name if name is not None else issuer_url,
        issuer=issuer_url,
        algorithms=read.algorithms,
        jwks=read.jwks,
        keys_fetched_at=now if now is not None else timestamps.now(),
        audiences=audiences,
        claims=claims,
        email_matches=email_matches,
        requirements=requirements,
        introspection=introspection,
        userinfo=userinfo,
        client_id=client_id,
        client_secret=client_secret,
        ca_bundle=ca_bundle,
    )


def provider_config(
    discovery: IssuerDiscovery,
    *,
    name: str,
    issuer: str,
    algorithms: tuple[str, ...],
    jwks: dict[str, Any],
    keys_fetched_at: datetime | None,
    audiences: Sequence[str] | None = None,
    claims: ClaimRules | None = None,
    email_matches: Sequence[str] | None = None,
    requirements: Sequence[RequirementRule] = (),
    introspection: bool = False,
    userinfo: bool = False,
    client_id: str | None = None,
    client_secret: str | None = None,
    ca_bundle: str | None = None,
    generation: int = 0,
) -> ProviderConfig:
    """What a verifier needs of one issuer: the discovered endpoints, the keys, and the rules set for it.
    Opaque-token checks are on only when asked for and the issuer has the endpoint."""
    return ProviderConfig(
        name=name,
        issuer=issuer,
        jwks_uri=discovery.jwks_uri,
        authorization_endpoint=discovery.authorization_endpoint,
        token_endpoint=discovery.token_endpoint,
        userinfo_endpoint=discovery.userinfo_endpoint,
        introspection_endpoint=discovery.introspection_endpoint,
        algorithms=algorithms,
        audiences=tuple(audiences) if audiences is not None else None,
        claims=claims if claims is not None else ClaimRules(),
        email_matches=tuple(email_matches) if email_matches is not None else None,
        requirements=tuple(requirements),
        introspection=introspection and discovery.introspection_endpoint is not None,
        userinfo=userinfo and discovery.userinfo_endpoint is not None,
        client_id=client_id,
        client_secret=client_secret,
        ca_bundle=ca_bundle,
        jwks=jwks,
        keys_fetched_at=keys_fetched_at,
        generation=generation,
    )

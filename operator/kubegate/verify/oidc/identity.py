"""From an OIDC provider's verified claims to kubegate's `Authentication`, and the provider's requirements on
them. Pure; no I/O. Shared by JWT access tokens and opaque tokens (introspection, userinfo).

Names: the username claim (a non-empty string) and the groups claim (a string or a list of strings) get the
provider's prefixes. Kubernetes reserves `system:`: a username that would start with it refuses the token,
a group that would is dropped, so a provider can never speak for a Kubernetes system identity.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubegate.contracts.authentication import Authentication, Identity, Method
from kubegate.validation_config.providers import ProviderConfig
from kubegate.verify.errors import RequirementFailed, Unauthenticated
from kubegate.verify.requirements import Requirement

RESERVED_PREFIX = "system:"
METADATA_PREFIX = "io.kubegate.auth.oidc."
METADATA_CLAIMS = ("email", "name", "picture", "sub")
"""Claims copied into the authentication's metadata (as Flipt does for OIDC sessions), plus `provider`."""
EMAIL = "email"
_MAX_NAME = 1024
_MAX_GROUPS = 1024
_RULES_CACHE = 256

log = logging.getLogger(__name__)


def authentication_from_claims(provider: ProviderConfig, claims: Mapping[str, Any], *, digest: bytes) -> Authentication:
    """The authentication verified `claims` of `provider` stand for; `digest` is the token's SHA-256.

    Raises Unauthenticated when the claims name no usable user (no username claim, or a reserved name).
    The authentication's id is derived from the digest: stable for one token, safe to log, and saying
    nothing about the token.
    """
    rules = provider.claims
    name = claims.get(rules.username)
    if not isinstance(name, str) or not _usable(name):
        raise Unauthenticated("malformed")
    username = rules.username_prefix + name
    if username.startswith(RESERVED_PREFIX):
        raise Unauthenticated("forbidden_name")
    subject = claims.get("sub")
    now = datetime.now(UTC)
    expires = _time(claims.get("exp"))
    issued = _time(claims.get("iat")) or now
    metadata = {METADATA_PREFIX + "provider": provider.name}
    for claim in METADATA_CLAIMS:
        value = claims.get(claim)
        if isinstance(value, str) and _usable(value):
            metadata[METADATA_PREFIX + claim] = value
    return Authentication(
        id=str(uuid.UUID(bytes=digest[:16], version=4)),
        method=Method.OIDC,
        expires_at=expires,
        created_at=issued,
        updated_at=issued,
        metadata=metadata,
        identity=Identity(
            username=username,
            uid=subject if isinstance(subject, str) and subject else name,
            groups=_groups(claims.get(rules.groups), rules.groups_prefix),
            claims=dict(claims),
        ),
    )


def _groups(value: Any, prefix: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        return ()
    groups: list[str] = []
    for group in value[:_MAX_GROUPS]:
        if not isinstance(group, str) or not _usable(group):
            continue
        named = prefix + group
        if named.startswith(RESERVED_PREFIX):
            log.debug("dropped a group with the reserved prefix %s", RESERVED_PREFIX)
            continue
        groups.append(named)
    return tuple(dict.fromkeys(groups))


def _usable(value: str) -> bool:
    """Whether a claim value may become a name, group or metadata value: not empty, not too long, and free of
    control characters (names travel in HTTP headers, where a line break would split them)."""
    return 0 < len(value) <= _MAX_NAME and _CONTROL.search(value) is None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _time(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class ProviderRules:
    """A provider's requirements and email patterns, compiled once per published config."""

    requirements: tuple[Requirement, ...]
    email_patterns: tuple[re.Pattern[str], ...] | None
    email_sources: tuple[str, ...]

    @classmethod
    def of(cls, provider: ProviderConfig) -> ProviderRules:
        requirements = tuple(
            Requirement(tuple(rule.values), rule.match, rule.claim, entitlements=rule.entitlements)
            for rule in provider.requirements
        )
        patterns = None
        sources: tuple[str, ...] = ()
        if provider.email_matches is not None:
            compiled = []
            for source in provider.email_matches:
                try:
                    compiled.append(re.compile(source))
                except re.error:
                    # The operator checks patterns; one that slipped through matches nobody (stricter).
                    log.error("OIDC provider %s: email pattern %r is not a regular expression", provider.name, source)
            patterns, sources = tuple(compiled), tuple(provider.email_matches)
        return cls(requirements=requirements, email_patterns=patterns, email_sources=sources)

    def check(self, authentication: Authentication) -> None:
        """Raise RequirementFailed naming the first requirement `authentication` does not meet."""
        who = authentication.identity.username
        for requirement in self.requirements:
            result = requirement.evaluate(authentication)
            if not result.satisfied:
                raise RequirementFailed(result.message(who), result.detail())
        if self.email_patterns is not None:
            email = authentication.identity.claims.get(EMAIL)
            if not isinstance(email, str) or not any(p.fullmatch(email) for p in self.email_patterns):
                raise RequirementFailed(
                    f"access requires an email matching one of {', '.join(self.email_sources)}; "
                    f"{who} {'has no email' if not isinstance(email, str) else 'has another email'}",
                    {"requirement": "emailMatches", "anyOf": list(self.email_sources)},
                )


_compiled: dict[int, tuple[ProviderConfig, ProviderRules]] = {}


def rules_of(provider: ProviderConfig) -> ProviderRules:
    """The compiled rules of `provider`, kept for as long as this config object is the current one."""
    found = _compiled.get(id(provider))
    if found is not None and found[0] is provider:
        return found[1]
    if len(_compiled) >= _RULES_CACHE:
        _compiled.clear()
    rules = ProviderRules.of(provider)
    _compiled[id(provider)] = (provider, rules)
    return rules


def check_requirements(provider: ProviderConfig, authentication: Authentication) -> None:
    """Raise RequirementFailed (a 403 naming it) unless `authentication` meets every requirement of `provider`
    and, when it has email patterns, its `email` claim matches one in full."""
    rules_of(provider).check(authentication)

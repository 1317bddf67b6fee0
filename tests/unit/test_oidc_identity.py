"""Claims to identity, and a provider's requirements, for OIDC access tokens."""

from __future__ import annotations

import pytest

from kubegate.contracts.authentication import Method
from kubegate.contracts.token_format import token_digest
from kubegate.validation_config.providers import ClaimRules, ProviderConfig, RequirementRule
from kubegate.verify.errors import RequirementFailed, Unauthenticated
from kubegate.verify.oidc.identity import authentication_from_claims, check_requirements

CLAIMS = {
    "iss": "https://idp.example",
    "sub": "CgVhbGljZRIFbG9jYWw",
    "name": "Alice",
    "email": "alice@example.com",
    "preferred_username": "alice",
    "groups": ["admins", "developers", 7, "", "system:masters", "ops\nX-Evil: 1"],
    "exp": 2_000_000_000,
    "iat": 1_900_000_000,
}
DIGEST = token_digest("some-token")


def provider(**fields: object) -> ProviderConfig:
    base: dict[str, object] = {"name": "dex", "issuer": "https://idp.example", "jwks_uri": "https://idp.example/keys"}
    base.update(fields)
    return ProviderConfig.model_validate(base)


def test_claims_map_to_an_oidc_authentication_with_flipt_metadata() -> None:
    authentication = authentication_from_claims(provider(), CLAIMS, digest=DIGEST)
    assert authentication.method is Method.OIDC
    assert authentication.identity.username == CLAIMS["sub"]
    assert authentication.identity.uid == CLAIMS["sub"]
    # Non-strings, empty names and reserved names are dropped.
    assert authentication.identity.groups == ("admins", "developers")
    assert authentication.metadata == {
        "io.kubegate.auth.oidc.provider": "dex",
        "io.kubegate.auth.oidc.email": "alice@example.com",
        "io.kubegate.auth.oidc.name": "Alice",
        "io.kubegate.auth.oidc.sub": CLAIMS["sub"],
    }
    assert authentication.expires_at is not None
    assert authentication.expires_at.timestamp() == 2_000_000_000
    assert authentication.identity.claims["email"] == "alice@example.com"
    # The id is stable for a token and says nothing about it.
    assert authentication.id == authentication_from_claims(provider(), CLAIMS, digest=DIGEST).id
    assert authentication.id != authentication_from_claims(provider(), CLAIMS, digest=token_digest("other")).id


def test_prefixes_and_claim_names_come_from_the_provider() -> None:
    rules = ClaimRules(username="email", groups="groups", username_prefix="dex:", groups_prefix="dex:")
    identity = authentication_from_claims(provider(claims=rules), CLAIMS, digest=DIGEST).identity
    assert identity.username == "dex:alice@example.com"
    # With a prefix, a provider's "system:masters" is just a name of its own.
    assert identity.groups == ("dex:admins", "dex:developers", "dex:system:masters")


@pytest.mark.parametrize("name", [None, "", 5, ["alice"], "system:admin", "x" * 2000, "alice\r\nX-Evil: 1"])
def test_no_usable_username_refuses_the_token(name: object) -> None:
    claims = {**CLAIMS, "preferred_username": name}
    with pytest.raises(Unauthenticated):
        authentication_from_claims(provider(claims=ClaimRules(username="preferred_username")), claims, digest=DIGEST)


def test_a_prefix_cannot_make_a_reserved_username() -> None:
    with pytest.raises(Unauthenticated):
        authentication_from_claims(provider(claims=ClaimRules(username_prefix="system:")), CLAIMS, digest=DIGEST)


def test_a_string_groups_claim_is_one_group() -> None:
    identity = authentication_from_claims(provider(), {**CLAIMS, "groups": "admins"}, digest=DIGEST).identity
    assert identity.groups == ("admins",)


def test_requirements_pass_and_a_failure_names_the_requirement() -> None:
    ok = provider(requirements=[RequirementRule(claim="groups", values=("admins", "ops", "developers"), match=2)])
    check_requirements(ok, authentication_from_claims(ok, CLAIMS, digest=DIGEST))
    failing = provider(requirements=[RequirementRule(claim="groups", values=("admins", "ops"), match="all")])
    with pytest.raises(RequirementFailed) as refused:
        check_requirements(failing, authentication_from_claims(failing, CLAIMS, digest=DIGEST))
    assert refused.value.detail == {"requirement": "group", "allOf": ["admins", "ops"], "missing": ["ops"]}
    assert "ops" in refused.value.message


def test_requirements_on_other_claims_read_the_verified_claims() -> None:
    config = provider(requirements=[RequirementRule(claim="name", values=("Alice", "Bob"), match="one")])
    check_requirements(config, authentication_from_claims(config, CLAIMS, digest=DIGEST))
    with pytest.raises(RequirementFailed) as refused:
        check_requirements(config, authentication_from_claims(config, {**CLAIMS, "name": "Eve"}, digest=DIGEST))
    assert refused.value.detail == {"requirement": "claim", "claim": "name", "anyOf": ["Alice", "Bob"]}


@pytest.mark.parametrize(
    ("email", "allowed"),
    [
        ("alice@example.com", True),
        ("alice@example.com.evil.org", False),  # matched in full, not as a prefix
        ("bob@example.org", False),
        (None, False),
    ],
)
def test_email_patterns_match_in_full(email: str | None, allowed: bool) -> None:
    config = provider(email_matches=[r"[^@]+@example\.com"])
    claims = {**CLAIMS, "email": email} if email is not None else {k: v for k, v in CLAIMS.items() if k != "email"}
    authentication = authentication_from_claims(config, claims, digest=DIGEST)
    if allowed:
        check_requirements(config, authentication)
        return
    with pytest.raises(RequirementFailed) as refused:
        check_requirements(config, authentication)
    assert refused.value.detail["requirement"] == "emailMatches"


def test_an_invalid_email_pattern_matches_nobody() -> None:
    config = provider(email_matches=["(unclosed"])
    with pytest.raises(RequirementFailed):
        check_requirements(config, authentication_from_claims(config, CLAIMS, digest=DIGEST))

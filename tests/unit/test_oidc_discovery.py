"""Reading a trusted issuer (verify/oidc/discovery.py): the discovery document must be the issuer's, only
asymmetric algorithms are accepted, and only the keys the verifier would use are kept; `discover` builds the
config a Python service verifies with, and says clearly why an issuer cannot be trusted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed448, rsa
from hypothesis import given
from hypothesis import strategies as st
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm
from jwt_provider_fakes import JwksEndpoint, ec_key, ed_key, rsa_key, unreachable

from kubegate.validation_config.providers import ClaimRules, RequirementRule
from kubegate.verify.oidc.discovery import (
    DiscoveryError,
    allowed_algorithms,
    discover,
    discovery_url,
    usable_keys,
)
from kubegate.verify.oidc.keys import select_keys

ISSUER = "https://idp.example/dex"
JWKS_URI = ISSUER + "/keys"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _issuer(*keys: dict[str, Any], **document: Any) -> JwksEndpoint:
    return JwksEndpoint(
        documents={
            discovery_url(ISSUER): {
                "issuer": ISSUER,
                "jwks_uri": JWKS_URI,
                "token_endpoint": ISSUER + "/token",
                "userinfo_endpoint": ISSUER + "/userinfo",
                "id_token_signing_alg_values_supported": ["RS256"],
                **document,
            },
            JWKS_URI: {"keys": list(keys)},
        }
    )


@pytest.mark.parametrize(
    ("advertised", "configured", "expected"),
    [
        (["RS256", "HS256", "none", "ES256"], None, ("RS256", "ES256")),
        ([], None, ("RS256",)),
        (["HS256"], None, ("RS256",)),
        (["RS256"], ["PS256", "RS256"], ("RS256", "PS256")),
        (["RS256"], ["HS256", "none", "ES256"], ("ES256",)),
    ],
)
def test_allowed_algorithms_are_asymmetric_only(
    advertised: list[str], configured: list[str] | None, expected: tuple[str, ...]
) -> None:
    assert allowed_algorithms(configured, tuple(advertised)) == expected


async def test_discover_reads_the_issuer_and_keeps_the_settings_given() -> None:
    rsa1, ec1 = rsa_key(), ec_key()
    issuer = _issuer(rsa1.jwk(), ec1.jwk(), id_token_signing_alg_values_supported=["RS256", "ES256", "HS256"])
    requirement = RequirementRule(claim="groups", values=("admins",))
    config = await discover(
        ISSUER,
        issuer,
        audiences=["kubegate"],
        claims=ClaimRules(username="email"),
        requirements=[requirement],
        introspection=True,
        userinfo=True,
        client_id="kubegate",
        now=T0,
    )
    assert issuer.calls == [discovery_url(ISSUER), JWKS_URI]
    assert (config.name, config.issuer, config.jwks_uri) == (ISSUER, ISSUER, JWKS_URI)
    assert config.algorithms == ("RS256", "ES256")
    assert [k["kid"] for k in config.jwks["keys"]] == ["rsa-1", "ec-1"]
    assert config.keys_fetched_at == T0
    assert config.audiences == ("kubegate",)
    assert config.claims.username == "email"
    assert config.requirements == (requirement,)
    # The document has no introspection endpoint: that check is off; userinfo is on.
    assert (config.introspection, config.userinfo) == (False, True)


@pytest.mark.parametrize("configured", [ISSUER + "/", "https://IDP.example/dex", "https://idp.example/other"])
async def test_an_issuer_that_differs_in_any_character_is_refused_before_its_keys_are_read(configured: str) -> None:
    issuer = _issuer(rsa_key().jwk())
    issuer.documents[discovery_url(configured)] = issuer.documents[discovery_url(ISSUER)]
    with pytest.raises(DiscoveryError) as refused:
        await discover(configured, issuer)
    assert refused.value.reason == "IssuerMismatch"
    assert not refused.value.transient
    assert f"set issuer_url to exactly {ISSUER!r}" in str(refused.value)
    assert issuer.calls == [discovery_url(configured)]


async def test_an_issuer_that_cannot_be_read_is_a_discovery_failure() -> None:
    down = _issuer(rsa_key().jwk())
    down.failure = unreachable()
    with pytest.raises(DiscoveryError) as refused:
        await discover(ISSUER, down)
    assert (refused.value.reason, refused.value.transient) == ("DiscoveryFailed", True)
    with pytest.raises(DiscoveryError) as missing:
        await discover("https://idp.example/nowhere", _issuer())
    assert (missing.value.reason, missing.value.transient) == ("DiscoveryFailed", False)
    assert "404" in str(missing.value)


async def test_a_jwks_uri_that_is_not_https_is_refused() -> None:
    with pytest.raises(DiscoveryError) as refused:
        await discover(ISSUER, _issuer(rsa_key().jwk(), jwks_uri="http://idp.example/keys"))
    assert refused.value.reason == "DiscoveryFailed"
    assert "jwks_uri" in str(refused.value)


async def test_no_key_for_the_algorithms_names_the_argument_to_set() -> None:
    with pytest.raises(DiscoveryError) as refused:
        await discover(ISSUER, _issuer(rsa_key().jwk()), algorithms=["ES256"])
    assert refused.value.reason == "JWKSInvalid"
    assert "set algorithms to" in str(refused.value)


def test_private_material_refuses_the_whole_jwks_without_quoting_it() -> None:
    leaked = {**rsa_key().jwk(), "d": "PRIVATE-EXPONENT-VALUE"}
    with pytest.raises(DiscoveryError) as refused:
        usable_keys({"keys": [leaked, ec_key().jwk()]}, algorithms=("RS256", "ES256"), url=JWKS_URI)
    assert refused.value.reason == "JWKSInvalid"
    assert "PRIVATE-EXPONENT-VALUE" not in str(refused.value)


def _small_rsa() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    return {**RSAAlgorithm.to_jwk(key, as_dict=True), "kid": "small", "alg": "RS256"}


def _ed448() -> dict[str, Any]:
    return {**OKPAlgorithm.to_jwk(ed448.Ed448PrivateKey.generate().public_key(), as_dict=True), "kid": "ed448"}


# What the verifier passes over, which the operator once published all the same.
_POOL = [
    rsa_key().jwk(),
    rsa_key("rsa-2", 1).jwk(),
    rsa_key("ps", 1, "PS256").jwk(),
    ec_key().jwk(),
    ed_key().jwk(),
    {**rsa_key("enc", 2).jwk(), "use": "enc"},
    {**ec_key("verify-only").jwk(), "key_ops": ["verify"]},
    {**ec_key("sign-only").jwk(), "key_ops": ["sign"]},
    {k: v for k, v in rsa_key("no-kid", 2).jwk().items() if k != "kid"},
    {**ec_key("rsa-1").jwk()},  # a second key with kid rsa-1
    _small_rsa(),
    _ed448(),
    {"kty": "EC", "crv": "P-256", "x": "not-base64!", "y": "AA", "kid": "broken"},
]
_ALGORITHMS = st.lists(st.sampled_from(["RS256", "PS256", "ES256", "EdDSA"]), min_size=1, unique=True)


@given(st.lists(st.sampled_from(_POOL), max_size=6), _ALGORITHMS)
def test_the_keys_kept_are_exactly_those_the_verifier_uses(keys: list[dict[str, Any]], algorithms: list[str]) -> None:
    used = select_keys({"keys": keys}, algorithms)
    if not used:
        with pytest.raises(DiscoveryError, match="no signing key"):
            usable_keys({"keys": keys}, algorithms=algorithms, url=JWKS_URI)
        return
    kept = usable_keys({"keys": keys}, algorithms=algorithms, url=JWKS_URI)["keys"]
    assert {k["kid"] for k in kept} == set(used)
    assert len(kept) == len(used)
    assert select_keys({"keys": kept}, algorithms).keys() == used.keys()

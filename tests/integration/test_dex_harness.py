"""The Dex of the tests (kubegate.devcluster.dex) is a real OIDC provider: its tokens are what kubegate's
OIDC tests and benchmarks rely on, so what they claim about them is checked here against Dex itself."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from kubegate.devcluster import DevClusterError
from kubegate.devcluster.dex import DexServer

pytestmark = pytest.mark.integration


def verified_claims(dex: DexServer, token: str, *, audience: str = "kubegate") -> dict[str, Any]:
    """The claims of `token`, verified with the key of its `kid` from Dex's JWKS, its issuer and audience."""
    header = jwt.get_unverified_header(token)
    keys = {key["kid"]: key for key in dex.jwks()["keys"]}
    key = jwt.PyJWK(keys[header["kid"]])
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["RS256"], audience=audience, issuer=dex.issuer, options={"require": ["exp", "iat"]}
    )
    return claims


def test_a_password_grant_gives_an_rs256_access_token_of_the_issuer_for_the_client(dex: DexServer) -> None:
    tokens = dex.password_grant_tokens("alice")

    header = jwt.get_unverified_header(tokens.access_token)
    assert header["alg"] == "RS256"
    assert header["kid"] in {key["kid"] for key in dex.jwks()["keys"]}
    claims = verified_claims(dex, tokens.access_token)
    assert claims["iss"] == dex.issuer
    assert dex.issuer.startswith("https://127.0.0.1:")
    assert claims["aud"] == "kubegate"
    assert claims["email"] == "alice@example.com"
    assert claims["groups"] == ["admins", "developers"]
    assert verified_claims(dex, tokens.id_token)["sub"] == claims["sub"]


def test_each_user_has_the_groups_and_email_of_the_harness(dex: DexServer) -> None:
    bob = verified_claims(dex, dex.password_grant("bob"))
    carol = verified_claims(dex, dex.password_grant("carol"))

    assert (bob["email"], bob["groups"]) == ("bob@example.org", ["developers"])
    assert carol["email"] == "carol@example.com"
    assert carol.get("groups", []) == []


def test_the_other_client_mints_tokens_whose_audience_is_not_kubegate(dex: DexServer) -> None:
    token = dex.password_grant("alice", client_id="other-client")

    assert verified_claims(dex, token, audience="other-client")["aud"] == "other-client"
    with pytest.raises(jwt.InvalidAudienceError):
        verified_claims(dex, token, audience="kubegate")


def test_a_wrong_password_is_refused(dex: DexServer) -> None:
    with pytest.raises(DevClusterError, match="refused the password grant"):
        dex.password_grant("alice", "not-her-password")


def test_requests_served_counts_every_call_to_dex(dex: DexServer) -> None:
    before = dex.requests_served()
    dex.password_grant("bob")
    dex.jwks()  # discovery, then the keys: two requests

    assert dex.requests_served() == before + 3
    assert dex.requests_served() == before + 3  # reading the metrics is no request to Dex itself
    keys_before = dex.requests_served(handler="/keys")
    dex.jwks()
    assert dex.requests_served(handler="/keys") == keys_before + 1


def test_minted_tokens_are_distinct_and_all_valid(dex: DexServer) -> None:
    tokens = dex.mint_access_tokens(12, ["alice", "bob"])

    assert len(set(tokens)) == 12
    emails = [verified_claims(dex, token)["email"] for token in tokens]
    assert sorted(set(emails)) == ["alice@example.com", "bob@example.org"]


def test_a_restart_keeps_the_issuer_and_ca_but_makes_new_signing_keys(dex_fresh: DexServer) -> None:
    old_token = dex_fresh.password_grant("alice")
    old_kids = {key["kid"] for key in dex_fresh.jwks()["keys"]}
    issuer = dex_fresh.issuer

    dex_fresh.restart()

    new_kids = {key["kid"] for key in dex_fresh.jwks()["keys"]}
    assert new_kids
    assert old_kids.isdisjoint(new_kids)
    assert dex_fresh.issuer == issuer
    assert jwt.get_unverified_header(old_token)["kid"] not in new_kids
    assert verified_claims(dex_fresh, dex_fresh.password_grant("alice"))["iss"] == issuer

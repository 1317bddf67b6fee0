"""Which keys of a JWKS verify client tokens: EC P-256 for ES256 signatures only, and never a private key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubegate.client_tokens import keys
from kubegate.contracts.jwks import PRIVATE_MEMBERS, check_public, es256_keys

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def published() -> dict[str, Any]:
    return keys.initial(T0, max_token_lifetime=timedelta(hours=1)).jwks()


def one_key(**change: Any) -> dict[str, Any]:
    (jwk,) = published()["keys"]
    jwk.update(change)
    return {"keys": [{k: v for k, v in jwk.items() if v is not None}]}


def test_the_published_keys_are_selected_by_kid() -> None:
    ks = keys.rotate(keys.initial(T0, max_token_lifetime=timedelta(hours=1)), T0)
    selected = es256_keys(ks.jwks())
    assert set(selected) == {k.kid for k in ks.keys}
    assert all(selected[k.kid].public_numbers() == k.public_key().public_numbers() for k in ks.keys)


@pytest.mark.parametrize(
    "change",
    [
        {"alg": "ES384"},
        {"alg": None},
        {"use": "enc"},
        {"use": None},
        {"crv": "P-384"},
        {"kty": "RSA"},
        {"kid": None},
        {"kid": ""},
        {"x": "AAAA"},  # not a point on the curve
        {"y": 5},
    ],
    ids=["es384", "no-alg", "encryption", "no-use", "p384", "rsa", "no-kid", "empty-kid", "off-curve", "y-number"],
)
def test_keys_not_published_for_es256_signatures_are_passed_over(change: dict[str, Any]) -> None:
    assert es256_keys(one_key(**change)) == {}


def test_two_keys_with_one_kid_are_both_passed_over() -> None:
    first, impostor, third = (keys.new_key(T0).public_jwk() for _ in range(3))
    jwks = {"keys": [first, {**impostor, "kid": first["kid"]}, third]}
    assert set(es256_keys(jwks)) == {third["kid"]}


@pytest.mark.parametrize("member", sorted(PRIVATE_MEMBERS))
def test_a_jwks_with_a_private_member_is_refused_whole(member: str) -> None:
    jwks = {"keys": [*published()["keys"], {**one_key()["keys"][0], "kid": "other", member: "c2VjcmV0"}]}
    with pytest.raises(ValueError, match="private members") as refused:
        es256_keys(jwks)
    assert "c2VjcmV0" not in str(refused.value)


@pytest.mark.parametrize("jwks", [{}, {"keys": {}}, {"keys": ["x"]}, {"keys": [[]]}])
def test_what_is_not_a_jwks_is_refused(jwks: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="JWKS"):
        check_public(jwks)

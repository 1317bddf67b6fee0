"""Credentials are told apart before any cryptography or network call (RFC 8725, section 3.12)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kubegate.verify import CLIENT_TOKEN_TYP, Kind, classify

ISSUER = "https://kubegate.example.com"
PROVIDER = "https://dex.example.com"


def _segment(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def jwt(header: Any, payload: Any, signature: str = "c2lnbmF0dXJl") -> str:
    return f"{_segment(header)}.{_segment(payload)}.{signature}"


def kind_of(
    credential: str, *, client_issuer: str | None = ISSUER, providers: frozenset[str] = frozenset({PROVIDER})
) -> Kind:
    return classify(credential, client_issuer=client_issuer, oidc_issuers=providers).kind


def test_opaque_tokens_are_static() -> None:
    assert kind_of("kg_" + "A" * 43 + "=") is Kind.STATIC
    assert kind_of("plain-token-without-dots") is Kind.STATIC


def test_two_dots_without_a_jwt_header_are_still_static() -> None:
    # A brought static token may contain dots; only a JSON header with "alg" makes a JWT.
    assert kind_of("my.brought.token") is Kind.STATIC
    assert kind_of(f"{_segment({'typ': 'JWT'})}.e30.sig") is Kind.STATIC
    assert kind_of(f"{_segment([1, 2])}.e30.sig") is Kind.STATIC


def test_client_token_needs_the_issuer_and_the_typ() -> None:
    assert kind_of(jwt({"alg": "ES256", "typ": CLIENT_TOKEN_TYP}, {"iss": ISSUER})) is Kind.CLIENT
    assert (
        kind_of(jwt({"alg": "ES256", "typ": "application/" + CLIENT_TOKEN_TYP.upper()}, {"iss": ISSUER})) is Kind.CLIENT
    )
    assert kind_of(jwt({"alg": "ES256", "typ": "JWT"}, {"iss": ISSUER})) is Kind.REJECTED
    assert kind_of(jwt({"alg": "ES256"}, {"iss": ISSUER})) is Kind.REJECTED


def test_client_typ_from_another_issuer_is_rejected_even_from_a_provider() -> None:
    assert kind_of(jwt({"alg": "RS256", "typ": CLIENT_TOKEN_TYP}, {"iss": PROVIDER})) is Kind.REJECTED


def test_no_client_tokens_while_kubegate_issues_none() -> None:
    token = jwt({"alg": "ES256", "typ": CLIENT_TOKEN_TYP}, {"iss": ISSUER})
    assert kind_of(token, client_issuer=None) is Kind.REJECTED


def test_provider_tokens_are_oidc() -> None:
    token = jwt({"alg": "RS256", "typ": "at+jwt"}, {"iss": PROVIDER})
    result = classify(token, client_issuer=ISSUER, oidc_issuers={PROVIDER})
    assert result.kind is Kind.OIDC
    assert result.issuer == PROVIDER


@pytest.mark.parametrize(
    "token",
    [
        jwt({"alg": "RS256"}, {"iss": "https://evil.example.com"}),
        jwt({"alg": "RS256"}, {"sub": "no issuer"}),
        jwt({"alg": "RS256"}, {"iss": 42}),
        jwt({"alg": "RS256"}, [PROVIDER]),
        jwt({"alg": "none"}, {"iss": PROVIDER}, signature="c2ln"),
        jwt({"alg": "NONE"}, {"iss": ISSUER}, signature="c2ln"),
        f"{_segment({'alg': 'RS256'})}.{_segment({'iss': PROVIDER})}.",
        f"{_segment({'alg': 'RS256'})}.not-base64!.sig",
        f"{_segment({'alg': 'RS256'})}.{_segment(b'not json')}.sig",
    ],
)
def test_jwts_that_fit_no_rule_are_rejected_before_any_network_call(token: str) -> None:
    assert kind_of(token) is Kind.REJECTED


@given(st.text(max_size=400))
def test_text_that_is_not_three_dotted_segments_is_a_static_token(text: str) -> None:
    classified = classify(text, client_issuer=ISSUER, oidc_issuers={PROVIDER})
    if text.count(".") != 2:
        assert classified.kind is Kind.STATIC
    else:
        assert classified.kind in (Kind.STATIC, Kind.REJECTED)  # no trusted iss can hide in random text


@given(
    st.dictionaries(st.text(max_size=8), st.none() | st.integers() | st.text(max_size=20), max_size=4),
    st.binary(max_size=40),
)
def test_any_header_and_payload_are_classified_without_error(header: dict[str, Any], payload: bytes) -> None:
    token = f"{_segment(header)}.{_segment(payload) or 'e30'}.sig"
    classified = classify(token, client_issuer=ISSUER, oidc_issuers={PROVIDER})
    # Without a trusted issuer in the payload, never a client or an OIDC token, whatever the header says.
    assume(ISSUER.encode() not in payload and PROVIDER.encode() not in payload)
    assert classified.kind in (Kind.STATIC, Kind.REJECTED)
    if isinstance(header.get("alg"), str):
        assert classified.kind is Kind.REJECTED

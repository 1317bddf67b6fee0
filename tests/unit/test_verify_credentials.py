"""Where a credential comes from: the Authorization header or the kubegate cookie, nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubegate.contracts.token_format import is_visible_ascii
from kubegate.verify import COOKIE_NAME, Unauthenticated, credential_from
from kubegate.verify.credentials import MAX_CREDENTIAL_LENGTH


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(scheme: str) -> None:
    assert credential_from([f"{scheme} kg_abc"], None) == "kg_abc"


def test_header_wins_over_cookie() -> None:
    assert credential_from(["Bearer from-header"], "from-cookie") == "from-header"


def test_cookie_is_used_without_a_header() -> None:
    assert COOKIE_NAME == "kubegate_client_token"
    assert credential_from([], "from-cookie") == "from-cookie"


@pytest.mark.parametrize(
    ("authorization", "cookie", "reason"),
    [
        ([], None, "missing"),
        (["Bearer "], None, "missing"),
        ([], "", "missing"),
        (["Basic dXNlcjpwYXNz"], None, "malformed"),
        (["Bearer"], None, "missing"),
        (["Token abc"], "cookie-is-not-a-fallback", "malformed"),
        (["Bearer a", "Bearer b"], None, "malformed"),
        (["Bearer two words"], None, "malformed"),
        (["Bearer tab\there"], None, "malformed"),
        (["Bearer line\r\nX-Injected: 1"], None, "malformed"),
        (["Bearer nön-ascii"], None, "malformed"),
        (["Bearer " + "a" * (MAX_CREDENTIAL_LENGTH + 1)], None, "malformed"),
        ([], "bad\ncookie", "malformed"),
    ],
)
def test_refusals_say_why_for_the_logs(authorization: list[str], cookie: str | None, reason: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        credential_from(authorization, cookie)
    assert refused.value.reason == reason


def test_longest_credential_is_accepted() -> None:
    token = "a" * MAX_CREDENTIAL_LENGTH
    assert credential_from([f"Bearer {token}"], None) == token


@given(st.lists(st.text(max_size=300), max_size=3), st.none() | st.text(max_size=300))
def test_any_input_gives_a_visible_ascii_credential_or_a_refusal(authorization: list[str], cookie: str | None) -> None:
    reason = ""
    try:
        credential = credential_from(authorization, cookie)
    except Unauthenticated as exc:
        reason = exc.reason
    if not authorization and cookie is None:
        assert reason == "missing"
    if len(authorization) > 1:
        assert reason == "malformed"  # two credentials: which one was meant is not guessed
    if reason:
        assert reason in ("missing", "malformed")
        return
    assert credential
    assert all(0x21 <= ord(c) <= 0x7E for c in credential)
    assert len(credential) <= MAX_CREDENTIAL_LENGTH


def test_visible_ascii_is_exactly_0x21_to_0x7e() -> None:
    # Every character of the Basic Multilingual Plane, and a few beyond it.
    for code in [*range(0x10000), 0x1F600, 0x10FFFF]:
        assert is_visible_ascii(f"a{chr(code)}b") == (0x21 <= code <= 0x7E), hex(code)

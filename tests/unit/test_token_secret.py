"""The token Secret as the operator writes it and the operator and the token store read it back."""

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubegate.contracts import token_secret
from kubegate.contracts.token_format import MAX_TOKEN_LENGTH, generate_token, hash_token
from kubegate.contracts.token_secret import HashedToken, PreviousToken

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OWNER = {
    "apiVersion": "kubegate.dev/v1alpha1",
    "kind": "StaticToken",
    "metadata": {"name": "ci", "namespace": "apps", "uid": "uid-ci"},
}


def _secret(token: str = "kg_" + "A" * 43 + "=", **extra: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"token_id": "id-1", "created_at": T0, "rotate_request": None} | extra
    return token_secret.token_secret(owner=OWNER, name="ci-token", token=token, **args)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_a_written_secret_reads_back_as_the_same_token() -> None:
    token = generate_token("kg_")
    secret = _secret(token)
    assert secret["type"] == token_secret.SECRET_TYPE
    assert secret["metadata"]["namespace"] == "apps"
    assert secret["metadata"]["labels"][token_secret.OWNER_LABEL] == "ci"
    assert token_secret.is_owned_by(secret, "uid-ci")
    assert not token_secret.is_owned_by(secret, "uid-other")
    assert token_secret.stored_token(secret) == token
    assert token_secret.stored_token_id(secret) == "id-1"
    assert token_secret.current_token(secret, now=T0 + timedelta(days=1)) == HashedToken(
        token_id="id-1", sha256=hash_token(token), created_at=T0
    )
    assert token_secret.previous_token(secret) is None


def test_the_owner_reference_makes_the_secret_go_with_its_static_token() -> None:
    (owner,) = _secret()["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "kubegate.dev/v1alpha1",
        "kind": "StaticToken",
        "name": "ci",
        "uid": "uid-ci",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_the_replaced_token_reads_back_until_the_overlap_is_cleared() -> None:
    previous = PreviousToken(token_id="old", sha256="a" * 64, created_at=T0, expires_at=T0 + timedelta(hours=1))
    secret = _secret(previous=previous, rotate_request="r1")
    assert token_secret.previous_token(secret) == previous
    assert secret["metadata"]["annotations"][token_secret.HANDLED_ROTATE_ANNOTATION] == "r1"
    patch = token_secret.clear_previous_patch()
    annotations = {**secret["metadata"]["annotations"], **patch["metadata"]["annotations"]}
    secret["metadata"]["annotations"] = {k: v for k, v in annotations.items() if v is not None}
    assert token_secret.previous_token(secret) is None
    assert secret["metadata"]["annotations"][token_secret.HANDLED_ROTATE_ANNOTATION] == "r1"


def test_a_moved_secret_holds_the_same_token_and_owner_under_its_new_name() -> None:
    old = _secret()
    old["metadata"]["resourceVersion"] = "7"
    moved = token_secret.moved_token_secret(old, name="elsewhere")
    assert moved["metadata"]["name"] == "elsewhere"
    assert "resourceVersion" not in moved["metadata"]
    assert token_secret.stored_token(moved) == token_secret.stored_token(old)
    assert token_secret.current_token(moved, now=T0) == token_secret.current_token(old, now=T0)
    assert token_secret.is_owned_by(moved, "uid-ci")


def test_a_secret_edited_by_hand_gets_a_new_id_created_now() -> None:
    secret = _secret()
    del secret["data"][token_secret.TOKEN_ID_KEY]
    secret["metadata"]["annotations"] = {}
    current = token_secret.current_token(secret, now=T0 + timedelta(hours=3))
    assert current.created_at == T0 + timedelta(hours=3)
    assert current.token_id not in ("", "id-1")


def test_a_secret_without_a_token_has_no_current_token() -> None:
    secret = _secret()
    secret["data"] = {}
    assert token_secret.stored_token(secret) is None
    assert token_secret.stored_token_id(secret) is None
    with pytest.raises(ValueError, match="no usable token"):
        token_secret.current_token(secret, now=T0)


def test_one_trailing_line_break_of_a_brought_token_is_dropped() -> None:
    assert token_secret.decode_token(_b64("a-token-of-16-ch\n")) == "a-token-of-16-ch"
    assert token_secret.decode_token(_b64("a-token-of-16-ch\r\n")) == "a-token-of-16-ch"


@pytest.mark.parametrize(
    "raw",
    [
        "not base64!",
        _b64("short"),
        _b64("x" * (MAX_TOKEN_LENGTH + 1)),
        _b64("sixteen chars but spaces"),
        base64.b64encode("sixteen-chars-é-nonascii".encode()).decode(),
        _b64("sixteen-chars\x00-with-nul"),
    ],
)
def test_values_that_are_no_usable_token_are_refused(raw: str) -> None:
    assert token_secret.decode_token(raw) is None


@given(st.text(max_size=64))
def test_a_decoded_token_is_visible_ascii_of_a_usable_length(text: str) -> None:
    token = token_secret.decode_token(base64.b64encode(text.encode()).decode())
    if token is not None:
        assert token_secret.MIN_BROUGHT_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH
        assert all(0x21 <= ord(c) <= 0x7E for c in token)
        assert token == text.strip("\r\n")

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubegate.contracts.token_format import generate_token, hash_token, is_generated_shape, new_token_id


def test_generated_token_is_32_random_bytes_in_url_safe_base64() -> None:
    token = generate_token()
    assert len(base64.urlsafe_b64decode(token)) == 32
    assert is_generated_shape(token)
    assert generate_token() != token


def test_prefix_is_prepended_and_recognized() -> None:
    token = generate_token("kg_")
    assert token.startswith("kg_")
    assert len(base64.urlsafe_b64decode(token.removeprefix("kg_"))) == 32
    assert is_generated_shape(token)


@pytest.mark.parametrize("prefix", ["KG_", "kg", "_", "1a_", "a" * 17 + "_", "kg-"])
def test_bad_prefixes_are_refused_with_the_rule(prefix: str) -> None:
    with pytest.raises(ValueError, match="lowercase letters or digits"):
        generate_token(prefix)


def test_hash_is_sha256_hex() -> None:
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()


def test_token_ids_are_distinct_uuids() -> None:
    ids = {new_token_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 36 and i.count("-") == 4 for i in ids)


@given(st.text(max_size=200))
def test_text_outside_the_token_alphabet_never_has_the_generated_shape(text: str) -> None:
    alphabet = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-=")
    if not set(text) <= alphabet or not text.endswith("=") or len(text) < 44:
        assert not is_generated_shape(text)


@given(st.from_regex(r"[a-z][a-z0-9]{0,15}_", fullmatch=True) | st.just(""), st.binary(min_size=32, max_size=32))
def test_every_prefix_and_body_generate_token_can_make_has_the_shape(prefix: str, body: bytes) -> None:
    token = prefix + base64.urlsafe_b64encode(body).decode()
    assert is_generated_shape(token)
    assert not is_generated_shape(token[:-2] + "=")  # one character short
    assert not is_generated_shape(token.upper() if prefix else "x" + token)

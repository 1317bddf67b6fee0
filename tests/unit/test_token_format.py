import base64
import hashlib
import re

import pytest

from kubegate.contracts.token_format import generate_token, hash_token, new_token_id


def test_generated_token_is_32_random_bytes_in_url_safe_base64() -> None:
    token = generate_token()
    assert len(base64.urlsafe_b64decode(token)) == 32
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}=", token)
    assert generate_token() != token


def test_prefix_is_prepended_and_recognized() -> None:
    token = generate_token("kg_")
    assert token.startswith("kg_")
    assert re.fullmatch(r"kg_[A-Za-z0-9_-]{43}=", token)
    assert len(base64.urlsafe_b64decode(token.removeprefix("kg_"))) == 32


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

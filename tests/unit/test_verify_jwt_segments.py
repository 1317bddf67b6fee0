"""Reading a JWT without verifying it: the one parser of JWT segments, fed anything a client may send."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kubegate.verify.jwt_segments import MAX_SEGMENT, read_jwt

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


def segment(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@given(st.text(max_size=200))
def test_any_text_is_read_or_refused_without_an_exception(text: str) -> None:
    token = read_jwt(text)
    if token is not None:
        assert isinstance(token.header["alg"], str)
        assert token.payload is None or isinstance(token.payload, dict)


@given(
    header=objects,
    alg=st.text(max_size=8),
    payload=objects,
    signature=st.from_regex(r"[A-Za-z0-9_-]{0,20}", fullmatch=True),
)
def test_a_jwt_reads_back_what_was_encoded(
    header: dict[str, Any], alg: str, payload: dict[str, Any], signature: str
) -> None:
    header = {**header, "alg": alg}
    token = read_jwt(f"{segment(header)}.{segment(payload)}.{signature}")
    assert token is not None
    assert token.header == header
    assert token.payload == payload
    assert token.signed == (alg.lower() != "none" and signature != "")


@given(header=objects, payload=st.one_of(json_values.filter(lambda v: not isinstance(v, dict)), objects))
def test_a_header_without_an_alg_string_is_no_jwt(header: dict[str, Any], payload: Any) -> None:
    header.pop("alg", None)
    assert read_jwt(f"{segment(header)}.{segment(payload)}.c2ln") is None
    assert read_jwt(f"{segment({**header, 'alg': 5})}.{segment(payload)}.c2ln") is None


def payload_of(text: str) -> dict[str, Any] | None:
    token = read_jwt(text)
    assert token is not None
    return token.payload


def test_a_payload_that_is_not_an_object_or_too_large_reads_as_none() -> None:
    header = segment({"alg": "ES256"})
    assert payload_of(f"{header}.{segment({'x': 'a'})}.c2ln") == {"x": "a"}
    assert payload_of(f"{header}.{segment([1])}.c2ln") is None
    assert payload_of(f"{header}.{segment({'x': 'a' * MAX_SEGMENT})}.c2ln") is None
    assert payload_of(f"{header}.%%%.c2ln") is None

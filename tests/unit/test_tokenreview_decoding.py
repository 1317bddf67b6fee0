"""The webhook's fast decoder (msgspec) never accepts a review the declared schema (pydantic) refuses, and
reads what it accepts the same way; what it refuses goes to the schema, whose 400 names the field."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kubegate.server.path_tokenreview import _FAST_REVIEW, MAX_AUDIENCES, TOKEN_REVIEW

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
specs = st.fixed_dictionaries(
    {},
    optional={
        "token": st.one_of(st.text(max_size=60), values),
        "audiences": st.one_of(st.none(), st.lists(st.text(max_size=30), max_size=3), values),
        "extra": values,
    },
)
reviews = st.fixed_dictionaries(
    {
        "apiVersion": st.sampled_from(["authentication.k8s.io/v1", "authentication.k8s.io/v1beta1", "v1", 1]),
        "kind": st.sampled_from(["TokenReview", "tokenreview", None]),
        "spec": st.one_of(specs, values),
    },
    optional={"metadata": values, "status": values},
)


def _slow(raw: bytes) -> tuple[str, str, list[str] | None] | None:
    try:
        review = TOKEN_REVIEW.validate_json(raw)
    except ValidationError:
        return None
    return review["apiVersion"], review["spec"].get("token", ""), review["spec"].get("audiences")


def _fast(raw: bytes) -> tuple[str, str, list[str] | None] | None:
    try:
        review = _FAST_REVIEW.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):  # any refusal goes to the slow path
        return None
    if review.spec.audiences is not None and len(review.spec.audiences) > MAX_AUDIENCES:
        return None
    return review.apiVersion, review.spec.token, review.spec.audiences


@settings(max_examples=400)
@given(review=reviews)
def test_the_fast_decoder_accepts_only_what_the_schema_accepts_and_reads_it_alike(review: dict[str, Any]) -> None:
    raw = json.dumps(review).encode()
    fast = _fast(raw)
    if fast is not None:
        assert fast == _slow(raw)


def test_a_review_from_kube_apiserver_takes_the_fast_path() -> None:
    raw = json.dumps(
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "metadata": {"creationTimestamp": None},
            "spec": {"token": "kg_abc", "audiences": ["https://kubernetes.default.svc"]},
            "status": {"user": {}},
        }
    ).encode()
    assert _fast(raw) == _slow(raw) == ("authentication.k8s.io/v1", "kg_abc", ["https://kubernetes.default.svc"])
    too_many = json.dumps(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"audiences": ["a"] * 65}}
    ).encode()
    assert _fast(too_many) is None
    assert _slow(too_many) is None

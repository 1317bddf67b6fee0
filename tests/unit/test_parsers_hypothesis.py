"""Every parser of data that crosses a process boundary, fed anything: it answers a valid value or its own
documented error, never another exception; where an encoder exists, what it writes reads back the same.

Revocation entries (a ConfigMap other replicas write), validation-config shards (Secrets the operator
writes), page tokens (a query parameter a client echoes back), durations and expiry times (resources and
requests), JWT segments (any bearer credential)."""

from __future__ import annotations

import base64
import gzip
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kubegate.methods.kubernetes.claims import claimed_account, unverified_payload
from kubegate.methods.kubernetes.review import _token_expiry
from kubegate.methods.token.http import CreateTokenRequest
from kubegate.resources.duration import DURATION_MAX_LENGTH, parse_duration
from kubegate.server.deny_list import merged
from kubegate.server.path_self import _from_query
from kubegate.server.path_tokens import MAX_LIMIT, _encode_page_token, _limit, _page_token
from kubegate.state import revocations
from kubegate.validation_config.model import TokenEntry
from kubegate.validation_config.shards import decode_shard, encode_shard
from kubegate.verify.classify import Classified, Kind, classify
from kubegate.verify.jwt_segments import MAX_SEGMENT, json_segment
from kubegate.web.errors import ApiProblem

T = TypeVar("T")
# Text as it reaches a process in JSON or HTTP: any Unicode scalar (no lone surrogates, which UTF-8 cannot
# carry).
texts = st.text(st.characters(blacklist_categories=("Cs",)))
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | texts
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=12
)
# Deeper than any JSON parser's recursion limit.
DEEPLY_NESTED = "[" * 100_000 + "]" * 100_000


def problem_or(call: Callable[[], T]) -> T | ApiProblem:
    """What `call` returns, or the ApiProblem (the HTTP error answer) it raises."""
    try:
        return call()
    except ApiProblem as problem:
        return problem


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# --- revocation entries ---------------------------------------------------------------------------------


# A ConfigMap's data maps strings to strings (the API server enforces it); the text is anything.
@example({revocations.DATA_KEY: '{"a": 1e999, "b": -1e999, "c": NaN}'})
@settings(deadline=None)  # a busy machine is not a failure
@given(st.dictionaries(texts, texts) | st.builds(lambda v: {revocations.DATA_KEY: json.dumps(v)}, json_values))
def test_any_revocation_configmap_data_parses_to_finite_or_infinite_floats_by_token_id(data: dict[str, Any]) -> None:
    entries = revocations.parse(data)
    assert all(isinstance(k, str) and isinstance(v, float) for k, v in entries.items())


@settings(deadline=None)  # a busy machine is not a failure
@given(texts)
def test_any_revocation_text_parses_without_raising(text: str) -> None:
    assert isinstance(revocations.parse({revocations.DATA_KEY: text}), dict)


def test_a_revocation_list_nested_past_the_parsers_recursion_limit_is_an_empty_list() -> None:
    assert revocations.parse({revocations.DATA_KEY: DEEPLY_NESTED}) == {}


def test_a_revocation_beyond_the_float_range_is_dropped_not_raised() -> None:
    assert revocations.parse({revocations.DATA_KEY: json.dumps({"a": 10**400, "b": 5})}) == {"b": 5.0}


@settings(deadline=None)  # a busy machine is not a failure
@given(
    st.dictionaries(texts, st.floats(allow_nan=False) | st.integers(min_value=-(2**53), max_value=2**53)),
    st.floats(allow_nan=False, allow_infinity=False),
)
def test_revocations_written_by_one_replica_read_back_the_same_on_another(
    entries: dict[str, float], now: float
) -> None:
    # `revoke` writes json.dumps of `merged`; a replica's reflector reads it back with `parse`.
    written = merged(entries, "id", 1.0, now)
    data = {revocations.DATA_KEY: json.dumps(written, sort_keys=True, separators=(",", ":"))}
    assert revocations.parse(data) == written


# --- validation-config shards -----------------------------------------------------------------------------

aware_times = st.datetimes(timezones=st.just(UTC))
entries = st.builds(
    TokenEntry,
    sha256=st.binary(min_size=32, max_size=32).map(bytes.hex),
    token_id=st.uuids().map(str),
    name=texts,
    namespace=texts,
    groups=st.lists(texts, max_size=3).map(tuple),
    metadata=st.dictionaries(texts, texts, max_size=3),
    created_at=aware_times,
    expires_at=st.none() | aware_times,
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entries, max_size=8))
def test_a_shard_the_operator_writes_reads_back_as_the_same_entries(written: list[TokenEntry]) -> None:
    read = decode_shard(encode_shard(written).data)
    order = sorted(written, key=lambda e: (e.namespace, e.name, e.token_id))
    assert read == order


def assert_entries_or_value_error(data: str) -> None:
    try:
        decoded = decode_shard(data)
    except ValueError:
        return
    assert all(isinstance(e, TokenEntry) for e in decoded)


@settings(deadline=None)  # a busy machine is not a failure
@given(texts)
def test_any_shard_text_decodes_to_entries_or_value_error(data: str) -> None:
    assert_entries_or_value_error(data)


@settings(deadline=None)  # a busy machine is not a failure
@given(json_values.map(lambda v: json.dumps(v).encode()) | st.binary() | st.just(DEEPLY_NESTED.encode()))
def test_any_gzipped_shard_payload_decodes_to_entries_or_value_error(raw: bytes) -> None:
    assert_entries_or_value_error(base64.b64encode(gzip.compress(raw, mtime=0)).decode("ascii"))


@settings(deadline=None)  # a busy machine is not a failure
@given(json_values)
def test_any_json_entry_validates_as_a_token_entry_or_value_error(value: Any) -> None:
    try:
        entry = TokenEntry.model_validate(value)
    except ValueError:
        return
    assert len(entry.sha256) == 64


# --- page tokens ------------------------------------------------------------------------------------------


@settings(deadline=None)  # a busy machine is not a failure
@given(texts.filter(bool))
def test_a_page_token_the_server_returns_reads_back_as_the_last_id_of_the_page(token_id: str) -> None:
    assert _page_token(_encode_page_token(token_id)) == token_id


@settings(deadline=None)  # a busy machine is not a failure
@given(texts)
def test_any_page_token_is_an_id_or_a_400_naming_the_parameter(raw: str) -> None:
    after = problem_or(lambda: _page_token(raw))
    if isinstance(after, ApiProblem):
        assert after.status == 400
        assert after.message.startswith("pageToken: ")
    else:
        assert after != "" or raw == ""


@settings(deadline=None)  # a busy machine is not a failure
@given(texts)
def test_any_limit_is_a_page_size_or_a_400(raw: str) -> None:
    limit = problem_or(lambda: _limit(raw))
    if isinstance(limit, ApiProblem):
        assert limit.status == 400
        assert limit.message.startswith("limit: ")
    else:
        assert 1 <= limit <= MAX_LIMIT


# --- durations and expiry times -----------------------------------------------------------------------------

duration_like = st.from_regex(r"\A(?:[0-9]{1,70}(?:\.[0-9]{1,12})?(?:ns|us|µs|ms|s|m|h)){1,3}\Z")


@settings(deadline=None)  # a busy machine is not a failure
@given(texts | duration_like)
def test_any_duration_text_is_a_positive_timedelta_or_value_error(text: str) -> None:
    try:
        parsed = parse_duration(text)
    except ValueError:
        return
    assert parsed > timedelta(0)
    assert len(text) <= DURATION_MAX_LENGTH


def test_a_duration_below_a_microsecond_is_still_positive() -> None:
    assert parse_duration("1ns") == timedelta(microseconds=1)


def test_a_duration_beyond_what_a_timedelta_holds_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration("9" * 60 + "h")


def _query(raw: str) -> Any:
    return SimpleNamespace(query={"expiresAt": raw})


@settings(deadline=None)  # a busy machine is not a failure
@given(texts | st.datetimes().map(datetime.isoformat) | aware_times.map(datetime.isoformat))
def test_any_expires_at_query_is_an_aware_time_or_a_400(raw: str) -> None:
    body = problem_or(lambda: _from_query(_query(raw)))
    if isinstance(body, ApiProblem):
        assert body.status == 400
        assert body.message.startswith("expiresAt: ")
    elif raw:
        assert body is not None
        assert body.expires_at is not None
        assert body.expires_at.tzinfo is not None
    else:
        assert body is None


@settings(deadline=None)  # a busy machine is not a failure
@given(aware_times)
def test_an_rfc3339_expires_at_query_reads_back_as_the_same_instant(at: datetime) -> None:
    body = _from_query(_query(at.isoformat().replace("+00:00", "Z")))
    assert body is not None
    assert body.expires_at == at


@settings(deadline=None)  # a busy machine is not a failure
@given(json_values | st.builds(lambda v: {"expiresAt": v}, json_values | texts))
def test_any_create_token_body_validates_or_raises_value_error(value: Any) -> None:
    try:
        body = CreateTokenRequest.model_validate(value)
    except ValueError:
        return
    assert body.expires_at is None or body.expires_at.tzinfo is not None


# --- JWT segments ----------------------------------------------------------------------------------------------

segments = texts | json_values.map(lambda v: b64url(json.dumps(v).encode())) | st.binary().map(b64url)


@settings(deadline=None)  # a busy machine is not a failure
@given(texts)
def test_any_text_is_a_json_object_segment_or_none(segment: str) -> None:
    decoded = json_segment(segment)
    assert decoded is None or isinstance(decoded, dict)


@settings(deadline=None)  # a busy machine is not a failure
@given(st.dictionaries(texts, json_values))
def test_a_json_object_segment_reads_back_as_the_same_object(obj: dict[str, Any]) -> None:
    encoded = b64url(json.dumps(obj).encode())
    if len(encoded) > MAX_SEGMENT:
        assert json_segment(encoded) is None  # longer than any header or payload kubegate accepts
    else:
        # NaN is not equal to itself: compare the JSON text the decoded object writes.
        assert json.dumps(json_segment(encoded)) == json.dumps(obj)


def test_a_segment_nested_past_the_parsers_recursion_limit_is_not_a_json_object() -> None:
    assert json_segment(b64url(DEEPLY_NESTED.encode())[:8000]) is None


@settings(deadline=None)  # a busy machine is not a failure
@given(segments, segments, segments | st.just("sig"), texts)
def test_any_credential_classifies_as_exactly_one_kind(header: str, payload: str, signature: str, issuer: str) -> None:
    credential = f"{header}.{payload}.{signature}"
    for candidate in (credential, header):
        classified = classify(candidate, client_issuer=issuer, oidc_issuers={issuer + "/oidc"})
        assert isinstance(classified, Classified)
        if classified.kind is Kind.STATIC:
            assert classified.issuer is None
        if classified.kind in (Kind.CLIENT, Kind.OIDC):
            assert classified.issuer in (issuer, issuer + "/oidc")


@settings(deadline=None)  # a busy machine is not a failure
@given(segments, segments, segments)
def test_any_credential_has_a_payload_account_and_expiry_or_none(header: str, payload: str, signature: str) -> None:
    token = f"{header}.{payload}.{signature}"
    claims = unverified_payload(token)
    assert claims is None or isinstance(claims, dict)
    account = claimed_account(token)
    assert account is None or all(isinstance(part, str) for part in account)
    expiry = _token_expiry(token)
    assert expiry is None or isinstance(expiry, float)


@settings(deadline=None)  # a busy machine is not a failure
@example(10**400)
@given(json_values)
def test_any_exp_claim_is_an_expiry_or_none(exp: Any) -> None:
    token = ".".join((b64url(b'{"alg":"RS256"}'), b64url(json.dumps({"exp": exp}).encode()), "sig"))
    expiry = _token_expiry(token)
    if not isinstance(exp, int | float):
        assert expiry is None
    elif isinstance(exp, float) or abs(exp) < 2**53:
        assert expiry == exp or math.isnan(exp)
    else:
        assert expiry is None or isinstance(expiry, float)

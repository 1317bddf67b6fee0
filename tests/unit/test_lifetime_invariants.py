"""Bounds that keep long-running processes honest: what is remembered is forgotten when it may be, and
nothing outlives what it depends on. Each test here fails if its bound is dropped from the code."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from hypothesis import given
from hypothesis import strategies as st
from server_harness import FakeConfigMaps

from kubegate.client_tokens import keys
from kubegate.kube import WatchEvent
from kubegate.methods.kubernetes.bindings import Binding
from kubegate.methods.kubernetes.exchange import Exchange, expiry_for
from kubegate.methods.kubernetes.review import ReviewedAccount, TokenReviewer
from kubegate.server import deny_list
from kubegate.server.metrics import Metrics
from kubegate.state import revocations

T0 = datetime(2026, 6, 1, tzinfo=UTC)
times = st.floats(min_value=0, max_value=1e9, allow_nan=False)
durations = st.integers(min_value=1, max_value=10**7)


# --- the revocation deny-list forgets what has expired anyway -----------------------------------------


@given(
    entries=st.dictionaries(st.uuids().map(str), times, max_size=30),
    token_id=st.uuids().map(str),
    until=times,
    now=times,
)
def test_a_revocation_write_drops_every_entry_whose_token_has_expired(
    entries: dict[str, float], token_id: str, until: float, now: float
) -> None:
    kept = deny_list.merged(entries, token_id, until, now)
    assert all(v > now for k, v in kept.items() if k != token_id)
    assert {k for k, v in entries.items() if v > now} <= set(kept)
    assert kept[token_id] >= until


def test_the_deny_list_stops_denying_when_the_token_would_have_expired() -> None:
    now = [1000.0]
    denied = revocations.Revocations(clock=lambda: now[0])
    event_data = {revocations.DATA_KEY: json.dumps({"a": 1500.0})}
    denied.apply(WatchEvent(type="MODIFIED", object={"metadata": {"name": revocations.NAME}, "data": event_data}))
    assert denied.contains("a")
    now[0] = 1500.0
    assert not denied.contains("a")


async def test_revoking_writes_the_list_without_the_entries_that_expired_before_now() -> None:
    # What the replicas store, not only what the pure merge returns: the write must pass the real clock.
    configmaps = FakeConfigMaps()
    denied = revocations.Revocations(clock=lambda: 1000.0)
    writer = deny_list.DenyListWriter(configmaps, "ns", denied, clock=lambda: 1000.0)  # type: ignore[arg-type]
    await writer.revoke("old", until=999.0)
    await writer.revoke("live", until=2000.0)
    await writer.revoke("new", until=3000.0)
    assert configmaps.object is not None
    assert revocations.parse(configmaps.object["data"]) == {"live": 2000.0, "new": 3000.0}
    assert len(denied) == 2


# --- the TokenReview cache is bounded -------------------------------------------------------------------


class _Answers:
    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"status": {"authenticated": True, "user": {"username": "system:serviceaccount:apps:web"}}}


async def test_the_review_cache_holds_at_most_max_cached_answers_and_forgets_the_oldest() -> None:
    reviewer = TokenReviewer(_Answers(), audiences=[], cache_seconds=60, max_cached=8)  # type: ignore[arg-type]
    tokens = [f"eyJhbGciOiJSUzI1NiJ9.e30.{i}" for i in range(20)]
    for token in tokens:
        assert isinstance(await reviewer.review(token), ReviewedAccount)
    assert reviewer.api_calls == 20
    for token in tokens[-8:]:
        await reviewer.review(token)
    assert reviewer.api_calls == 20  # the newest eight are still cached
    await reviewer.review(tokens[0])
    assert reviewer.api_calls == 21  # the oldest was forgotten: memory stays bounded


# --- a client token never outlives the publication of its key -------------------------------------------


@given(
    now=st.integers(min_value=10**9, max_value=2 * 10**9),
    max_lifetime=durations,
    keys_kept=durations,
    sa_expiry=st.one_of(st.none(), durations),
)
def test_a_client_token_expires_before_its_key_stops_being_published(
    now: int, max_lifetime: int, keys_kept: int, sa_expiry: int | None
) -> None:
    account = ReviewedAccount(
        namespace="apps",
        name="web",
        uid="u",
        pod_name=None,
        pod_uid=None,
        expires_at=None if sa_expiry is None else now + sa_expiry,
    )
    expires = expiry_for(account, now=now, max_lifetime=max_lifetime, keys_kept=keys_kept)
    # The key that signs now may retire at once and stays published `keys_kept` after that.
    keyset = keys.initial(T0, max_token_lifetime=timedelta(seconds=keys_kept))
    signed_at = T0 + timedelta(seconds=1)
    retired = keys.rotate(keyset, signed_at)
    until = signed_at + timedelta(seconds=expires - now)
    published = keys.prune(retired, until - timedelta(microseconds=1))
    assert expires <= now + keys_kept
    assert expires <= now + max_lifetime
    assert keyset.active().kid in {k.kid for k in published.keys}


async def test_the_exchange_caps_a_client_token_at_how_long_the_operator_keeps_its_key() -> None:
    # The pure cap above is only as good as the exchange's call: it must pass the published key lifetime.
    now = 1_900_000_000.0
    keyset = keys.initial(T0, max_token_lifetime=timedelta(minutes=10))

    async def review(token: str) -> ReviewedAccount:
        return ReviewedAccount(namespace="apps", name="web", uid="u", pod_name=None, pod_uid=None, expires_at=None)

    async def no_labels(namespace: str) -> dict[str, str]:
        return {}

    exchange = Exchange(
        review=review,
        namespace_labels=no_labels,
        bindings=[Binding(namespaces=("apps",), service_accounts=("web",), groups=("web",))],
        keys=lambda: keyset,
        issuer="https://kubegate.test",
        audience="kubegate",
        max_lifetime=24 * 3600,
        clock=lambda: now,
    )
    sa_claims = {"sub": "system:serviceaccount:apps:web"}
    sa_token = jwt.encode(sa_claims, "not-the-cluster-key-but-long-enough", algorithm="HS256")
    exchanged = await exchange.exchange(sa_token)
    assert exchanged.authentication.expires_at == datetime.fromtimestamp(now + 600, UTC)
    assert jwt.decode(exchanged.client_token, options={"verify_signature": False})["exp"] == now + 600


# --- metric label values are escaped ---------------------------------------------------------------------

_SAMPLE = re.compile(r'^kubegate_http_requests_total\{route="((?:[^"\\\n]|\\[\\"n])*)",method="GET",code="200"\} 1$')


@given(route=st.text(max_size=40))
def test_any_route_label_renders_as_one_valid_exposition_line(route: str) -> None:
    metrics = Metrics()
    metrics.count_request(route, "GET", 200)
    samples = [line for line in metrics.render().split("\n") if line.startswith("kubegate_http_requests_total{")]
    assert len(samples) == 1
    match = _SAMPLE.match(samples[0])
    assert match is not None, samples[0]
    unescaped = re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), match.group(1))
    assert unescaped == route

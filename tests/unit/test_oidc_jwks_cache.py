"""The providers' keys: which JWKs are usable for which algorithms, and when the server reads a provider's
JWKS itself (an unknown kid: once per cooldown, concurrent tokens sharing one read)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt_provider_fakes import JWKS_URI, T0, Clock, JwksEndpoint, ec_key, ed_key, jwks, provider, rsa_key, unreachable

from kubegate.verify.errors import Unauthenticated, VerifierUnavailable
from kubegate.verify.oidc.keys import ProviderKeyCache, select_keys

ALL = ("RS256", "PS256", "ES256", "ES384", "EdDSA")


def test_each_key_serves_only_the_algorithms_it_fits() -> None:
    rsa1, ec1, ed1 = rsa_key(), ec_key(), ed_key()
    document = {"keys": [rsa1.jwk(alg=None), ec1.jwk(alg=None), ed1.jwk(alg=None)]}
    keys = select_keys(document, ALL)
    assert keys["rsa-1"].algorithms == {"RS256", "PS256"}
    assert keys["ec-1"].algorithms == {"ES256"}
    assert keys["ed-1"].algorithms == {"EdDSA"}
    # The provider's allow-list narrows it, and so does the key's own alg.
    assert select_keys(document, ("RS256",)).keys() == {"rsa-1"}
    assert select_keys(jwks(rsa1), ALL)["rsa-1"].algorithms == {"RS256"}


@pytest.mark.parametrize(
    "jwk",
    [
        {**rsa_key().jwk(), "use": "enc"},
        {**rsa_key().jwk(), "key_ops": ["encrypt"]},
        {**rsa_key().jwk(), "alg": "RS512"},  # its alg is not allowed
        {**rsa_key().jwk(), "alg": "HS256"},
        {**rsa_key().jwk(), "kid": ""},
        {key: value for key, value in rsa_key().jwk().items() if key != "kid"},
        {**rsa_key().jwk(), "n": 12345},
        {**rsa_key().jwk(), "n": "not base64!"},
        {**ec_key().jwk(), "crv": "P-384"},  # the point is P-256's
        {**ec_key().jwk(), "x": "AAAA"},
        {**ec_key().jwk(), "alg": "ES384", "crv": "P-384"},
        {"kty": "oct", "kid": "k", "alg": "RS256"},
        {"kty": "RSA", "kid": "k"},
    ],
    ids=[
        "use-enc",
        "key-ops",
        "alg-not-allowed",
        "alg-hmac",
        "empty-kid",
        "no-kid",
        "n-not-string",
        "n-not-base64",
        "wrong-curve",
        "short-point",
        "p384-not-a-point",
        "symmetric",
        "no-material",
    ],
)
def test_unusable_keys_are_passed_over(jwk: dict[str, Any]) -> None:
    assert select_keys({"keys": [jwk, ec_key("other").jwk()]}, ("RS256", "ES256")).keys() == {"other"}


def test_small_rsa_keys_are_passed_over() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    jwk = {**RSAAlgorithm.to_jwk(small, as_dict=True), "kid": "small"}
    assert select_keys({"keys": [jwk]}, ("RS256",)) == {}


def test_a_p384_key_serves_es384() -> None:
    public = ec.generate_private_key(ec.SECP384R1()).public_key()
    jwk = {**ECAlgorithm.to_jwk(public, as_dict=True), "kid": "p384"}
    assert select_keys({"keys": [jwk]}, ("ES256", "ES384"))["p384"].algorithms == {"ES384"}


def test_a_kid_shared_by_two_keys_is_unusable() -> None:
    document = {"keys": [rsa_key("same").jwk(), ec_key("same").jwk(), ec_key("other").jwk()]}
    assert select_keys(document, ("RS256", "ES256")).keys() == {"other"}


def test_a_jwks_with_a_private_member_is_refused_whole() -> None:
    leaked = {**ec_key().jwk(), "d": "c2VjcmV0"}
    with pytest.raises(ValueError, match="private"):
        select_keys({"keys": [leaked, rsa_key().jwk()]}, ("RS256", "ES256"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
real = [rsa_key().jwk(), ec_key().jwk(), ed_key().jwk()]
jwk_members = st.sampled_from(real).flatmap(
    lambda jwk: st.dictionaries(st.sampled_from([*jwk, "d", "use", "key_ops"]), json_values, max_size=3).map(
        lambda changes: {**jwk, **changes}
    )
)


documents = st.dictionaries(st.sampled_from(["keys", "other"]), st.lists(jwk_members | json_values, max_size=4))


@settings(deadline=None)  # a busy machine is not a failure
@given(documents | st.dictionaries(st.text(max_size=8), json_values, max_size=3))
def test_any_jwks_gives_keys_or_a_value_error(document: dict[str, Any]) -> None:
    try:
        keys = select_keys(document, ALL)
    except ValueError:
        return
    assert all(key.algorithms <= set(ALL) for key in keys.values())


def cache(endpoint: JwksEndpoint, clock: Clock, cooldown: float = 30.0) -> ProviderKeyCache:
    return ProviderKeyCache(http=endpoint, refetch_cooldown=cooldown, clock=clock)


async def test_published_keys_need_no_read() -> None:
    endpoint = JwksEndpoint()
    keys = cache(endpoint, Clock())
    config = provider(rsa_key())
    assert (await keys.key(config, "rsa-1")).kid == "rsa-1"
    assert keys.keys(config) is keys.keys(config)
    assert endpoint.calls == []


async def test_an_unknown_kid_reads_once_per_cooldown_then_is_refused() -> None:
    clock = Clock()
    endpoint = JwksEndpoint(documents={JWKS_URI: jwks(rsa_key())})
    keys = cache(endpoint, clock)
    config = provider(rsa_key())
    with pytest.raises(Unauthenticated):
        await keys.key(config, "made-up")
    assert endpoint.calls == [JWKS_URI]
    clock.now += 29
    with pytest.raises(Unauthenticated):
        await keys.key(config, "another-made-up")
    assert len(endpoint.calls) == 1
    clock.now += 1
    with pytest.raises(Unauthenticated):
        await keys.key(config, "another-made-up")
    assert len(endpoint.calls) == 2


async def test_concurrent_unknown_kids_share_one_read() -> None:
    rotated = ec_key("rotated")
    endpoint = JwksEndpoint(documents={JWKS_URI: jwks(rotated)}, gate=asyncio.Event())
    keys = cache(endpoint, Clock())
    config = provider(rsa_key())
    waiting = [asyncio.ensure_future(keys.key(config, "rotated")) for _ in range(20)]
    waiting.append(asyncio.ensure_future(keys.key(config, "made-up")))
    await asyncio.sleep(0)
    endpoint.gate.set()  # type: ignore[union-attr]
    found = await asyncio.gather(*waiting, return_exceptions=True)
    assert endpoint.calls == [JWKS_URI]
    assert all(key.kid == "rotated" for key in found[:20])  # type: ignore[union-attr]
    assert isinstance(found[20], Unauthenticated)


async def test_a_caller_that_goes_away_does_not_cancel_the_shared_read() -> None:
    endpoint = JwksEndpoint(documents={JWKS_URI: jwks(ec_key("rotated"))}, gate=asyncio.Event())
    keys = cache(endpoint, Clock())
    config = provider(rsa_key())
    first = asyncio.ensure_future(keys.key(config, "rotated"))
    second = asyncio.ensure_future(keys.key(config, "rotated"))
    await asyncio.sleep(0)
    first.cancel()
    endpoint.gate.set()  # type: ignore[union-attr]
    assert (await second).kid == "rotated"
    assert endpoint.calls == [JWKS_URI]


async def test_a_rotated_key_is_followed_and_the_old_one_dropped() -> None:
    clock = Clock()
    old, new = rsa_key("old"), ec_key("new")
    endpoint = JwksEndpoint(documents={JWKS_URI: jwks(new)})
    keys = cache(endpoint, clock)
    config = provider(old)
    assert (await keys.key(config, "new")).kid == "new"
    assert keys.keys(config).keys() == {"new"}
    # The server's read is newer than the operator's: it stays until the operator publishes a newer one.
    republished = provider(old, fetched_at=T0 - 300)
    assert keys.keys(republished).keys() == {"new"}
    newer = provider(new, rsa_key("newest", 1), fetched_at=T0 + 60)
    assert keys.keys(newer).keys() == {"new", "newest"}
    assert endpoint.calls == [JWKS_URI]


async def test_a_provider_that_cannot_be_reached_gives_503_for_unknown_kids_only() -> None:
    clock = Clock()
    endpoint = JwksEndpoint(failure=unreachable())
    keys = cache(endpoint, clock)
    config = provider(rsa_key())
    with pytest.raises(VerifierUnavailable):
        await keys.key(config, "rotated")
    # Within the cooldown the answer still depends on the provider: 503 again, without another call.
    clock.now += 10
    with pytest.raises(VerifierUnavailable):
        await keys.key(config, "rotated")
    assert len(endpoint.calls) == 1
    # Known keys do not need the provider.
    assert (await keys.key(config, "rsa-1")).kid == "rsa-1"
    clock.now += 30
    endpoint.failure = None
    endpoint.documents[JWKS_URI] = jwks(rsa_key())
    with pytest.raises(Unauthenticated):
        await keys.key(config, "rotated")
    assert len(endpoint.calls) == 2


@pytest.mark.parametrize(
    "document",
    [None, {"keys": "none"}, {"keys": [{**ec_key("rotated").jwk(), "d": "c2VjcmV0"}]}],
    ids=["404", "not-a-jwks", "private-member"],
)
async def test_a_useless_answer_refuses_the_kid_and_keeps_the_keys(document: dict[str, Any] | None) -> None:
    endpoint = JwksEndpoint(documents={} if document is None else {JWKS_URI: document})
    keys = cache(endpoint, Clock())
    config = provider(rsa_key())
    with pytest.raises(Unauthenticated):
        await keys.key(config, "rotated")
    assert keys.keys(config).keys() == {"rsa-1"}
    assert endpoint.calls == [JWKS_URI]


async def test_reads_of_two_providers_are_independent() -> None:
    other_uri = "https://other.example/keys"
    endpoint = JwksEndpoint(documents={JWKS_URI: jwks(rsa_key()), other_uri: jwks(ec_key("theirs"))})
    keys = cache(endpoint, Clock())
    dex, other = provider(rsa_key()), provider(issuer="https://other.example")
    with pytest.raises(Unauthenticated):
        await keys.key(dex, "theirs")
    assert (await keys.key(other, "theirs")).kid == "theirs"
    assert endpoint.calls == [JWKS_URI, other_uri]

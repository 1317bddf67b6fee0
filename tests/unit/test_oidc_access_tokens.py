"""JWT access tokens of OIDC providers: what is accepted, each bad input of issue 13 refused (with the calls it
may cost the provider counted), and the cache of verified tokens."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt_provider_fakes import (
    AUDIENCE,
    ISSUER,
    JWKS_URI,
    T0,
    Clock,
    FakeProviders,
    JwksEndpoint,
    SigningKey,
    b64url,
    claims,
    ec_key,
    jwks,
    provider,
    rsa_key,
    segment,
    unreachable,
)

from kubegate.contracts.authentication import Authentication, Method
from kubegate.state.static_tokens import StaticTokenIndex
from kubegate.validation_config.providers import ProviderConfig, RequirementRule
from kubegate.verify.engine import Verifier
from kubegate.verify.errors import RequirementFailed, Unauthenticated, VerifierUnavailable
from kubegate.verify.jwt_segments import MAX_SEGMENT
from kubegate.verify.oidc.access_tokens import OidcAccessTokenVerifier
from kubegate.verify.oidc.keys import ProviderKeyCache

RSA, EC = rsa_key(), ec_key()


class World:
    """One verifier over published providers, a JWKS endpoint and a clock, as a server holds them."""

    def __init__(self, *configs: ProviderConfig, cache_size: int = 100, cache_seconds: float = 300.0) -> None:
        self.clock = Clock()
        self.endpoint = JwksEndpoint(documents={JWKS_URI: jwks(RSA, EC)})
        self.providers = FakeProviders(*(configs or (provider(RSA, EC),)))
        self.keys = ProviderKeyCache(http=self.endpoint, refetch_cooldown=30.0, clock=self.clock)
        self.verifier = OidcAccessTokenVerifier(
            providers=self.providers,
            keys=self.keys,
            leeway=30.0,
            cache_seconds=cache_seconds,
            cache_size=cache_size,
            clock=self.clock,
        )

    async def verify(self, token: str, issuer: str | None = ISSUER) -> Any:
        return await self.verifier.verify(token, issuer=issuer)

    async def refused(self, token: str, issuer: str | None = ISSUER) -> str:
        with pytest.raises(Unauthenticated) as info:
            await self.verify(token, issuer)
        return info.value.reason


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt", "application/at+jwt", "AT+JWT", "application/JWT"])
@pytest.mark.parametrize("key", [RSA, EC], ids=["RS256", "ES256"])
async def test_a_valid_access_token_verifies(key: SigningKey, typ: str | None) -> None:
    world = World()
    authentication = await world.verify(key.sign(claims(), typ=typ))
    assert authentication.method is Method.OIDC
    assert authentication.identity.username == claims()["sub"]
    assert authentication.identity.groups == ("devs",)
    assert authentication.identity.claims["email"] == "alice@example.com"
    assert authentication.metadata["io.kubegate.auth.oidc.provider"] == "dex"
    assert authentication.expires_at.timestamp() == T0 + 600
    assert world.endpoint.calls == []


async def test_the_verifier_serves_the_engine() -> None:
    world = World()
    engine = Verifier(static_tokens=StaticTokenIndex(), oidc=world.verifier)
    assert (await engine.verify(RSA.sign(claims()))).identity.username == claims()["sub"]
    world.providers.configs.clear()
    with pytest.raises(Unauthenticated):
        await engine.verify(EC.sign(claims()))
    assert world.endpoint.calls == []


def _tamper(token: str, part: int, **changes: Any) -> str:
    parts = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(parts[part] + "=="))
    decoded.update(changes)
    parts[part] = segment({key: value for key, value in decoded.items() if value is not None})
    return ".".join(parts)


def _hs256_with_the_public_key() -> str:
    # Algorithm confusion: HMAC keyed with the provider's public key, which anyone can read.
    public = RSA.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{segment({'alg': 'HS256', 'kid': RSA.kid})}.{segment(claims())}"
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (_tamper(RSA.sign(claims()), 1, groups=["admins"]), "unknown"),
        (_tamper(RSA.sign(claims()), 1, sub="bob"), "unknown"),
        (f"{segment({'alg': 'none', 'kid': RSA.kid})}.{segment(claims())}.", "unsupported"),
        (_tamper(RSA.sign(claims()), 0, alg="none"), "unsupported"),
        (_hs256_with_the_public_key(), "unsupported"),
        (SigningKey(RSA.kid, RSA.private, "PS256").sign(claims()), "unsupported"),  # not on the allow-list
        (_tamper(EC.sign(claims()), 0, alg="RS256"), "unknown"),  # the kid names an EC key
        (RSA.sign(claims(), typ="kubegate-client+jwt"), "unsupported"),
        (RSA.sign(claims(), typ="dpop+jwt"), "unsupported"),
        (RSA.sign(claims(), typ=7), "unsupported"),
        (RSA.sign(claims(), kid=None), "malformed"),
        (RSA.sign(claims(), crit=["exp"]), "unsupported"),
        (RSA.sign(claims(), cty="JWT"), "unsupported"),
        (RSA.sign(claims(exp=int(T0) - 31)), "expired"),
        (RSA.sign(claims(exp=None)), "malformed"),
        (RSA.sign(claims(exp="soon")), "malformed"),
        (RSA.sign(claims(exp=True)), "malformed"),
        (RSA.sign(claims(exp=10**30)), "malformed"),
        (RSA.sign(claims(nbf=int(T0) + 31)), "unknown"),
        (RSA.sign(claims(iat=int(T0) + 31)), "unknown"),
        (RSA.sign(claims(iat="yesterday")), "malformed"),
        (RSA.sign(claims(aud="someone-else")), "unknown"),
        (RSA.sign(claims(aud=["someone-else", "another"])), "unknown"),
        (RSA.sign(claims(aud=None)), "unknown"),
        (RSA.sign(claims(aud={"kubegate": True})), "unknown"),
        (RSA.sign(claims(iss="https://evil.example")), "unknown"),
        (RSA.sign(claims(iss=None)), "unknown"),
        (RSA.sign(claims(padding="x" * MAX_SEGMENT)), "malformed"),
        (RSA.sign(claims()) + "A" * 4096, "malformed"),
        (RSA.sign(claims())[:-3], "unknown"),
        (RSA.sign(claims()).rpartition(".")[0] + ".A", "unknown"),
        ("e30.e30.e30", "malformed"),
    ],
    ids=[
        "tampered-groups",
        "tampered-sub",
        "alg-none-unsigned",
        "alg-none-header",
        "hs256-public-key",
        "alg-not-allowed",
        "alg-of-another-key-type",
        "client-token-typ",
        "other-typ",
        "typ-not-string",
        "no-kid",
        "crit",
        "nested",
        "expired",
        "no-exp",
        "exp-not-number",
        "exp-bool",
        "exp-huge",
        "nbf-future",
        "iat-future",
        "iat-not-number",
        "wrong-aud",
        "wrong-aud-list",
        "no-aud",
        "aud-object",
        "wrong-iss",
        "no-iss",
        "oversized-payload",
        "oversized-signature",
        "truncated-signature",
        "signature-not-base64url",
        "garbage",
    ],
)
async def test_bad_input_is_refused_without_any_call(token: str, reason: str) -> None:
    world = World()
    assert await world.refused(token) == reason
    assert world.endpoint.calls == []


@pytest.mark.parametrize("header", ["jku", "x5u"])
async def test_keys_named_by_the_token_are_never_fetched(header: str) -> None:
    world = World()
    elsewhere = "https://attacker.example/keys"
    world.endpoint.documents[elsewhere] = jwks(ec_key("theirs"))
    assert await world.refused(ec_key("theirs").sign(claims(), **{header: elsewhere})) == "unsupported"
    assert await world.refused(RSA.sign(claims(), **{header: elsewhere})) == "unsupported"
    assert world.endpoint.calls == []


async def test_embedded_keys_are_refused() -> None:
    world = World()
    attacker = ec_key("attacker")
    assert await world.refused(attacker.sign(claims(), jwk=attacker.jwk())) == "unsupported"
    assert await world.refused(attacker.sign(claims(), x5c=["MIIB"])) == "unsupported"
    assert world.endpoint.calls == []


async def test_the_leeway_allows_small_clock_skew() -> None:
    world = World()
    await world.verify(RSA.sign(claims(exp=int(T0) - 29, iat=int(T0) - 100)))
    await world.verify(RSA.sign(claims(nbf=int(T0) + 29, iat=int(T0) + 29)))


async def test_audience_may_be_a_list_or_unchecked() -> None:
    world = World()
    await world.verify(RSA.sign(claims(aud=["other", AUDIENCE])))
    anyone = World(provider(RSA, audiences=None))
    await anyone.verify(RSA.sign(claims(aud=None)))
    await anyone.verify(RSA.sign(claims(aud="whoever")))


async def test_an_unknown_kid_costs_one_read_per_cooldown_then_is_refused() -> None:
    world = World()
    made_up = ec_key("made-up")
    assert await world.refused(made_up.sign(claims())) == "unknown"
    assert world.endpoint.calls == [JWKS_URI]
    assert await world.refused(ec_key("another").sign(claims())) == "unknown"
    assert world.endpoint.calls == [JWKS_URI]
    world.clock.now += 30
    assert await world.refused(made_up.sign(claims())) == "unknown"
    assert world.endpoint.calls == [JWKS_URI, JWKS_URI]


async def test_concurrent_tokens_with_unknown_kids_share_one_read() -> None:
    world = World()
    rotated = ec_key("rotated")
    world.endpoint.documents[JWKS_URI] = jwks(RSA, rotated)
    world.endpoint.gate = asyncio.Event()
    tokens = [rotated.sign(claims(sub=f"user-{n}")) for n in range(10)] + [ec_key("x").sign(claims())]
    waiting = [asyncio.ensure_future(world.verify(token)) for token in tokens]
    await asyncio.sleep(0)
    world.endpoint.gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    names = [result.identity.username if isinstance(result, Authentication) else result for result in results]
    assert names[:10] == [f"user-{n}" for n in range(10)]
    assert isinstance(results[10], Unauthenticated)
    assert world.endpoint.calls == [JWKS_URI]


async def test_a_rotated_key_is_followed() -> None:
    world = World()
    rotated = ec_key("rotated")
    world.endpoint.documents[JWKS_URI] = jwks(rotated)
    await world.verify(rotated.sign(claims()))
    assert world.endpoint.calls == [JWKS_URI]
    # The key withdrawn by the provider no longer verifies new tokens, without another read.
    assert await world.refused(RSA.sign(claims(sub="new"))) == "unknown"
    assert world.endpoint.calls == [JWKS_URI]


async def test_a_kid_of_another_providers_key_is_refused() -> None:
    theirs = ec_key("theirs")
    other = provider(theirs, issuer="https://other.example")
    world = World(provider(RSA), other)
    world.endpoint.documents["https://other.example/keys"] = jwks(theirs)
    assert await world.refused(theirs.sign(claims())) == "unknown"
    # One read of this provider's own JWKS, never of the other provider's.
    assert world.endpoint.calls == [JWKS_URI]
    await world.verify(theirs.sign(claims(iss="https://other.example")), "https://other.example")


async def test_an_untrusted_issuer_is_refused() -> None:
    world = World()
    assert await world.refused(RSA.sign(claims()), "https://evil.example") == "untrusted_issuer"
    assert await world.refused(RSA.sign(claims()), None) == "untrusted_issuer"
    assert world.endpoint.calls == []


async def test_a_provider_that_is_down_still_verifies_tokens_of_known_keys() -> None:
    world = World()
    world.endpoint.failure = unreachable()
    await world.verify(RSA.sign(claims()))
    await world.verify(EC.sign(claims()))
    assert world.endpoint.calls == []
    # A key nobody knows depends on the provider, which cannot say: retry later, not "invalid".
    with pytest.raises(VerifierUnavailable):
        await world.verify(ec_key("rotated").sign(claims()))
    assert world.endpoint.calls == [JWKS_URI]


async def test_a_seen_token_is_answered_from_the_cache() -> None:
    world = World()
    token = RSA.sign(claims())
    first = await world.verify(token)
    world.endpoint.failure = unreachable()
    assert await world.verify(token) is first
    # Until cache_seconds have passed: then verified again, with the same outcome.
    world.clock.now += 301
    second = await world.verify(token)
    assert second is not first
    assert second.identity == first.identity


async def test_a_seen_token_is_found_without_classification() -> None:
    world = World()
    token = RSA.sign(claims())
    assert world.verifier.seen(token) is None
    first = await world.verify(token)
    assert world.verifier.seen(token) is first
    world.providers.configs.clear()
    assert world.verifier.seen(token) is None
    assert await world.refused(token) == "untrusted_issuer"


async def test_a_cached_token_expires_with_its_exp() -> None:
    world = World()
    token = RSA.sign(claims(exp=int(T0) + 60))
    await world.verify(token)
    world.clock.now += 60 + 29
    await world.verify(token)
    world.clock.now += 1
    assert await world.refused(token) == "expired"


async def test_a_cached_token_is_verified_again_when_its_key_is_withdrawn() -> None:
    world = World()
    token = RSA.sign(claims())
    first = await world.verify(token)
    world.providers.publish(provider(EC, fetched_at=T0))
    world.endpoint.documents[JWKS_URI] = jwks(EC)
    assert await world.refused(token) == "unknown"
    assert world.endpoint.calls == [JWKS_URI]
    # Republished with the key back: verified again, as a new authentication.
    world.providers.publish(provider(RSA, EC, fetched_at=T0 + 1))
    assert await world.verify(token) is not first


async def test_a_cached_token_is_verified_again_when_the_provider_withdrew_its_key() -> None:
    world = World()
    token = RSA.sign(claims())
    await world.verify(token)
    rotated = ec_key("rotated")
    world.endpoint.documents[JWKS_URI] = jwks(rotated)
    await world.verify(rotated.sign(claims()))
    # The read for the rotated key showed the old key gone: its tokens end now, not when the cache says.
    assert await world.refused(token) == "unknown"
    assert world.endpoint.calls == [JWKS_URI]


async def test_a_cached_token_follows_a_changed_audience() -> None:
    world = World()
    token = RSA.sign(claims())
    await world.verify(token)
    world.providers.publish(provider(RSA, EC, audiences=("another",)))
    assert await world.refused(token) == "unknown"


async def test_the_cache_is_bounded() -> None:
    world = World(cache_size=2)
    tokens = [RSA.sign(claims(sub=f"user-{n}")) for n in range(3)]
    first = [await world.verify(token) for token in tokens]
    assert await world.verify(tokens[2]) is first[2]
    assert await world.verify(tokens[1]) is first[1]
    assert await world.verify(tokens[0]) is not first[0]


async def test_no_cache_when_cache_seconds_is_zero() -> None:
    world = World(cache_seconds=0)
    token = RSA.sign(claims())
    assert await world.verify(token) is not await world.verify(token)


async def test_requirements_are_checked_on_every_request() -> None:
    admins = RequirementRule(claim="groups", values=("admins",))
    world = World(provider(RSA, requirements=(admins,)))
    token = RSA.sign(claims())
    for _ in range(2):
        with pytest.raises(RequirementFailed) as info:
            await world.verify(token)
        assert "admins" in info.value.message
    allowed = RSA.sign(claims(groups=["devs", "admins"]))
    assert await world.verify(allowed) is await world.verify(allowed)
    # The requirement dropped: the same token now passes.
    world.providers.publish(provider(RSA))
    await world.verify(token)


async def test_a_reserved_username_is_refused() -> None:
    world = World()
    assert await world.refused(RSA.sign(claims(sub="system:admin"))) == "forbidden_name"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
header_members = st.fixed_dictionaries(
    {"alg": st.sampled_from(["RS256", "ES256", "PS256", "HS256", "none", "EdDSA"]) | json_values},
    optional={
        "kid": st.sampled_from([RSA.kid, EC.kid, "other"]) | json_values,
        "typ": st.sampled_from(["JWT", "at+jwt", "x"]) | json_values,
        "jku": st.just("https://attacker.example/keys"),
    },
)
claim_members = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.sampled_from([ISSUER, "https://evil.example"]) | json_values,
        "exp": st.sampled_from([int(T0) + 60, int(T0) - 60]) | json_values,
        "nbf": json_values,
        "iat": json_values,
        "aud": st.sampled_from([AUDIENCE, [AUDIENCE]]) | json_values,
        "sub": st.text(max_size=20) | json_values,
        "groups": json_values,
    },
)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=header_members, payload=claim_members, signed=st.booleans(), signature=st.text(max_size=40))
def test_any_token_gives_an_authentication_or_a_documented_refusal(
    header: dict[str, Any], payload: dict[str, Any], signed: bool, signature: str
) -> None:
    world = World()
    token = RSA.sign_raw(header, payload) if signed else f"{segment(header)}.{segment(payload)}.{signature}"
    with contextlib.suppress(Unauthenticated, VerifierUnavailable, RequirementFailed):
        asyncio.run(world.verify(token))
    assert set(world.endpoint.calls) <= {JWKS_URI}
    assert len(world.endpoint.calls) <= 1

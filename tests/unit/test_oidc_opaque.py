"""Opaque OIDC access tokens: introspection and userinfo against a fake provider client that counts calls."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubegate.contracts.authentication import Authentication, Method
from kubegate.contracts.token_format import generate_token, hash_token
from kubegate.state.static_tokens import StaticTokenIndex
from kubegate.validation_config.model import TokenEntry
from kubegate.validation_config.providers import ProviderConfig, RequirementRule
from kubegate.verify.engine import Verifier
from kubegate.verify.errors import RequirementFailed, Unauthenticated, VerifierUnavailable
from kubegate.verify.oidc.opaque import OpaqueOidcVerifier
from kubegate.verify.oidc.provider_http import ProviderError, ProviderUnreachable

NOW = 1_900_000_000.0
TOKEN = "dex-opaque-token-1"
Answer = Callable[[str], dict[str, Any]]
"""What a fake endpoint answers for a token: a JSON object, or it raises as ProviderHttp would."""


def provider(name: str, mode: str = "introspection", **changes: Any) -> ProviderConfig:
    issuer = f"https://{name}.example"
    config = ProviderConfig(
        name=name,
        issuer=issuer,
        jwks_uri=f"{issuer}/keys",
        algorithms=("RS256",),
        introspection=mode == "introspection",
        userinfo=mode == "userinfo",
        introspection_endpoint=f"{issuer}/introspect",
        userinfo_endpoint=f"{issuer}/userinfo",
        client_id="kubegate",
        client_secret="s3cret",
        ca_bundle=f"PEM of {name}",
    )
    return config.model_copy(update=changes)


class Directory:
    def __init__(self, *providers: ProviderConfig) -> None:
        self.providers = {p.name: p for p in providers}

    def all(self) -> Iterable[ProviderConfig]:
        return list(self.providers.values())

    def by_name(self, name: str) -> ProviderConfig | None:
        return self.providers.get(name)

    def by_issuer(self, issuer: str) -> ProviderConfig | None:
        return next((p for p in self.providers.values() if p.issuer == issuer), None)


class FakeHttp:
    """Answers per URL; records every call; `hold[url]` makes calls to that URL wait until set."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.calls: list[dict[str, Any]] = []
        self.hold: dict[str, asyncio.Event] = {}
        self.cancelled: list[str] = []

    async def get_json(self, url: str, *, ca_bundle: str | None, bearer: str | None = None) -> dict[str, Any]:
        self.calls.append({"method": "GET", "url": url, "ca_bundle": ca_bundle, "bearer": bearer})
        assert bearer is not None
        return await self._answer(url, bearer)

    async def post_form(
        self,
        url: str,
        form: Mapping[str, str],
        *,
        ca_bundle: str | None,
        basic_auth: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        self.calls.append(
            {"method": "POST", "url": url, "form": dict(form), "ca_bundle": ca_bundle, "basic_auth": basic_auth}
        )
        return await self._answer(url, form["token"])

    async def _answer(self, url: str, token: str) -> dict[str, Any]:
        if url in self.hold:
            try:
                await self.hold[url].wait()
            except asyncio.CancelledError:
                self.cancelled.append(url)
                raise
        return self.answers[url](token)

    def urls(self) -> list[str]:
        return [call["url"] for call in self.calls]


def active(**claims: Any) -> Answer:
    answer = {"active": True, "sub": "alice", "exp": NOW + 3600, "iss": None, **claims}
    return lambda token: {k: v for k, v in answer.items() if v is not None}


def raising(error: Exception) -> Answer:
    def answer(token: str) -> dict[str, Any]:
        raise error

    return answer


def inactive(token: str) -> dict[str, Any]:
    return {"active": False}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def setup(
    *providers: ProviderConfig, cache_seconds: float = 300, cache_size: int = 100, accept_refresh_tokens: bool = False
) -> tuple[OpaqueOidcVerifier, FakeHttp, Directory, Clock]:
    http, directory, clock = FakeHttp(), Directory(*providers), Clock()
    verifier = OpaqueOidcVerifier(
        providers=directory,
        http=http,
        cache_seconds=cache_seconds,
        cache_size=cache_size,
        accept_refresh_tokens=accept_refresh_tokens,
        clock=clock,
    )
    return verifier, http, directory, clock


async def refused(verifier: OpaqueOidcVerifier, token: str = TOKEN, **kwargs: Any) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token, **kwargs)
    return caught.value


# Introspection


async def test_an_active_token_is_vouched_for_with_client_authentication() -> None:
    dex = provider("dex")
    verifier, http, _, _ = setup(dex)
    http.answers[dex.introspection_endpoint or ""] = active(
        email="alice@example.org", groups=["ops"], iss=dex.issuer, aud="kubegate"
    )
    authentication = await verifier.verify(TOKEN)
    assert authentication.method is Method.OIDC
    assert authentication.identity.username == "alice"
    assert authentication.identity.groups == ("ops",)
    assert authentication.metadata["io.kubegate.auth.oidc.provider"] == "dex"
    assert authentication.expires_at == datetime.fromtimestamp(NOW + 3600, UTC)
    assert http.calls == [
        {
            "method": "POST",
            "url": "https://dex.example/introspect",
            "form": {"token": TOKEN, "token_type_hint": "access_token"},
            "ca_bundle": "PEM of dex",
            "basic_auth": ("kubegate", "s3cret"),
        }
    ]


async def test_without_a_client_secret_introspection_is_not_authenticated() -> None:
    dex = provider("dex", client_secret=None)
    verifier, http, _, _ = setup(dex)
    http.answers["https://dex.example/introspect"] = active()
    await verifier.verify(TOKEN)
    assert http.calls[0]["basic_auth"] is None


@pytest.mark.parametrize(
    "answer",
    [
        {"active": False, "sub": "alice"},
        {"active": "true", "sub": "alice"},
        {"active": 1, "sub": "alice"},
        {"sub": "alice"},
        {"active": True, "sub": "alice", "exp": NOW},  # expired now, by our clock
        {"active": True, "sub": "alice", "exp": NOW - 10},
        {"active": True, "sub": "alice", "exp": str(NOW + 10)},
        {"active": True, "sub": "alice", "exp": True},
        {"active": True, "sub": "alice", "iss": "https://other.example"},
        {"active": True, "sub": "alice", "token_use": "refresh_token"},
        {"active": True},  # no username
        {"active": True, "sub": "system:admin"},  # a reserved name
    ],
)
async def test_answers_that_do_not_vouch_are_refused(answer: dict[str, Any]) -> None:
    verifier, http, _, _ = setup(provider("dex"))
    http.answers["https://dex.example/introspect"] = lambda token: answer
    await refused(verifier)


@pytest.mark.parametrize(
    ("answer", "vouched"),
    [
        ({"aud": "kubegate"}, True),
        ({"aud": ["other", "kubegate"]}, True),
        ({"aud": "other"}, False),
        ({"aud": ["other"]}, False),
        ({"aud": [1, None]}, False),
        ({"client_id": "kubegate"}, True),  # no aud: the client the token was issued to
        ({"client_id": "other"}, False),
        ({}, False),  # says nothing about its audience
        ({"aud": "other", "client_id": "kubegate"}, False),  # aud, when present, decides
    ],
)
async def test_audiences_are_checked_when_the_provider_lists_them(answer: dict[str, Any], vouched: bool) -> None:
    verifier, http, _, _ = setup(provider("dex", audiences=("kubegate", "cli")))
    http.answers["https://dex.example/introspect"] = active(**answer)
    if vouched:
        assert (await verifier.verify(TOKEN)).identity.username == "alice"
    else:
        await refused(verifier)


async def test_any_audience_is_accepted_when_the_provider_lists_none() -> None:
    verifier, http, _, _ = setup(provider("dex"))
    http.answers["https://dex.example/introspect"] = active(aud="whoever")
    assert (await verifier.verify(TOKEN)).identity.username == "alice"


@pytest.mark.parametrize(
    "error", [ProviderError("answered 401", status=401), ProviderError("not JSON", status=200), RuntimeError("bug")]
)
async def test_an_introspection_endpoint_that_answers_uselessly_leaves_the_question_open(error: Exception) -> None:
    verifier, http, _, _ = setup(provider("dex"))
    http.answers["https://dex.example/introspect"] = raising(error)
    with pytest.raises(VerifierUnavailable, match="dex"):
        await verifier.verify(TOKEN)


async def test_requirements_of_the_provider_give_a_403_naming_them() -> None:
    rule = RequirementRule(
        claim="eduperson_entitlement",
        values=("urn:geant:example.org:group:physics#sso.example.org",),
        match="one",
        entitlements=True,
    )
    verifier, http, _, _ = setup(provider("dex", requirements=(rule,)))
    held = "urn:geant:example.org:group:physics:higgs#sso.example.org"
    http.answers["https://dex.example/introspect"] = active(eduperson_entitlement=[held])
    assert (await verifier.verify(TOKEN)).identity.username == "alice"
    http.answers["https://dex.example/introspect"] = active(eduperson_entitlement=["urn:geant:x:group:y#z"])
    with pytest.raises(RequirementFailed) as failed:
        await verifier.verify("another-token")
    assert failed.value.detail["requirement"] == "entitlement"
    assert failed.value.detail["claim"] == "eduperson_entitlement"
    # A failed requirement is not remembered: the next try asks again.
    with pytest.raises(RequirementFailed):
        await verifier.verify("another-token")
    assert len(http.calls) == 3


def dex_refresh_token_answer(token: str) -> dict[str, Any]:
    """What Dex v2.45 answers for a refresh token (its access tokens are JWTs and never come here)."""
    return {
        "active": True,
        "client_id": "kubegate",
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 86_400,
        "sub": "CgVhbGljZRIFbG9jYWw",
        "username": "alice",
        "aud": "kubegate",
        "iss": "https://dex.example",
        "ext": {
            "email": "alice@example.org",
            "email_verified": True,
            "groups": ["ops", "urn:geant:example.org:group:physics#sso.example.org"],
            "name": "Alice",
            "preferred_username": "alice",
        },
        "token_type": "Bearer",
        "token_use": "refresh_token",
    }


async def test_a_refresh_token_is_no_bearer_credential_unless_allowed() -> None:
    verifier, http, _, _ = setup(provider("dex", audiences=("kubegate",)))
    http.answers["https://dex.example/introspect"] = dex_refresh_token_answer
    await refused(verifier)
    allowing, http, _, _ = setup(provider("dex", audiences=("kubegate",)), accept_refresh_tokens=True)
    http.answers["https://dex.example/introspect"] = dex_refresh_token_answer
    authentication = await allowing.verify(TOKEN)
    assert authentication.identity.username == "CgVhbGljZRIFbG9jYWw"


async def test_the_claims_dex_puts_in_ext_count_but_cannot_replace_what_the_answer_states() -> None:
    rule = RequirementRule(
        claim="groups",
        values=("urn:geant:example.org:group:physics#sso.example.org",),
        match="one",
        entitlements=True,
    )
    verifier, http, _, _ = setup(provider("dex", requirements=(rule,)), accept_refresh_tokens=True)

    def answer(token: str) -> dict[str, Any]:
        stated = dex_refresh_token_answer(token)
        stated["ext"] |= {"sub": "mallory", "exp": NOW + 10**9, "iss": "https://evil.example", "active": True}
        return stated

    http.answers["https://dex.example/introspect"] = answer
    authentication = await verifier.verify(TOKEN)
    assert authentication.identity.username == "CgVhbGljZRIFbG9jYWw"
    assert authentication.identity.groups == ("ops", "urn:geant:example.org:group:physics#sso.example.org")
    assert authentication.metadata["io.kubegate.auth.oidc.email"] == "alice@example.org"
    assert authentication.metadata["io.kubegate.auth.oidc.name"] == "Alice"
    assert authentication.identity.claims["iss"] == "https://dex.example"
    assert authentication.expires_at == datetime.fromtimestamp(NOW + 86_400, UTC)
    assert "ext" not in authentication.identity.claims
    # Without the top-level member, ext cannot supply it either.
    http.answers["https://dex.example/introspect"] = lambda token: {"active": True, "ext": {"sub": "mallory"}}
    await refused(verifier, "another-token")


# Userinfo


async def test_userinfo_is_asked_with_the_token_as_bearer_when_only_it_is_configured() -> None:
    dex = provider("dex", "userinfo")
    verifier, http, _, _ = setup(dex)
    http.answers["https://dex.example/userinfo"] = lambda token: {"sub": "alice", "email": "a@example.org"}
    authentication = await verifier.verify(TOKEN)
    assert authentication.identity.username == "alice"
    assert authentication.expires_at is None
    assert http.calls == [
        {"method": "GET", "url": "https://dex.example/userinfo", "ca_bundle": "PEM of dex", "bearer": TOKEN}
    ]


async def test_introspection_is_preferred_when_both_are_configured() -> None:
    verifier, http, _, _ = setup(provider("dex", userinfo=True))
    http.answers["https://dex.example/introspect"] = active()
    await verifier.verify(TOKEN)
    assert http.urls() == ["https://dex.example/introspect"]


@pytest.mark.parametrize("status", [400, 401, 403])
async def test_userinfo_refusing_the_token_means_not_this_providers(status: int) -> None:
    verifier, http, _, _ = setup(provider("dex", "userinfo"))
    http.answers["https://dex.example/userinfo"] = raising(ProviderError("no", status=status))
    await refused(verifier)


@pytest.mark.parametrize(
    "error",
    [ProviderError("answered 404", status=404), ProviderError("redirect", status=302), ProviderUnreachable("x")],
)
async def test_userinfo_answering_otherwise_leaves_the_question_open(error: Exception) -> None:
    verifier, http, _, _ = setup(provider("dex", "userinfo"))
    http.answers["https://dex.example/userinfo"] = raising(error)
    with pytest.raises(VerifierUnavailable):
        await verifier.verify(TOKEN)


@pytest.mark.parametrize("answer", [{}, {"sub": ""}, {"sub": 7}, {"sub": "alice", "iss": "https://other.example"}])
async def test_userinfo_without_a_subject_or_from_another_issuer_does_not_vouch(answer: dict[str, Any]) -> None:
    verifier, http, _, _ = setup(provider("dex", "userinfo"))
    http.answers["https://dex.example/userinfo"] = lambda token: answer
    await refused(verifier)


async def test_userinfo_cannot_prove_an_audience_so_listed_audiences_need_aud_in_the_answer() -> None:
    verifier, http, _, _ = setup(provider("dex", "userinfo", audiences=("kubegate",)))
    http.answers["https://dex.example/userinfo"] = lambda token: {"sub": "alice", "client_id": "kubegate"}
    await refused(verifier)
    http.answers["https://dex.example/userinfo"] = lambda token: {"sub": "alice", "aud": "kubegate"}
    assert (await verifier.verify(TOKEN)).identity.username == "alice"


# Which providers are asked


async def test_providers_that_did_not_opt_in_are_never_asked() -> None:
    verifier, http, _, _ = setup(
        provider("jwt-only", "none"), provider("no-endpoint", introspection_endpoint=None), provider("dex")
    )
    http.answers["https://dex.example/introspect"] = inactive
    await refused(verifier)
    assert http.urls() == ["https://dex.example/introspect"]


async def test_no_opted_in_provider_means_unauthenticated_without_a_call() -> None:
    verifier, http, _, _ = setup(provider("jwt-only", "none"))
    await refused(verifier)
    assert http.calls == []


@pytest.mark.parametrize("hint", ["b", "https://b.example"])
async def test_a_hint_by_name_or_issuer_narrows_to_that_provider(hint: str) -> None:
    verifier, http, _, _ = setup(provider("a"), provider("b"), provider("c", "userinfo"))
    http.answers["https://b.example/introspect"] = active()
    authentication = await verifier.verify(TOKEN, provider_hint=hint)
    assert authentication.metadata["io.kubegate.auth.oidc.provider"] == "b"
    assert http.urls() == ["https://b.example/introspect"]


@pytest.mark.parametrize("hint", ["nobody", "https://nobody.example", "jwt-only", "https://a.example/"])
async def test_a_hint_naming_no_opted_in_provider_is_refused_without_asking_anyone(hint: str) -> None:
    verifier, http, _, _ = setup(provider("a"), provider("jwt-only", "none"))
    http.answers["https://a.example/introspect"] = active()
    await refused(verifier, provider_hint=hint)
    assert http.calls == []


async def test_providers_are_asked_concurrently_and_the_first_that_vouches_wins() -> None:
    verifier, http, _, _ = setup(provider("slow"), provider("fast", "userinfo"))
    http.hold["https://slow.example/introspect"] = asyncio.Event()  # never answers
    http.answers["https://fast.example/userinfo"] = lambda token: {"sub": "bob"}
    authentication = await asyncio.wait_for(verifier.verify(TOKEN), timeout=5)
    assert authentication.identity.username == "bob"
    assert sorted(http.urls()) == ["https://fast.example/userinfo", "https://slow.example/introspect"]
    await asyncio.sleep(0)
    assert http.cancelled == ["https://slow.example/introspect"]


async def test_a_provider_that_is_down_turns_a_no_into_503_never_a_false_401() -> None:
    verifier, http, _, _ = setup(provider("down"), provider("no"))
    http.answers["https://down.example/introspect"] = raising(ProviderUnreachable("timed out"))
    http.answers["https://no.example/introspect"] = inactive
    with pytest.raises(VerifierUnavailable, match="down"):
        await verifier.verify(TOKEN)


async def test_all_providers_down_is_503() -> None:
    verifier, http, _, _ = setup(provider("a"), provider("b", "userinfo"))
    http.answers["https://a.example/introspect"] = raising(ProviderUnreachable("refused"))
    http.answers["https://b.example/userinfo"] = raising(ProviderUnreachable("answered 502"))
    with pytest.raises(VerifierUnavailable, match="a, b"):
        await verifier.verify(TOKEN)


async def test_a_provider_that_vouches_wins_over_one_that_is_down() -> None:
    verifier, http, _, _ = setup(provider("down"), provider("yes"))
    http.answers["https://down.example/introspect"] = raising(ProviderUnreachable("timed out"))
    http.answers["https://yes.example/introspect"] = active()
    assert (await verifier.verify(TOKEN)).metadata["io.kubegate.auth.oidc.provider"] == "yes"


async def test_all_providers_saying_no_is_unauthenticated() -> None:
    verifier, http, _, _ = setup(provider("a"), provider("b", "userinfo"))
    http.answers["https://a.example/introspect"] = inactive
    http.answers["https://b.example/userinfo"] = raising(ProviderError("no", status=401))
    assert (await refused(verifier)).reason == "unknown"
    assert len(http.calls) == 2


# The cache


async def test_a_cached_token_costs_no_call() -> None:
    verifier, http, _, _ = setup(provider("dex"))
    http.answers["https://dex.example/introspect"] = active()
    first = await verifier.verify(TOKEN)
    assert await verifier.verify(TOKEN) is first
    assert await verifier.verify(TOKEN, provider_hint="dex") is first
    assert len(http.calls) == 1


async def test_the_cache_keeps_a_token_no_longer_than_its_expiry() -> None:
    verifier, http, _, clock = setup(provider("dex"), cache_seconds=300)
    http.answers["https://dex.example/introspect"] = active(exp=NOW + 60)
    await verifier.verify(TOKEN)
    clock.now = NOW + 59
    await verifier.verify(TOKEN)
    assert len(http.calls) == 1
    clock.now = NOW + 60
    await refused(verifier)  # asked again; the provider's answer is expired by now
    assert len(http.calls) == 2


async def test_the_cache_keeps_a_token_no_longer_than_the_maximum() -> None:
    verifier, http, _, clock = setup(provider("dex"), cache_seconds=10)
    http.answers["https://dex.example/introspect"] = active(exp=NOW + 3600)
    await verifier.verify(TOKEN)
    clock.now = NOW + 9.9
    await verifier.verify(TOKEN)
    assert len(http.calls) == 1
    clock.now = NOW + 10
    await verifier.verify(TOKEN)
    assert len(http.calls) == 2


async def test_the_cache_is_bounded_and_forgets_the_oldest_first() -> None:
    verifier, http, _, _ = setup(provider("dex"), cache_size=2)
    http.answers["https://dex.example/introspect"] = active()
    for token in ("t1", "t2", "t3"):
        await verifier.verify(token)
    assert len(http.calls) == 3
    await verifier.verify("t3")
    await verifier.verify("t2")
    assert len(http.calls) == 3
    await verifier.verify("t1")
    assert len(http.calls) == 4


@pytest.mark.parametrize(("seconds", "size"), [(0, 100), (300, 0)])
async def test_a_cache_of_no_time_or_no_size_remembers_nothing(seconds: float, size: int) -> None:
    verifier, http, _, _ = setup(provider("dex"), cache_seconds=seconds, cache_size=size)
    http.answers["https://dex.example/introspect"] = active()
    await verifier.verify(TOKEN)
    await verifier.verify(TOKEN)
    assert len(http.calls) == 2


async def test_refusals_and_failures_are_not_cached() -> None:
    verifier, http, _, _ = setup(provider("dex"))
    http.answers["https://dex.example/introspect"] = inactive
    await refused(verifier)
    await refused(verifier)
    http.answers["https://dex.example/introspect"] = raising(ProviderUnreachable("down"))
    for _ in range(2):
        with pytest.raises(VerifierUnavailable):
            await verifier.verify(TOKEN)
    http.answers["https://dex.example/introspect"] = active()
    await verifier.verify(TOKEN)
    assert len(http.calls) == 5


async def test_the_cache_holds_no_plaintext_token() -> None:
    verifier, http, _, _ = setup(provider("dex"))
    http.answers["https://dex.example/introspect"] = active()
    await verifier.verify(TOKEN)
    assert TOKEN not in repr(verifier._cache)
    assert all(isinstance(key, bytes) and len(key) == 32 for key in verifier._cache)


async def test_a_removed_provider_takes_its_cached_tokens_with_it() -> None:
    verifier, http, directory, _ = setup(provider("dex"), provider("other"))
    http.answers["https://dex.example/introspect"] = active()
    http.answers["https://other.example/introspect"] = inactive
    await verifier.verify(TOKEN, provider_hint="dex")
    del directory.providers["dex"]
    await refused(verifier)
    assert http.urls() == ["https://dex.example/introspect", "https://other.example/introspect"]


async def test_a_changed_provider_config_is_asked_again_under_its_new_rules() -> None:
    verifier, http, directory, _ = setup(provider("dex"))
    http.answers["https://dex.example/introspect"] = active(groups=["ops"])
    await verifier.verify(TOKEN)
    directory.providers["dex"] = provider("dex", requirements=(RequirementRule(claim="groups", values=("admins",)),))
    with pytest.raises(RequirementFailed):
        await verifier.verify(TOKEN)
    assert len(http.calls) == 2


async def test_an_equal_config_published_again_keeps_the_cache() -> None:
    verifier, http, directory, _ = setup(provider("dex"))
    http.answers["https://dex.example/introspect"] = active()
    await verifier.verify(TOKEN)
    directory.providers["dex"] = provider("dex")
    await verifier.verify(TOKEN)
    assert len(http.calls) == 1


async def test_a_token_cached_from_one_provider_is_asked_of_another_one_hinted() -> None:
    verifier, http, _, _ = setup(provider("a"), provider("b"))
    http.answers["https://a.example/introspect"] = active()
    http.answers["https://b.example/introspect"] = inactive
    await verifier.verify(TOKEN, provider_hint="a")
    await refused(verifier, provider_hint="b")
    assert http.urls() == ["https://a.example/introspect", "https://b.example/introspect"]


async def test_concurrent_lookups_of_one_new_token_make_one_call() -> None:
    verifier, http, _, _ = setup(provider("dex"))
    http.hold["https://dex.example/introspect"] = gate = asyncio.Event()
    http.answers["https://dex.example/introspect"] = active()
    waiting = [asyncio.ensure_future(verifier.verify(TOKEN)) for _ in range(20)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(*waiting)
    assert len(http.calls) == 1
    assert all(result is results[0] for result in results)


async def test_concurrent_lookups_share_a_refusal_too_and_the_next_one_asks_again() -> None:
    verifier, http, _, _ = setup(provider("dex"))
    http.hold["https://dex.example/introspect"] = gate = asyncio.Event()
    http.answers["https://dex.example/introspect"] = raising(ProviderUnreachable("down"))
    waiting = [asyncio.ensure_future(verifier.verify(TOKEN)) for _ in range(5)]
    await asyncio.sleep(0.01)
    gate.set()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(outcome, VerifierUnavailable) for outcome in outcomes)
    assert len(http.calls) == 1
    http.answers["https://dex.example/introspect"] = active()
    await verifier.verify(TOKEN)
    assert len(http.calls) == 2


async def test_a_caller_that_goes_away_does_not_cancel_the_lookup_others_wait_for() -> None:
    verifier, http, _, _ = setup(provider("dex"))
    http.hold["https://dex.example/introspect"] = gate = asyncio.Event()
    http.answers["https://dex.example/introspect"] = active()
    impatient = asyncio.ensure_future(verifier.verify(TOKEN))
    patient = asyncio.ensure_future(verifier.verify(TOKEN))
    await asyncio.sleep(0.01)
    impatient.cancel()
    await asyncio.sleep(0.01)
    gate.set()
    assert (await patient).identity.username == "alice"
    assert http.cancelled == []
    assert len(http.calls) == 1


# Through the engine: kubegate's own credentials never reach a provider


def static_index(*tokens: str) -> StaticTokenIndex:
    index = StaticTokenIndex()
    created = datetime(2030, 1, 1, tzinfo=UTC) - timedelta(days=1)
    entries = [
        TokenEntry(
            sha256=hash_token(token),
            token_id=str(uuid.uuid4()),
            name=f"app{i}",
            namespace="team",
            groups=(),
            created_at=created,
            expires_at=None,
        )
        for i, token in enumerate(tokens)
    ]
    index.replace_source("s", "1", entries)
    return index


async def test_kubegate_static_tokens_never_reach_a_provider_through_the_engine() -> None:
    opaque, http, _, _ = setup(provider("dex"), provider("corp", "userinfo"))
    http.answers["https://dex.example/introspect"] = active()
    http.answers["https://corp.example/userinfo"] = lambda token: {"sub": "carol"}
    known_plain = "a-known-static-token-without-prefix"
    known_generated = generate_token("kg_")
    verifier = Verifier(
        static_tokens=static_index(known_plain, known_generated), opaque=opaque, static_token_prefix="kg_"
    )
    assert (await verifier.verify(known_plain)).method is Method.TOKEN
    assert (await verifier.verify(known_generated, provider_hint="dex")).method is Method.TOKEN
    for unknown in ("kg_mistyped", generate_token("kg_"), generate_token("other_"), generate_token()):
        with pytest.raises(Unauthenticated):
            await verifier.verify(unknown, provider_hint="dex")
    assert http.calls == []
    # What is none of kubegate's goes to the providers.
    assert (await verifier.verify(TOKEN, provider_hint="dex")).method is Method.OIDC
    assert http.urls() == ["https://dex.example/introspect"]


# Garbage in: only Unauthenticated or VerifierUnavailable out

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
claim_names = st.sampled_from(
    ["active", "sub", "exp", "iss", "aud", "client_id", "token_use", "groups", "email", "name", "iat", "ext"]
)
answers = st.dictionaries(claim_names | st.text(max_size=5), json_values | st.dictionaries(claim_names, json_values))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    token=st.text(max_size=60),
    hint=st.none() | st.text(max_size=10) | st.just("dex"),
    answer=answers,
    userinfo=answers,
    audiences=st.none() | st.just(("kubegate",)),
    refresh=st.booleans(),
)
def test_garbage_never_raises_anything_but_401(
    *, token: str, hint: str | None, answer: dict[str, Any], userinfo: dict[str, Any], audiences: Any, refresh: bool
) -> None:
    async def scenario() -> Authentication | None:
        verifier, http, _, _ = setup(
            provider("dex", audiences=audiences), provider("corp", "userinfo"), accept_refresh_tokens=refresh
        )
        http.answers["https://dex.example/introspect"] = lambda t: answer
        http.answers["https://corp.example/userinfo"] = lambda t: userinfo
        try:
            return await verifier.verify(token, provider_hint=hint)
        except Unauthenticated:
            return None

    # Providers that answer (whatever they say) never make a 503: that is kept for providers that cannot.
    authentication = asyncio.run(scenario())
    if authentication is not None:
        assert answer.get("active") is True or isinstance(userinfo.get("sub"), str)

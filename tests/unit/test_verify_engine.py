"""The engine: static tokens from memory, expiry at verification time, seams for the other kinds."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Container
from datetime import UTC, datetime, timedelta

import pytest
from fake_request import authentication

from kubegate.contracts.token_format import generate_token, hash_token
from kubegate.validation_config.model import TokenEntry
from kubegate.verify import (
    CLIENT_TOKEN_TYP,
    Authentication,
    Method,
    StaticTokenIndex,
    Unauthenticated,
    Verifier,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def jwt(header: dict[str, str], payload: dict[str, str]) -> str:
    def seg(value: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{seg(header)}.{seg(payload)}.c2ln"


def index_with(token: str, *, expires_at: datetime | None) -> StaticTokenIndex:
    index = StaticTokenIndex()
    entry = TokenEntry(
        sha256=hash_token(token),
        token_id=str(uuid.uuid4()),
        name="app",
        namespace="team",
        groups=("deployers",),
        created_at=NOW - timedelta(days=1),
        expires_at=expires_at,
    )
    index.replace_source("s", "1", [entry])
    return index


def at(moment: datetime) -> float:
    return moment.timestamp()


async def test_known_static_token_is_authenticated() -> None:
    verifier = Verifier(static_tokens=index_with("secret", expires_at=None), clock=lambda: at(NOW))
    authentication = await verifier.verify("secret")
    assert authentication.method is Method.TOKEN
    assert authentication.identity.username == "statictoken:team:app"
    assert authentication.identity.groups == ("deployers",)


async def test_unknown_static_token_is_refused() -> None:
    verifier = Verifier(static_tokens=index_with("secret", expires_at=None))
    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify("secret2")
    assert refused.value.reason == "unknown"


async def test_expiry_is_checked_when_verifying_even_while_the_config_lists_the_token() -> None:
    expires = NOW + timedelta(minutes=1)
    index = index_with("secret", expires_at=expires)
    now = [at(expires - timedelta(seconds=1))]
    verifier = Verifier(static_tokens=index, clock=lambda: now[0])
    assert (await verifier.verify("secret")).expires_at == expires
    now[0] = at(expires)
    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify("secret")
    assert refused.value.reason == "expired"


class RecordingOidc:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    @property
    def issuers(self) -> Container[str]:
        return {"https://dex.example.com"}

    def seen(self, token: str) -> Authentication | None:
        return None

    async def verify(self, token: str, *, issuer: str | None, unverified: object = None) -> Authentication:
        self.calls.append((token, issuer))
        return authentication(username="someone", method=Method.OIDC)


class RecordingClientTokens:
    def __init__(self) -> None:
        self.calls: list[str] = []

    @property
    def issuer(self) -> str:
        return "https://kubegate.example.com"

    async def verify(self, token: str, *, provider_hint: str | None = None) -> Authentication:
        self.calls.append(token)
        return authentication(username="someone", method=Method.KUBERNETES)


async def test_untrusted_issuer_never_reaches_a_provider() -> None:
    oidc = RecordingOidc()
    verifier = Verifier(static_tokens=StaticTokenIndex(), oidc=oidc)
    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify(jwt({"alg": "RS256"}, {"iss": "https://evil.example.com"}))
    assert refused.value.reason == "untrusted_issuer"
    assert oidc.calls == []


async def test_provider_token_goes_to_the_oidc_verifier_with_its_issuer() -> None:
    oidc = RecordingOidc()
    verifier = Verifier(static_tokens=StaticTokenIndex(), oidc=oidc)
    token = jwt({"alg": "RS256"}, {"iss": "https://dex.example.com"})
    assert (await verifier.verify(token)).method is Method.OIDC
    assert oidc.calls == [(token, "https://dex.example.com")]


async def test_client_token_goes_to_the_client_token_verifier_only() -> None:
    clients, oidc = RecordingClientTokens(), RecordingOidc()
    verifier = Verifier(static_tokens=StaticTokenIndex(), client_tokens=clients, oidc=oidc)
    token = jwt({"alg": "ES256", "typ": CLIENT_TOKEN_TYP}, {"iss": "https://kubegate.example.com"})
    assert (await verifier.verify(token)).method is Method.KUBERNETES
    assert clients.calls == [token]
    assert oidc.calls == []


async def test_without_a_client_token_verifier_client_tokens_are_refused() -> None:
    verifier = Verifier(static_tokens=StaticTokenIndex())
    token = jwt({"alg": "ES256", "typ": CLIENT_TOKEN_TYP}, {"iss": "https://kubegate.example.com"})
    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


async def test_a_static_token_is_never_sent_to_a_provider() -> None:
    oidc = RecordingOidc()
    verifier = Verifier(static_tokens=StaticTokenIndex(), oidc=oidc)
    with pytest.raises(Unauthenticated):
        await verifier.verify("kg_unknown-opaque-token")
    assert oidc.calls == []


class RecordingOpaque:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def verify(self, token: str, *, provider_hint: str | None = None) -> Authentication:
        self.calls.append(token)
        return authentication(username="someone", method=Method.OIDC)


GENERATED = generate_token("kg_")


@pytest.mark.parametrize(
    ("credential", "prefix"),
    [
        (GENERATED, ""),  # the shape of a generated token, with any prefix
        (generate_token(), ""),  # ... or none
        ("kg_brought-token", "kg_"),  # the configured prefix, on a token of any shape
    ],
    ids=["generated-prefixed", "generated-unprefixed", "configured-prefix"],
)
def test_an_unknown_kubegate_token_is_refused_at_once_and_never_reaches_the_opaque_verifier(
    credential: str, prefix: str
) -> None:
    opaque = RecordingOpaque()
    verifier = Verifier(static_tokens=index_with("secret", expires_at=None), opaque=opaque, static_token_prefix=prefix)
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify_now(credential)  # no await needed to refuse it
    assert refused.value.reason == "unknown"
    assert opaque.calls == []


async def test_an_unknown_opaque_credential_goes_to_the_opaque_verifier() -> None:
    opaque = RecordingOpaque()
    verifier = Verifier(static_tokens=index_with("secret", expires_at=None), opaque=opaque, static_token_prefix="kg_")
    assert verifier.verify_now("provider-opaque-token") is None  # to be awaited
    assert (await verifier.verify("provider-opaque-token")).method is Method.OIDC
    assert (await verifier.verify("brought.with.dots")).method is Method.OIDC
    assert opaque.calls == ["provider-opaque-token", "brought.with.dots"]


async def test_known_and_expired_static_tokens_never_reach_the_opaque_verifier() -> None:
    opaque = RecordingOpaque()
    verifier = Verifier(
        static_tokens=index_with("secret", expires_at=NOW), opaque=opaque, clock=lambda: at(NOW - timedelta(seconds=1))
    )
    assert (await verifier.verify("secret")).method is Method.TOKEN
    expired = Verifier(static_tokens=index_with("secret", expires_at=NOW), opaque=opaque, clock=lambda: at(NOW))
    with pytest.raises(Unauthenticated) as refused:
        await expired.verify("secret")
    assert refused.value.reason == "expired"
    assert opaque.calls == []


async def test_without_an_opaque_verifier_an_unknown_credential_is_refused_at_once() -> None:
    verifier = Verifier(static_tokens=index_with("secret", expires_at=None))
    with pytest.raises(Unauthenticated) as now:
        verifier.verify_now("provider-opaque-token")
    with pytest.raises(Unauthenticated) as later:
        await verifier.verify("provider-opaque-token")
    assert now.value.reason == later.value.reason == "unknown"

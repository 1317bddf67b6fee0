"""Client tokens on the server: the service-account exchange, discovery, verification on every surface,
revocation through the deny-list."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from aiohttp import ClientSession
from server_harness import FakeConfigMaps, Harness, bearer

from kubegate.client_tokens import keys
from kubegate.client_tokens.key_watch import SigningKeys
from kubegate.client_tokens.mint import mint
from kubegate.methods.kubernetes.bindings import Binding
from kubegate.methods.kubernetes.exchange import Exchange
from kubegate.methods.kubernetes.http import INVALID_TOKEN_MESSAGE
from kubegate.methods.kubernetes.review import ReviewBusy, ReviewedAccount, ReviewRefused, ReviewUnavailable
from kubegate.server.deny_list import DenyListWriter
from kubegate.settings import ServerSettings
from kubegate.state.revocations import Revocations
from kubegate.verify.client_tokens import JwksClientTokenVerifier

ISSUER = "https://kubegate.test"


def sa_token(namespace: str = "apps", name: str = "web") -> str:
    """A token shaped like a bound service-account token; only the (fake) review decides if it is valid."""
    claims = {
        "iss": "https://kubernetes.default.svc",
        "sub": f"system:serviceaccount:{namespace}:{name}",
        "exp": int(time.time()) + 86_400,  # made at import: must outlive a long test session
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": "sa-uid"}},
    }
    return jwt.encode(claims, "not-the-cluster-key-but-long-enough", algorithm="HS256")


SA_TOKEN = sa_token()


def account() -> ReviewedAccount:
    """What the (fake) TokenReview vouches for: valid ten minutes from now, whenever the test runs (a module
    constant expired when the suite ran longer than that before reaching these tests)."""
    return ReviewedAccount(
        namespace="apps", name="web", uid="sa-uid", pod_name="web-0", pod_uid="pod-uid", expires_at=time.time() + 600
    )


class Reviews:
    def __init__(self) -> None:
        self.outcome: ReviewedAccount | Exception = account()
        self.calls = 0

    async def __call__(self, token: str) -> ReviewedAccount:
        self.calls += 1
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


async def _labels(namespace: str) -> dict[str, str]:
    return {}


@pytest.fixture
async def setup() -> AsyncIterator[tuple[Harness, Reviews, ClientSession, FakeConfigMaps]]:
    settings = ServerSettings(insecure_http=True, token_wait_timeout=1.0, issuer_url=ISSUER)
    harness = Harness(settings)
    signing = SigningKeys()
    signing.keyset = keys.initial(datetime.now(UTC) - timedelta(minutes=1), max_token_lifetime=timedelta(hours=2))
    configmaps = FakeConfigMaps()
    revocations = Revocations()
    reviews = Reviews()
    harness.signing_keys = signing
    harness.revocations = revocations
    harness.deny_list = DenyListWriter(configmaps, "kubegate-system", revocations)  # type: ignore[arg-type]
    harness.client_tokens = JwksClientTokenVerifier(
        issuer=ISSUER, audience="kubegate", keys=signing.public.current, revoked=revocations.contains
    )
    harness.exchange = Exchange(
        review=reviews,
        namespace_labels=_labels,
        bindings=[Binding(namespaces=("apps",), service_accounts=("web",), groups=("web-apps",))],
        keys=signing.current,
        issuer=ISSUER,
        audience="kubegate",
        max_lifetime=3600,
    )
    async with harness.client() as client:
        yield harness, reviews, client, configmaps


async def _exchange(client: ClientSession, **kwargs: Any) -> Any:
    return await client.post("/auth/v1/method/kubernetes/serviceaccount", **kwargs)


async def test_flipt_documented_call_works(
    setup: tuple[Harness, Reviews, ClientSession, FakeConfigMaps],
) -> None:
    _, reviews, client, _ = setup
    # curl --data sends a form content type and the snake_case field name.
    response = await _exchange(
        client,
        data=f'{{"service_account_token":"{SA_TOKEN}"}}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    auth = body["authentication"]
    assert auth["method"] == "METHOD_KUBERNETES"
    assert auth["metadata"] == {
        "io.kubegate.auth.k8s.namespace": "apps",
        "io.kubegate.auth.k8s.serviceaccount.name": "web",
        "io.kubegate.auth.k8s.serviceaccount.uid": "sa-uid",
        "io.kubegate.auth.k8s.pod.name": "web-0",
        "io.kubegate.auth.k8s.pod.uid": "pod-uid",
    }
    expires = datetime.fromisoformat(auth["expiresAt"]).timestamp()
    assert isinstance(reviews.outcome, ReviewedAccount)
    assert abs(expires - int(reviews.outcome.expires_at or 0)) <= 1
    claims = jwt.decode(body["clientToken"], options={"verify_signature": False})
    assert (claims["iss"], claims["aud"], claims["jti"]) == (ISSUER, "kubegate", auth["id"])

    self_response = await client.get("/auth/v1/self", headers=bearer(body["clientToken"]))
    assert self_response.status == 200
    # The verified claims stay in memory: the answer keeps Flipt's shape.
    assert await self_response.json() == {
        **auth,
        "identity": {"username": "serviceaccount:apps:web", "uid": "sa-uid", "groups": ["web-apps"]},
    }
    verify = await client.get("/auth/v1/verify", headers=bearer(body["clientToken"]))
    assert verify.status == 200
    assert verify.headers["X-Auth-Request-User"] == "serviceaccount:apps:web"
    assert verify.headers["X-Auth-Request-Groups"] == "web-apps"


async def test_json_with_camel_case_works_and_the_expiry_is_capped(
    setup: tuple[Harness, Reviews, ClientSession, FakeConfigMaps],
) -> None:
    _, reviews, client, _ = setup
    reviews.outcome = ReviewedAccount(
        namespace="apps", name="web", uid="u", pod_name=None, pod_uid=None, expires_at=time.time() + 86400
    )
    response = await _exchange(client, json={"serviceAccountToken": SA_TOKEN})
    body = await response.json()
    assert response.status == 200
    assert "io.kubegate.auth.k8s.pod.name" not in body["authentication"]["metadata"]
    expires = datetime.fromisoformat(body["authentication"]["expiresAt"]).timestamp()
    assert expires <= time.time() + 3600 + 1  # capped by the configured maximum


@pytest.mark.parametrize(
    ("outcome", "status", "fragment", "retry_after"),
    [
        (
            ReviewRefused("the Kubernetes API server refused the service-account token: pod not found"),
            401,
            INVALID_TOKEN_MESSAGE,
            None,
        ),
        (
            ReviewRefused("the service-account token is not for the audience kubegate expects (x)"),
            401,
            INVALID_TOKEN_MESSAGE,
            None,
        ),
        # A valid token the bindings refuse (here: the review vouches for another account than the claimed one).
        (
            ReviewedAccount(namespace="other", name="web", uid="u", pod_name=None, pod_uid=None, expires_at=None),
            401,
            "namespace 'other' is not allowed",
            None,
        ),
        (ReviewUnavailable("the Kubernetes API server cannot be reached"), 503, "cannot be reached", "5"),
        (ReviewBusy("32 service-account tokens are being reviewed already"), 503, "being reviewed already", "1"),
    ],
)
async def test_refusals_say_which_rule_only_of_valid_tokens(
    setup: tuple[Harness, Reviews, ClientSession, FakeConfigMaps],
    outcome: Any,
    status: int,
    fragment: str,
    retry_after: str | None,
) -> None:
    _, reviews, client, _ = setup
    reviews.outcome = outcome
    response = await _exchange(client, json={"serviceAccountToken": SA_TOKEN})
    assert response.status == status
    body = await response.json()
    assert fragment in body["message"]
    if status == 503:
        assert response.headers["Retry-After"] == retry_after
    else:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt-at-all",
        "a.b.c",
        jwt.encode({"sub": "alice"}, "k" * 32, algorithm="HS256"),  # a JWT, but of no service account
        sa_token("apps", "intruder"),  # a service account no binding names
        sa_token("prod", "web"),  # a namespace no binding names
    ],
)
async def test_tokens_no_binding_could_admit_cost_no_review_and_look_invalid(
    setup: tuple[Harness, Reviews, ClientSession, FakeConfigMaps], token: str
) -> None:
    _, reviews, client, _ = setup
    reviews.outcome = ReviewRefused("the Kubernetes API server refused the service-account token: invalid")
    invalid = await _exchange(client, json={"serviceAccountToken": SA_TOKEN})
    assert reviews.calls == 1
    response = await _exchange(client, json={"serviceAccountToken": token})
    assert reviews.calls == 1  # refused before any TokenReview
    # The same answer as a token the API server refused: no hint whether a binding exists.
    assert (response.status, await response.json()) == (invalid.status, await invalid.json())
    assert response.headers["WWW-Authenticate"] == invalid.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": "not json", "headers": {"Content-Type": "application/json"}}, 400),
        ({"json": {}}, 400),
        ({"json": {"serviceAccountToken": 42}}, 400),
        ({"json": {"serviceAccountToken": SA_TOKEN, "extra": 1}}, 400),
        ({"data": b"x", "headers": {"Content-Type": "image/png"}}, 415),
        ({"data": "", "headers": {"Content-Type": "application/json"}}, 400),
    ],
)
async def test_bad_bodies_are_4xx(
    setup: tuple[Harness, Reviews, ClientSession, FakeConfigMaps], kwargs: dict[str, Any], status: int
) -> None:
    _, _, client, _ = setup
    response = await _exchange(client, **kwargs)
    assert response.status == status


async def test_discovery_and_jwks(setup: tuple[Harness, Reviews, ClientSession, FakeConfigMaps]) -> None:
    harness, _, client, _ = setup
    discovery = await (await client.get("/.well-known/openid-configuration")).json()
    assert discovery["issuer"] == ISSUER
    assert discovery["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
    assert discovery["id_token_signing_alg_values_supported"] == ["ES256"]
    jwks = await (await client.get("/.well-known/jwks.json")).json()
    assert harness.signing_keys is not None
    assert harness.signing_keys.keyset is not None
    assert jwks == harness.signing_keys.keyset.jwks()
    methods = await (await client.get("/auth/v1/method")).json()
    assert {m["method"]: m["enabled"] for m in methods["methods"]}["METHOD_KUBERNETES"] is True


async def test_revoking_a_client_token_by_id_and_by_itself(
    setup: tuple[Harness, Reviews, ClientSession, FakeConfigMaps],
) -> None:
    harness, _, client, configmaps = setup
    first = await (await _exchange(client, json={"serviceAccountToken": SA_TOKEN})).json()
    second = await (await _exchange(client, json={"serviceAccountToken": SA_TOKEN})).json()
    admin = harness.admin()

    deleted = await client.delete(f"/auth/v1/tokens/{first['authentication']['id']}", headers=bearer(admin))
    assert deleted.status == 200
    assert (await client.get("/auth/v1/self", headers=bearer(first["clientToken"]))).status == 401
    assert (await client.get("/auth/v1/self", headers=bearer(second["clientToken"]))).status == 200

    expired = await client.put("/auth/v1/self/expire", headers=bearer(second["clientToken"]))
    assert expired.status == 200
    assert (await client.get("/auth/v1/self", headers=bearer(second["clientToken"]))).status == 401
    assert configmaps.object is not None
    assert first["authentication"]["id"] in configmaps.object["data"]["revoked.json"]


async def test_a_rotated_key_keeps_old_tokens_valid_and_signs_new_ones(
    setup: tuple[Harness, Reviews, ClientSession, FakeConfigMaps],
) -> None:
    harness, _, client, _ = setup
    assert harness.signing_keys is not None
    assert harness.signing_keys.keyset is not None
    old_kid = harness.signing_keys.keyset.active().kid
    before = await (await _exchange(client, json={"serviceAccountToken": SA_TOKEN})).json()
    harness.signing_keys.keyset = keys.rotate(harness.signing_keys.keyset, datetime.now(UTC))
    after = await (await _exchange(client, json={"serviceAccountToken": SA_TOKEN})).json()
    assert jwt.get_unverified_header(before["clientToken"])["kid"] == old_kid
    assert jwt.get_unverified_header(after["clientToken"])["kid"] == harness.signing_keys.keyset.active().kid != old_kid
    for token in (before["clientToken"], after["clientToken"]):
        assert (await client.get("/auth/v1/self", headers=bearer(token))).status == 200


async def test_the_exchange_is_off_without_configuration() -> None:
    async with Harness().client() as client:
        response = await _exchange(client, json={"serviceAccountToken": SA_TOKEN})
        assert response.status == 404
        assert "--serviceaccount-bindings-file" in (await response.json())["message"]
        assert (await client.get("/.well-known/jwks.json")).status == 404


async def test_a_client_token_waits_for_the_keys_with_503_not_401() -> None:
    """Readiness per source: static tokens are served while the client-token keys are still loading, and a
    client token gets "retry" until they are, never "your token is bad"."""
    settings = ServerSettings(insecure_http=True, issuer_url=ISSUER)
    harness = Harness(settings)
    static, _ = harness.add_token()
    signing = SigningKeys()
    harness.signing_keys = signing
    harness.client_tokens = JwksClientTokenVerifier(
        issuer=ISSUER, audience="kubegate", keys=signing.public.current, revoked=lambda _: False
    )
    keyset = keys.initial(datetime.now(UTC) - timedelta(minutes=1), max_token_lifetime=timedelta(hours=1))
    now = datetime.now(UTC)
    client_token = mint(
        keyset.active(),
        issuer=ISSUER,
        audience="kubegate",
        subject="system:serviceaccount:apps:web",
        uid="uid-1",
        token_id="0d7a5b7e-3a3c-4c66-9a57-6f0f2a3c1e10",
        method="METHOD_KUBERNETES",
        groups=["web-apps"],
        metadata={},
        issued_at=now - timedelta(seconds=5),
        expires_at=now + timedelta(minutes=10),
    )
    async with harness.client() as client:
        assert (await client.get("/auth/v1/verify", headers=bearer(static))).status == 200
        waiting = await client.get("/auth/v1/verify", headers=bearer(client_token))
        assert waiting.status == 503
        assert "Retry-After" in waiting.headers
        assert "signing keys are not loaded" in (await waiting.json())["message"]
        signing.keyset = keyset
        assert (await client.get("/auth/v1/verify", headers=bearer(client_token))).status == 200

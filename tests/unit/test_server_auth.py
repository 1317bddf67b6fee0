"""Every authenticated path answers alike: one 401 for every bad credential, 503 before the config loads."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Container
from datetime import UTC, datetime, timedelta

import pytest
from server_harness import Harness, bearer

from kubegate.verify import COOKIE_NAME, UNAUTHENTICATED_MESSAGE, Authentication, VerifierUnavailable
from kubegate.verify.credentials import MAX_CREDENTIAL_LENGTH
from support.flipt import status_of


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer kg_unknown"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer a b"},
        {"Authorization": "Bearer " + "x" * (MAX_CREDENTIAL_LENGTH + 1)},
        {"Authorization": "Bearer caf\u00e9".encode().decode("latin-1")},
    ],
)
async def test_one_401_for_missing_malformed_and_unknown(headers: dict[str, str]) -> None:
    async with Harness().client() as client:
        response = await client.get("/auth/v1/self", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        answer = status_of(await response.json())
        assert (answer.code, answer.reason, answer.message) == (16, "UNAUTHENTICATED", UNAUTHENTICATED_MESSAGE)


async def test_expired_token_gets_the_same_401() -> None:
    harness = Harness()
    token, _ = harness.add_token(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    async with harness.client() as client:
        response = await client.get("/auth/v1/self", headers=bearer(token))
        assert response.status == 401
        assert (await response.json())["message"] == UNAUTHENTICATED_MESSAGE


async def test_cookie_authenticates() -> None:
    harness = Harness()
    token, entry = harness.add_token()
    async with harness.client() as client:
        response = await client.get("/auth/v1/self", headers={"Cookie": f"{COOKIE_NAME}={token}"})
        assert response.status == 200
        assert (await response.json())["id"] == entry.token_id


async def test_before_the_config_is_loaded_the_answer_is_503_not_401() -> None:
    harness = Harness(ready=False)
    token, _ = harness.add_token()
    async with harness.client() as client:
        response = await client.get("/auth/v1/verify", headers=bearer(token))
        assert response.status == 503
        assert response.headers["Retry-After"]
        assert status_of(await response.json()).code == 14


async def test_unknown_path_and_wrong_method_answer_in_json() -> None:
    async with Harness().client() as client:
        missing = await client.get("/auth/v1/nope")
        assert missing.status == 404
        assert status_of(await missing.json()).code == 5
        wrong = await client.post("/auth/v1/self")
        assert wrong.status == 405
        assert status_of(await wrong.json()).reason == "METHOD_NOT_ALLOWED"
        assert "GET" in wrong.headers["Allow"]


async def test_a_header_too_large_for_http_is_refused_without_logging_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "kg_" + "s" * 70000
    async with Harness().client() as client:
        response = await client.get("/auth/v1/self", headers={"Authorization": f"Bearer {secret}"})
        assert response.status == 431
        assert (await response.json())["details"][0]["value"]["reason"] == "REQUEST_HEADER_FIELDS_TOO_LARGE"
    assert "sss" not in caplog.text


class UnreachableProvider:
    @property
    def issuers(self) -> Container[str]:
        return {"https://dex.example.com"}

    def seen(self, token: str) -> Authentication | None:
        return None

    async def verify(self, token: str, *, issuer: str | None, unverified: object = None) -> Authentication:
        raise VerifierUnavailable("https://dex.example.com does not answer")


def provider_jwt() -> str:
    def segment(value: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{segment({'alg': 'RS256'})}.{segment({'iss': 'https://dex.example.com'})}.c2ln"


async def test_an_unreachable_provider_is_503_not_401() -> None:
    async with Harness(oidc=UnreachableProvider()).client() as client:
        response = await client.get("/auth/v1/self", headers=bearer(provider_jwt()))
        assert response.status == 503
        assert "dex.example.com does not answer" in (await response.json())["message"]
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": provider_jwt()}}
        assert (await client.post("/apis/authentication.k8s.io/v1/tokenreviews", json=review)).status == 503

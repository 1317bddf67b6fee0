"""The TokenReview webhook follows Kubernetes' webhook token authentication contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from server_harness import Harness

from kubegate.settings import ServerSettings
from support.flipt import status_of

PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


def review(token: str, *, version: str = "v1", audiences: list[str] | None = None) -> dict[str, Any]:
    # What kube-apiserver sends, metadata and empty status included.
    spec: dict[str, Any] = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    return {
        "apiVersion": f"authentication.k8s.io/{version}",
        "kind": "TokenReview",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": {"user": {}},
    }


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
async def test_valid_token_maps_to_a_prefixed_user_and_echoes_the_version(version: str) -> None:
    harness = Harness()
    token, entry = harness.add_token("ci", groups=("deployers", "kubegate:admin"))
    async with harness.client() as client:
        response = await client.post(PATH, json=review(token, version=version))
        assert response.status == 200
        assert await response.json() == {
            "apiVersion": f"authentication.k8s.io/{version}",
            "kind": "TokenReview",
            "status": {
                "authenticated": True,
                "user": {
                    "username": "kubegate:statictoken:team:ci",
                    "uid": entry.token_id,
                    "groups": ["kubegate:deployers", "kubegate:kubegate:admin"],
                    "extra": {"kubegate.dev/method": ["METHOD_TOKEN"], "kubegate.dev/token-id": [entry.token_id]},
                },
            },
        }


@pytest.mark.parametrize("token", ["kg_unknown", "", "two words", "x" * 20000, "caf\u00e9", "line\r\nbreak"])
async def test_bad_token_is_a_clean_not_authenticated(token: str) -> None:
    async with Harness().client() as client:
        response = await client.post(PATH, json=review(token))
        assert response.status == 200
        status = (await response.json())["status"]
        assert status["authenticated"] is False
        assert status["error"]
        assert "user" not in status


async def test_expired_token_is_not_authenticated() -> None:
    harness = Harness()
    token, _ = harness.add_token(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    async with harness.client() as client:
        status = (await (await client.post(PATH, json=review(token))).json())["status"]
        assert status["authenticated"] is False


async def test_without_configured_audiences_any_requested_audience_is_granted() -> None:
    harness = Harness()
    token, _ = harness.add_token()
    async with harness.client() as client:
        status = (
            await (await client.post(PATH, json=review(token, audiences=["https://kubernetes.default.svc"]))).json()
        )["status"]
        assert status["authenticated"] is True
        assert status["audiences"] == ["https://kubernetes.default.svc"]


async def test_configured_audiences_are_intersected() -> None:
    harness = Harness(ServerSettings(insecure_http=True, webhook_audiences=["api", "other"]))
    token, _ = harness.add_token()
    async with harness.client() as client:
        granted = (await (await client.post(PATH, json=review(token, audiences=["nope", "api"]))).json())["status"]
        assert granted["authenticated"] is True
        assert granted["audiences"] == ["api"]
        refused = (await (await client.post(PATH, json=review(token, audiences=["nope"]))).json())["status"]
        assert refused == {
            "authenticated": False,
            "error": "kubegate tokens are valid only for the audiences api, other",
        }
        unasked = (await (await client.post(PATH, json=review(token))).json())["status"]
        assert unasked["authenticated"] is True
        assert "audiences" not in unasked


async def test_prefixes_are_settings() -> None:
    harness = Harness(ServerSettings(insecure_http=True, webhook_username_prefix="kg-", webhook_groups_prefix=""))
    token, _ = harness.add_token("ci", groups=("deployers",))
    async with harness.client() as client:
        user = (await (await client.post(PATH, json=review(token))).json())["status"]["user"]
        assert user["username"] == "kg-statictoken:team:ci"
        assert user["groups"] == ["deployers"]


async def test_names_starting_with_system_are_never_returned() -> None:
    harness = Harness(ServerSettings(insecure_http=True, webhook_groups_prefix=""))
    token, _ = harness.add_token("ci", groups=("system:masters",))
    async with harness.client() as client:
        status = (await (await client.post(PATH, json=review(token))).json())["status"]
        assert status["authenticated"] is False
        assert "system:" in status["error"]


@pytest.mark.parametrize(
    "body",
    [
        {"apiVersion": "authentication.k8s.io/v2", "kind": "TokenReview", "spec": {"token": "x"}},
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {"token": "x"}},
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"},
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": 42}},
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "x", "audiences": "a"}},
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": "token"},
    ],
)
async def test_malformed_review_is_400(body: dict[str, Any]) -> None:
    async with Harness().client() as client:
        response = await client.post(PATH, json=body)
        assert response.status == 400
        assert status_of(await response.json()).code == 3


async def test_before_the_config_loads_the_webhook_asks_to_retry() -> None:
    # kube-apiserver caches "not authenticated" answers, but retries a 503 without caching it.
    harness = Harness(ready=False)
    token, _ = harness.add_token()
    async with harness.client() as client:
        response = await client.post(PATH, json=review(token))
        assert response.status == 503


async def test_a_changed_token_is_answered_afresh_not_from_the_kept_answer() -> None:
    # Answers are encoded once per credential and kept with it; a change must never serve the old one.
    harness = Harness()
    token, _ = harness.add_token("ci", groups=("before",))
    async with harness.client() as client:
        for _ in range(2):
            body = await (await client.post(PATH, json=review(token))).json()
            assert body["status"]["user"]["groups"] == ["kubegate:before"]
        with_audiences = await (await client.post(PATH, json=review(token, audiences=["a", "b"]))).json()
        assert with_audiences["status"]["audiences"] == ["a", "b"]
        harness.add_token("ci", groups=("after",), token=token)
        body = await (await client.post(PATH, json=review(token))).json()
        assert body["status"]["user"]["groups"] == ["kubegate:after"]
        assert "audiences" not in body["status"]

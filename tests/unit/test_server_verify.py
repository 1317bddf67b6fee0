"""Forward auth: identity headers on 200, 401 with WWW-Authenticate, 403 naming missing groups."""

from __future__ import annotations

import pytest
from server_harness import Harness, bearer

from support.flipt import status_of


@pytest.mark.parametrize("method", ["GET", "POST", "HEAD", "DELETE", "PATCH"])
async def test_any_method_gets_identity_headers(method: str) -> None:
    harness = Harness()
    token, entry = harness.add_token("ci", groups=("deployers", "readers"))
    async with harness.client() as client:
        response = await client.request(method, "/auth/v1/verify", headers=bearer(token))
        assert response.status == 200
        assert response.headers["X-Auth-Request-User"] == "statictoken:team:ci"
        assert response.headers["X-Auth-Request-Groups"] == "deployers,readers"
        assert response.headers["X-Kubegate-Token-Id"] == entry.token_id
        assert response.headers["X-Kubegate-Method"] == "METHOD_TOKEN"


async def test_bad_token_is_401_with_challenge() -> None:
    async with Harness().client() as client:
        response = await client.get("/auth/v1/verify", headers=bearer("kg_nope"))
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "X-Auth-Request-User" not in response.headers


async def test_every_required_group_must_be_held() -> None:
    harness = Harness()
    token, _ = harness.add_token("ci", groups=("deployers", "readers"))
    async with harness.client() as client:
        ok = await client.get("/auth/v1/verify?group=deployers&group=readers", headers=bearer(token))
        assert ok.status == 200
        denied = await client.get("/auth/v1/verify?group=deployers&group=admins&group=ops", headers=bearer(token))
        assert denied.status == 403
        answer = status_of(await denied.json())
        assert answer.code == 7
        assert "admins, ops" in answer.message
        assert answer.metadata == {
            "requirement": "group",
            "allOf": ["deployers", "admins", "ops"],
            "missing": ["admins", "ops"],
        }


async def test_empty_group_parameter_is_a_configuration_error() -> None:
    harness = Harness()
    token, _ = harness.add_token("ci")
    async with harness.client() as client:
        response = await client.get("/auth/v1/verify?group=", headers=bearer(token))
        assert response.status == 400


async def test_envoy_prefix_path_ignores_the_clients_query() -> None:
    harness = Harness()
    token, _ = harness.add_token("ci")
    async with harness.client() as client:
        response = await client.get("/auth/v1/verify/api/orders?group=admins", headers=bearer(token))
        assert response.status == 200
        assert response.headers["X-Auth-Request-User"] == "statictoken:team:ci"
        assert (await client.post("/auth/v1/verify/x", headers=bearer("kg_bad"))).status == 401


async def test_unauthenticated_check_does_not_look_at_groups() -> None:
    async with Harness().client() as client:
        response = await client.get("/auth/v1/verify?group=admins")
        assert response.status == 401


async def test_a_changed_token_gets_fresh_headers_not_the_kept_ones() -> None:
    harness = Harness()
    token, _ = harness.add_token("web", groups=("before",))
    async with harness.client() as client:
        for _ in range(2):
            response = await client.get("/auth/v1/verify", headers=bearer(token))
            assert response.headers["X-Auth-Request-Groups"] == "before"
        harness.add_token("web", groups=("after", "more"), token=token)
        response = await client.get("/auth/v1/verify", headers=bearer(token))
        assert response.headers["X-Auth-Request-Groups"] == "after,more"

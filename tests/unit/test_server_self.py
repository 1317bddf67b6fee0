"""GET /auth/v1/self and PUT /auth/v1/self/expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from server_harness import Harness, bearer

from kubegate.kube import ApiUnavailable
from support.flipt import status_of


async def test_self_describes_the_caller() -> None:
    harness = Harness()
    token, entry = harness.add_token("ci", groups=("deployers",), metadata={"team": "payments"})
    async with harness.client() as client:
        response = await client.get("/auth/v1/self", headers=bearer(token))
        assert response.status == 200
        body = await response.json()
    assert body["id"] == entry.token_id
    assert body["method"] == "METHOD_TOKEN"
    assert body["expiresAt"] is None
    assert body["metadata"] == {"team": "payments"}
    assert body["identity"] == {"username": "statictoken:team:ci", "uid": entry.token_id, "groups": ["deployers"]}


async def test_expire_sets_the_expiry_and_waits_until_the_token_stops_working() -> None:
    harness = Harness()
    harness.store.propagation_delay = 0.2
    token, _ = harness.add_token("ci")
    async with harness.client() as client:
        before = datetime.now(UTC).replace(microsecond=0)
        response = await client.put("/auth/v1/self/expire", headers=bearer(token))
        assert response.status == 200, await response.text()
        assert await response.json() == {}
        assert (await client.get("/auth/v1/self", headers=bearer(token))).status == 401
    ((namespace, name, at),) = harness.store.expired
    assert (namespace, name) == ("team", "ci")
    assert before <= at <= datetime.now(UTC)


async def test_expire_at_a_given_time() -> None:
    harness = Harness()
    token, _ = harness.add_token("ci")
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    async with harness.client() as client:
        response = await client.put(
            "/auth/v1/self/expire", headers=bearer(token), json={"expiresAt": later.isoformat().replace("+00:00", "Z")}
        )
        assert response.status == 200, await response.text()
    assert harness.store.expired[0][2] == later


async def test_expire_at_the_time_in_the_query_as_flipts_sdk_sends_it() -> None:
    harness = Harness()
    token, _ = harness.add_token("ci")
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    async with harness.client() as client:
        response = await client.put(
            "/auth/v1/self/expire",
            headers=bearer(token),
            params={"expiresAt": later.isoformat(timespec="microseconds").replace("+00:00", "Z")},
        )
        assert response.status == 200, await response.text()
    assert harness.store.expired[0][2] == later


@pytest.mark.parametrize("where", ["query", "body"])
async def test_expire_at_a_past_time_ends_the_token_now(where: str) -> None:
    """Flipt's SDK sends 1970-01-01T00:00:00Z when its caller gives no time."""
    harness = Harness()
    harness.store.propagation_delay = 0.1
    token, _ = harness.add_token("ci")
    past = "1970-01-01T00:00:00Z"
    async with harness.client() as client:
        before = datetime.now(UTC).replace(microsecond=0)
        response = await client.put(
            "/auth/v1/self/expire",
            headers=bearer(token),
            params={"expiresAt": past} if where == "query" else None,
            json={"expiresAt": past} if where == "body" else None,
        )
        assert response.status == 200, await response.text()
        assert (await client.get("/auth/v1/self", headers=bearer(token))).status == 401
    assert before <= harness.store.expired[0][2] <= datetime.now(UTC)


@pytest.mark.parametrize("value", ["tomorrow", "2031-13-01T00:00:00Z", "2031-01-01T00:00:00", "kg_" + "S" * 43 + "="])
async def test_expire_with_a_bad_time_in_the_query_is_400_naming_the_parameter(value: str) -> None:
    harness = Harness()
    token, _ = harness.add_token("ci")
    async with harness.client() as client:
        response = await client.put("/auth/v1/self/expire", headers=bearer(token), params={"expiresAt": value})
        assert response.status == 400
        answer = status_of(await response.json())
        assert answer.fields == ["expiresAt"]
        assert "RFC 3339" in answer.message
        assert value not in await response.text()
    assert harness.store.expired == []


async def test_expire_with_a_bad_body_is_400() -> None:
    harness = Harness()
    token, _ = harness.add_token("ci")
    async with harness.client() as client:
        response = await client.put("/auth/v1/self/expire", headers=bearer(token), json={"expiresAt": "tomorrow"})
        assert response.status == 400
        assert status_of(await response.json()).fields == ["expiresAt"]
    assert harness.store.expired == []


async def test_expire_that_never_arrives_is_503_and_says_so() -> None:
    harness = Harness()
    harness.store.propagation_delay = None
    token, _ = harness.add_token("ci")
    async with harness.client() as client:
        response = await client.put("/auth/v1/self/expire", headers=bearer(token))
        assert response.status == 503
        assert "stops working once the operator" in (await response.json())["message"]


async def test_expire_while_the_api_is_down_is_503_with_retry_after() -> None:
    harness = Harness()
    harness.store.expire_error = ApiUnavailable("connection refused")
    token, _ = harness.add_token("ci")
    async with harness.client() as client:
        response = await client.put("/auth/v1/self/expire", headers=bearer(token))
        assert response.status == 503
        assert response.headers["Retry-After"]
        assert (await client.get("/auth/v1/self", headers=bearer(token))).status == 200

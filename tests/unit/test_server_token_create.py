"""POST /auth/v1/method/token: Flipt's documented call, permissions, bad bodies, bounded waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from server_harness import Harness, NeverIssues, bearer

from kubegate.kube import ApiError, ApiUnavailable
from kubegate.settings import ServerSettings
from kubegate.verify import COOKIE_NAME
from support.flipt import status_of

FLIPT_BODY = {"name": "access_all_areas", "description": "keys to the castle"}


async def test_flipts_documented_call_creates_a_token_that_works() -> None:
    harness = Harness()
    harness.store.propagation_delay = 0.1
    admin = harness.admin()
    async with harness.client() as client:
        response = await client.post(
            "/auth/v1/method/token",
            headers={**bearer(admin), "Content-Type": "application/json"},
            data='{"name":"access_all_areas","description":"keys to the castle"}',
        )
        assert response.status == 200, await response.text()
        body = await response.json()
        assert set(body) == {"clientToken", "authentication"}
        authentication = body["authentication"]
        assert authentication["method"] == "METHOD_TOKEN"
        assert authentication["expiresAt"] is None
        assert authentication["metadata"] == {
            "io.kubegate.auth.token.name": "access_all_areas",
            "io.kubegate.auth.token.description": "keys to the castle",
        }
        assert {"id", "createdAt", "updatedAt", "identity"} <= set(authentication)
        # Returned only once accepted: the token works at once.
        me = await client.get("/auth/v1/self", headers=bearer(body["clientToken"]))
        assert me.status == 200
        assert (await me.json())["id"] == authentication["id"]

    (resource,) = harness.store.created
    assert resource["apiVersion"] == "kubegate.dev/v1alpha1"
    assert resource["kind"] == "StaticToken"
    assert resource["metadata"]["generateName"] == "token-"
    assert resource["metadata"]["namespace"] == "kubegate-system"
    assert resource["metadata"]["annotations"]["kubegate.dev/requested-by"] == "statictoken:kubegate-system:admin"
    assert resource["spec"]["description"] == "keys to the castle"
    assert "groups" not in resource["spec"]


async def test_expiry_namespace_and_metadata_are_passed_on_in_either_spelling() -> None:
    harness = Harness(ServerSettings(insecure_http=True, token_namespaces=["apps"]))
    admin = harness.admin()
    expires = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    async with harness.client() as client:
        response = await client.post(
            "/auth/v1/method/token",
            headers=bearer(admin),
            json={"name": "ci", "expires_at": expires.isoformat(), "namespace_key": "apps", "metadata": {"team": "x"}},
        )
        assert response.status == 200, await response.text()
        assert (await response.json())["authentication"]["expiresAt"] == expires.isoformat().replace("+00:00", "Z")
    resource = harness.store.created[0]
    assert resource["metadata"]["namespace"] == "apps"
    assert resource["spec"]["expiresAt"] == expires.isoformat().replace("+00:00", "Z")
    assert resource["spec"]["metadata"]["team"] == "x"


async def test_creating_needs_a_creator_group_and_says_which() -> None:
    harness = Harness()
    token, _ = harness.add_token("someone", groups=("readers",))
    async with harness.client() as client:
        response = await client.post("/auth/v1/method/token", headers=bearer(token), json=FLIPT_BODY)
        assert response.status == 403
        answer = status_of(await response.json())
        assert "kubegate:admin" in answer.message
        assert answer.metadata == {"requirement": "group", "anyOf": ["kubegate:admin"]}
    assert harness.store.created == []


async def test_creator_groups_are_a_setting() -> None:
    harness = Harness(ServerSettings(insecure_http=True, create_token_groups=["token-makers"]))
    maker, _ = harness.add_token("maker", groups=("token-makers",))
    admin = harness.admin()
    async with harness.client() as client:
        assert (await client.post("/auth/v1/method/token", headers=bearer(maker), json=FLIPT_BODY)).status == 200
        assert (await client.post("/auth/v1/method/token", headers=bearer(admin), json=FLIPT_BODY)).status == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": 42}, "name"),
        ({"name": "x", "expiresAt": "soon"}, "expiresAt"),
        ({"name": "x", "expiresAt": "2030-01-01T00:00:00"}, "expiresAt"),
        ({"name": "x", "expiresAt": "2001-01-01T00:00:00Z"}, "expiresAt"),
        ({"name": "x", "metadata": {"k": 1}}, "metadata.k"),
        ({"name": "x", "metadata": ["k"]}, "metadata"),
        ({"name": "x", "metadata": {"io.kubegate.auth.token.name": "spoof"}}, "metadata"),
        ({"name": "x", "namespaceKey": "Not_A_Namespace"}, "namespaceKey"),
        ({"name": "x" * 254}, "name"),
    ],
)
async def test_bad_bodies_are_400_with_the_field(body: dict[str, object], field: str) -> None:
    harness = Harness()
    admin = harness.admin()
    async with harness.client() as client:
        response = await client.post("/auth/v1/method/token", headers=bearer(admin), json=body)
        assert response.status == 400
        answer = status_of(await response.json())
        assert answer.code == 3
        assert field in answer.fields, answer
    assert harness.store.created == []


async def test_unknown_fields_are_ignored_as_flipts_gateway_ignores_them() -> None:
    harness = Harness()
    admin = harness.admin()
    async with harness.client() as client:
        response = await client.post(
            "/auth/v1/method/token", headers=bearer(admin), json={**FLIPT_BODY, "fromANewerFlipt": {"x": 1}}
        )
        assert response.status == 200, await response.text()
    assert harness.store.created[0]["spec"]["description"] == "keys to the castle"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_a_request_with_a_bearer_token_needs_no_json_content_type(content_type: str | None) -> None:
    """Flipt's Go SDK sends its body without a content type."""
    harness = Harness()
    admin = harness.admin()
    headers = bearer(admin) | ({"Content-Type": content_type} if content_type else {})
    async with harness.client() as client:
        response = await client.post(
            "/auth/v1/method/token",
            headers=headers,
            data=b'{"name":"sdk"}',
            skip_auto_headers=() if content_type else ("Content-Type",),
        )
        assert response.status == 200, await response.text()
    assert len(harness.store.created) == 1


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_a_request_with_a_cookie_must_send_json_content_type(content_type: str | None) -> None:
    """A page on another site can make a browser post a form or text with the cookie, but not JSON."""
    harness = Harness()
    cookie = {"Cookie": f"{COOKIE_NAME}={harness.admin()}"}
    async with harness.client() as client:
        response = await client.post(
            "/auth/v1/method/token",
            headers=cookie | ({"Content-Type": content_type} if content_type else {}),
            data=b'{"name":"csrf"}',
            skip_auto_headers=() if content_type else ("Content-Type",),
        )
        assert response.status == 415
        message = status_of(await response.json()).message
        assert "Content-Type: application/json" in message
        assert f"(got {repr(content_type) if content_type else 'none'})" in message
        as_json = await client.post("/auth/v1/method/token", headers=cookie, json={"name": "mine"})
        assert as_json.status == 200
    assert [r["spec"]["metadata"]["io.kubegate.auth.token.name"] for r in harness.store.created] == ["mine"]


async def test_namespace_outside_the_allowed_ones_is_400() -> None:
    harness = Harness(ServerSettings(insecure_http=True, token_namespaces=["apps"]))
    admin = harness.admin()
    async with harness.client() as client:
        response = await client.post(
            "/auth/v1/method/token", headers=bearer(admin), json={"name": "x", "namespaceKey": "kube-system"}
        )
        assert response.status == 400
        assert "apps" in (await response.json())["message"]


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ("[1, 2]", "application/json", 400),
        ('"name"', "application/json", 400),
        ("", "application/json", 400),
        (b"\xff\xfe\x00garbage", "application/json", 400),
        ("[" * 20000 + "]" * 20000, "application/json", 400),
        ('{"name": "' + "x" * 70000 + '"}', "application/json", 413),
    ],
)
async def test_broken_requests_are_4xx(data: str | bytes, content_type: str, status: int) -> None:
    harness = Harness()
    admin = harness.admin()
    async with harness.client() as client:
        response = await client.post(
            "/auth/v1/method/token", headers={**bearer(admin), "Content-Type": content_type}, data=data
        )
        assert response.status == status
        assert status_of(await response.json()).code in (3, 8)


async def test_operator_not_issuing_in_time_is_503_and_the_resource_is_removed() -> None:
    harness = Harness()
    harness.store = NeverIssues(harness)
    admin = harness.admin()
    async with harness.client() as client:
        response = await client.post("/auth/v1/method/token", headers=bearer(admin), json=FLIPT_BODY)
        assert response.status == 503
        assert response.headers["Retry-After"]
        assert "no token was created" in (await response.json())["message"]
    assert harness.store.deleted == [("ns", "token-x")]


async def test_token_not_reaching_memory_in_time_is_503_and_the_resource_is_removed() -> None:
    harness = Harness()
    harness.store.propagation_delay = None
    admin = harness.admin()
    async with harness.client() as client:
        response = await client.post("/auth/v1/method/token", headers=bearer(admin), json=FLIPT_BODY)
        assert response.status == 503
        message = (await response.json())["message"]
        assert "did not reach this server" in message
        assert "clientToken" not in await response.text()
    assert len(harness.store.deleted) == 1


async def test_failed_cleanup_names_the_resource_to_delete() -> None:
    harness = Harness()
    harness.store.propagation_delay = None
    harness.store.delete_error = ApiUnavailable("down")
    admin = harness.admin()
    async with harness.client() as client:
        response = await client.post("/auth/v1/method/token", headers=bearer(admin), json=FLIPT_BODY)
        assert response.status == 503
        assert "kubectl delete statictoken" in (await response.json())["message"]


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ApiUnavailable("connection refused"), 503, 14),
        (ApiError(status=422, reason="Invalid", message="spec.metadata: Too many"), 400, 3),
        (ApiError(status=404, reason="NotFound", message='namespaces "x" not found'), 502, 2),
        (ApiError(status=403, reason="Forbidden", message="cannot create"), 502, 13),
    ],
)
async def test_kubernetes_failures_map_to_clear_answers(error: Exception, status: int, code: int) -> None:
    harness = Harness()
    harness.store.create_error = error
    admin = harness.admin()
    async with harness.client() as client:
        response = await client.post("/auth/v1/method/token", headers=bearer(admin), json=FLIPT_BODY)
        assert response.status == status
        answer = status_of(await response.json())
        assert answer.code == code
        assert "StaticToken" in answer.message

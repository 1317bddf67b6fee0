"""POST /auth/v1/method/token: Flipt's documented call, permissions, bad bodies, the token working on this
replica at once (before the operator publishes it) and Kubernetes failures leaving nothing behind."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from server_harness import Harness, bearer

from kubegate.contracts.token_format import hash_token, is_generated_shape
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
        # The operator has published nothing yet: this replica accepts the token all the same.
        digest = bytes.fromhex(hash_token(body["clientToken"]))
        assert harness.index.provisional(digest) is not None
        assert all(e.sha256 != digest.hex() for e in harness.published_entries())
        me = await client.get("/auth/v1/self", headers=bearer(body["clientToken"]))
        assert me.status == 200
        assert (await me.json())["id"] == authentication["id"]
        # ... and still when the published entry supersedes the provisional one.
        await asyncio.sleep(0.2)
        assert harness.index.provisional(digest) is None
        assert any(e.sha256 == digest.hex() for e in harness.published_entries())
        again = await client.get("/auth/v1/self", headers=bearer(body["clientToken"]))
        assert (await again.json())["id"] == authentication["id"]

    (resource,) = harness.store.created
    assert resource["apiVersion"] == "kubegate.dev/v1alpha1"
    assert resource["kind"] == "StaticToken"
    assert re.fullmatch(r"token-[a-z0-9]{10}", resource["metadata"]["name"])
    assert resource["metadata"]["namespace"] == "kubegate-system"
    assert resource["metadata"]["annotations"]["kubegate.dev/requested-by"] == "statictoken:kubegate-system:admin"
    assert resource["spec"]["description"] == "keys to the castle"
    assert "groups" not in resource["spec"]
    # The token is stored as its hash only, and its id is the resource's uid, as the operator publishes it.
    assert resource["spec"]["tokenHash"] == hash_token(body["clientToken"])
    assert body["clientToken"] not in json.dumps(resource)
    (published,) = harness.store.published
    assert published.token_id == authentication["id"]
    assert published.created_at.isoformat().replace("+00:00", "Z") == authentication["createdAt"]


async def test_the_token_has_the_configured_prefix_and_the_generated_shape() -> None:
    harness = Harness(ServerSettings(insecure_http=True, static_token_prefix="acme_"))
    admin = harness.admin()
    async with harness.client() as client:
        first = await (await client.post("/auth/v1/method/token", headers=bearer(admin), json=FLIPT_BODY)).json()
        second = await (await client.post("/auth/v1/method/token", headers=bearer(admin), json=FLIPT_BODY)).json()
    assert first["clientToken"].startswith("acme_")
    assert is_generated_shape(first["clientToken"])
    assert first["clientToken"] != second["clientToken"]
    assert first["authentication"]["id"] != second["authentication"]["id"]


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


def _unpublished(*, wait: float = 1.0) -> tuple[Harness, str]:
    """A server whose operator never publishes, and an admin token for it."""
    harness = Harness(ServerSettings(insecure_http=True, token_wait_timeout=wait))
    harness.store.propagation_delay = None
    return harness, harness.admin()


async def _created(client: aiohttp.ClientSession, admin: str, body: dict[str, Any] = FLIPT_BODY) -> dict[str, Any]:
    response = await client.post("/auth/v1/method/token", headers=bearer(admin), json=body)
    assert response.status == 200, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def test_a_token_the_operator_is_late_to_publish_keeps_working_here_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness, admin = _unpublished(wait=0.2)
    async with harness.client() as client:
        token = (await _created(client, admin))["clientToken"]
        await asyncio.sleep(0.7)  # three checks
        assert (await client.get("/auth/v1/self", headers=bearer(token))).status == 200
        harness.store.exists_error = ApiUnavailable("down")
        await asyncio.sleep(0.3)
        assert (await client.get("/auth/v1/self", headers=bearer(token))).status == 200
    (warning,) = [r for r in caplog.records if "is not in the published validation config" in r.getMessage()]
    assert warning.levelname == "WARNING"
    assert "only this server accepts it" in warning.getMessage()
    assert token not in caplog.text
    assert hash_token(token) not in caplog.text


async def test_a_token_deleted_elsewhere_before_it_was_published_stops_working_here_after_the_wait_timeout() -> None:
    harness, admin = _unpublished(wait=0.2)
    async with harness.client() as client:
        token = (await _created(client, admin))["clientToken"]
        (created,) = harness.store.created
        harness.store.removed_elsewhere.add((created["metadata"]["namespace"], created["metadata"]["name"]))
        assert (await client.get("/auth/v1/self", headers=bearer(token))).status == 200
        await asyncio.sleep(0.4)
        assert (await client.get("/auth/v1/self", headers=bearer(token))).status == 401


async def test_an_expiry_holds_before_the_operator_publishes_the_token() -> None:
    harness, admin = _unpublished()
    soon = datetime.now(UTC) + timedelta(seconds=1)
    async with harness.client() as client:
        token = (await _created(client, admin, {"name": "brief", "expiresAt": soon.isoformat()}))["clientToken"]
        assert (await client.get("/auth/v1/self", headers=bearer(token))).status == 200
        await asyncio.sleep((soon - datetime.now(UTC)).total_seconds() + 0.05)
        assert (await client.get("/auth/v1/self", headers=bearer(token))).status == 401


async def test_deleting_or_expiring_a_token_before_the_operator_publishes_it_works_at_once() -> None:
    harness, admin = _unpublished()
    async with harness.client() as client:
        deleted = await _created(client, admin, {"name": "deleted"})
        expired = await _created(client, admin, {"name": "expired"})
        gone = await client.delete(f"/auth/v1/tokens/{deleted['authentication']['id']}", headers=bearer(admin))
        assert gone.status == 200, await gone.text()
        assert (await client.get("/auth/v1/self", headers=bearer(deleted["clientToken"]))).status == 401
        ended = await client.put("/auth/v1/self/expire", headers=bearer(expired["clientToken"]))
        assert ended.status == 200, await ended.text()
        assert (await client.get("/auth/v1/self", headers=bearer(expired["clientToken"]))).status == 401
    assert len(harness.store.deleted) == 1
    assert len(harness.store.expired) == 1


async def test_a_created_token_is_listed_and_read_by_id_at_once() -> None:
    harness, admin = _unpublished()
    async with harness.client() as client:
        body = await _created(client, admin)
        token_id = body["authentication"]["id"]
        listed = await (await client.get("/auth/v1/tokens", headers=bearer(admin))).json()
        assert token_id in [a["id"] for a in listed["authentications"]]
        read = await client.get(f"/auth/v1/tokens/{token_id}", headers=bearer(admin))
        assert (await read.json()) == body["authentication"]


async def test_an_unreachable_api_is_503_and_the_maybe_created_resource_is_deleted() -> None:
    harness = Harness()
    harness.store.create_error = ApiUnavailable("timed out reading the answer")
    admin = harness.admin()
    async with harness.client() as client:
        response = await client.post("/auth/v1/method/token", headers=bearer(admin), json=FLIPT_BODY)
        assert response.status == 503
        assert response.headers["Retry-After"]
        text = await response.text()
        assert "no token was created" in text
        assert "clientToken" not in text
    (created,) = harness.store.created
    assert harness.store.deleted == [(created["metadata"]["namespace"], created["metadata"]["name"])]
    assert len(harness.index) == 1  # the admin's token only


async def test_failed_cleanup_names_the_resource_to_delete() -> None:
    harness = Harness()
    harness.store.create_error = ApiUnavailable("down")
    harness.store.delete_error = ApiUnavailable("down")
    admin = harness.admin()
    async with harness.client() as client:
        response = await client.post("/auth/v1/method/token", headers=bearer(admin), json=FLIPT_BODY)
        assert response.status == 503
        message = (await response.json())["message"]
    name = harness.store.created[0]["metadata"]["name"]
    assert f"kubectl delete statictoken -n kubegate-system {name}" in message


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

"""GET /auth/v1/tokens (paged), GET and DELETE /auth/v1/tokens/{id}."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from server_harness import Harness, bearer

from kubegate.kube import ApiUnavailable
from kubegate.settings import ServerSettings
from support.flipt import status_of


async def test_list_pages_through_every_valid_token_in_id_order() -> None:
    harness = Harness()
    admin = harness.admin()
    for i in range(7):
        harness.add_token(f"app-{i}")
    harness.add_token("expired", expires_at=datetime.now(UTC) - timedelta(minutes=1))
    seen: list[str] = []
    async with harness.client() as client:
        page_token = ""
        for _ in range(10):
            response = await client.get(
                "/auth/v1/tokens", headers=bearer(admin), params={"limit": "3", "pageToken": page_token}
            )
            assert response.status == 200
            body = await response.json()
            assert len(body["authentications"]) <= 3
            seen += [a["id"] for a in body["authentications"]]
            page_token = body["nextPageToken"]
            if not page_token:
                break
    assert len(seen) == 8  # 7 apps and the admin; never the expired one
    assert seen == sorted(seen)
    names = {harness.index.by_id(i).name for i in seen}  # type: ignore[union-attr]
    assert "expired" not in names


async def test_list_needs_a_lister_group() -> None:
    harness = Harness()
    token, _ = harness.add_token("someone")
    async with harness.client() as client:
        response = await client.get("/auth/v1/tokens", headers=bearer(token))
        assert response.status == 403
        assert "listing tokens" in (await response.json())["message"]


async def test_list_filters_by_method_and_checks_parameters() -> None:
    harness = Harness()
    admin = harness.admin()
    async with harness.client() as client:
        only_oidc = await client.get("/auth/v1/tokens?method=METHOD_OIDC", headers=bearer(admin))
        assert (await only_oidc.json()) == {"authentications": [], "nextPageToken": ""}
        for query, field in [
            ("limit=abc", "limit"),
            ("limit=-1", "limit"),
            ("limit=%C2%B2", "limit"),  # a digit to str.isdigit, not to int()
            ("method=METHOD_X", "method"),
            ("pageToken=garbage", "pageToken"),
            ("pageToken=%FF", "pageToken"),
        ]:
            response = await client.get(f"/auth/v1/tokens?{query}", headers=bearer(admin))
            assert response.status == 400, query
            assert status_of(await response.json()).fields == [field]


async def test_list_takes_the_query_flipts_sdk_always_sends() -> None:
    """Flipt's Go SDK sends `method=METHOD_NONE&limit=0&pageToken=` when the caller sets nothing: every
    method, the default page of 25, the first page."""
    harness = Harness()
    admin = harness.admin()
    for i in range(104):
        harness.add_token(f"app-{i}")
    async with harness.client() as client:

        async def page(query: str) -> dict[str, Any]:
            response = await client.get(f"/auth/v1/tokens?{query}", headers=bearer(admin))
            assert response.status == 200, await response.text()
            body: dict[str, Any] = await response.json()
            return body

        first = await page("method=METHOD_NONE&limit=0&pageToken=")
        assert len(first["authentications"]) == 25
        assert first["nextPageToken"]
        assert len((await page(""))["authentications"]) == 25
        assert len((await page("limit=7"))["authentications"]) == 7
        assert len((await page("limit=1000"))["authentications"]) == 100  # cut to the maximum, as Flipt does
        assert len((await page("limit=" + "9" * 5000))["authentications"]) == 100
        assert len((await page("method=METHOD_TOKEN&limit=0"))["authentications"]) == 25
        assert (await page("method=METHOD_KUBERNETES&limit=0")) == {"authentications": [], "nextPageToken": ""}
        rest = await page(f"method=METHOD_NONE&limit=100&pageToken={first['nextPageToken']}")
        assert len(rest["authentications"]) == 80  # 105 tokens with the admin's
        assert rest["nextPageToken"] == ""


async def test_a_caller_reads_itself_but_needs_a_group_for_others() -> None:
    harness = Harness()
    token, entry = harness.add_token("me")
    _, other = harness.add_token("other")
    admin = harness.admin()
    async with harness.client() as client:
        assert (await client.get(f"/auth/v1/tokens/{entry.token_id}", headers=bearer(token))).status == 200
        assert (await client.get(f"/auth/v1/tokens/{other.token_id}", headers=bearer(token))).status == 403
        response = await client.get(f"/auth/v1/tokens/{other.token_id}", headers=bearer(admin))
        assert (await response.json())["identity"]["username"] == "statictoken:team:other"
        assert (await client.get("/auth/v1/tokens/no-such-id", headers=bearer(admin))).status == 404


async def test_a_token_in_place_of_an_id_is_not_repeated(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    harness = Harness()
    admin = harness.admin()
    pasted, _ = harness.add_token("pasted")
    async with harness.client() as client:
        for caller in (admin, pasted):
            response = await client.get(f"/auth/v1/tokens/{pasted}", headers=bearer(caller))
            assert response.status in (403, 404)
            assert pasted not in await response.text()
        response = await client.get(f"/auth/v1/tokens/{pasted}", headers=bearer(admin))
        assert response.status == 404
        assert "a token id is a UUID" in status_of(await response.json()).message
    assert pasted not in logged(caplog)


@pytest.mark.parametrize("pasted", ["kg_" + "A" * 43 + "=", "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ4In0.c2ln", "x"])
async def test_deleting_a_token_in_place_of_an_id_stores_and_logs_nothing(
    pasted: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With the deny-list on, an id that is no static token's is taken for a client token's and revoked:
    but only an id of an id's shape."""
    caplog.set_level(logging.DEBUG)
    harness = Harness()
    configmaps = harness.enable_revocations()
    admin = harness.admin()
    async with harness.client() as client:
        response = await client.delete(f"/auth/v1/tokens/{pasted}", headers=bearer(admin))
        assert response.status == 404
        assert status_of(await response.json()).code == 5
        assert pasted not in await response.text()
    assert configmaps.object is None
    assert pasted not in logged(caplog)


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """What kubegate logged. The test server's access log is aiohttp's, with the raw path; `kubegate server`
    replaces it with one that writes the route template (see test_server_access_log)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")


async def test_deleting_an_unknown_id_of_an_ids_shape_revokes_it_as_a_client_tokens() -> None:
    harness = Harness()
    configmaps = harness.enable_revocations()
    admin = harness.admin()
    client_token_id = str(uuid.uuid4())
    async with harness.client() as client:
        response = await client.delete(f"/auth/v1/tokens/{client_token_id}", headers=bearer(admin))
        assert response.status == 200
    assert configmaps.object is not None
    assert client_token_id in configmaps.object["data"]["revoked.json"]


async def test_delete_removes_the_statictoken_and_answers_once_the_token_is_refused() -> None:
    harness = Harness()
    harness.store.propagation_delay = 0.2
    admin = harness.admin()
    token, entry = harness.add_token("doomed", namespace="apps")
    async with harness.client() as client:
        response = await client.delete(f"/auth/v1/tokens/{entry.token_id}", headers=bearer(admin))
        assert response.status == 200
        assert await response.json() == {}
        assert (await client.get("/auth/v1/self", headers=bearer(token))).status == 401
        assert (await client.delete(f"/auth/v1/tokens/{entry.token_id}", headers=bearer(admin))).status == 404
    assert harness.store.deleted == [("apps", "doomed")]


async def test_delete_needs_a_deleter_group() -> None:
    harness = Harness(ServerSettings(insecure_http=True, delete_token_groups=["cleaners"]))
    admin = harness.admin()
    _, entry = harness.add_token("victim")
    async with harness.client() as client:
        response = await client.delete(f"/auth/v1/tokens/{entry.token_id}", headers=bearer(admin))
        assert response.status == 403
        assert "cleaners" in (await response.json())["message"]
    assert harness.store.deleted == []


async def test_delete_that_does_not_arrive_in_time_is_503_and_says_what_happened() -> None:
    harness = Harness()
    harness.store.propagation_delay = None
    admin = harness.admin()
    _, entry = harness.add_token("slow")
    async with harness.client() as client:
        response = await client.delete(f"/auth/v1/tokens/{entry.token_id}", headers=bearer(admin))
        assert response.status == 503
        assert "was deleted, but this server still accepts" in (await response.json())["message"]


async def test_delete_while_the_api_is_down_is_503() -> None:
    harness = Harness()
    harness.store.delete_error = ApiUnavailable("no route to host")
    admin = harness.admin()
    token, entry = harness.add_token("survivor")
    async with harness.client() as client:
        response = await client.delete(f"/auth/v1/tokens/{entry.token_id}", headers=bearer(admin))
        assert response.status == 503
        assert response.headers["Retry-After"]
        assert (await client.get("/auth/v1/self", headers=bearer(token))).status == 200

"""Flipt's documented token flow against `kubegate server` and `kubegate operator` on a real control plane:
bootstrap token -> create a token -> use it -> list -> delete -> refused. A token created through the API
is shown once and stored as its hash only, as in Flipt: no Secret, and its plaintext nowhere in the cluster
or the logs."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from kubegate.contracts.token_format import hash_token
from kubegate.devcluster import Kubectl
from kubegate.devcluster.processes import Child, bootstrap_token
from support import eventually
from support.flipt import status_of
from support.processes import ServerProcess

pytestmark = pytest.mark.integration


async def test_flipt_documented_flow(server: ServerProcess, operator: Child, kubectl: Kubectl, namespace: str) -> None:
    await asyncio.to_thread(server.wait_ready)
    bootstrap = bootstrap_token(operator.log_file)
    admin = {"Authorization": f"Bearer {bootstrap}"}
    async with aiohttp.ClientSession(base_url=server.url) as http:
        # The bootstrap token reaches the server through the validation config.
        deadline = time.monotonic() + 30
        while (await http.get("/auth/v1/self", headers=admin)).status != 200:
            assert time.monotonic() < deadline, "the bootstrap token never became valid"
            await _pause()

        # A bad body is a 400 naming the field, and creates nothing.
        bad = await http.post("/auth/v1/method/token", headers=admin, json={"name": "", "expiresAt": "soon"})
        assert bad.status == 400
        assert {"name", "expiresAt"} <= set(status_of(await bad.json()).fields)
        assert kubectl.json("get", "statictokens", "-n", namespace, "-l", "kubegate.dev/created-by")["items"] == []

        # The call from Flipt's documentation, with only the host changed.
        started = time.monotonic()
        created = await http.post(
            "/auth/v1/method/token",
            headers={**admin, "Content-Type": "application/json"},
            data='{"name":"access_all_areas","description":"keys to the castle"}',
        )
        assert created.status == 200, await created.text()
        body = await created.json()
        print(f"POST /auth/v1/method/token answered in {time.monotonic() - started:.2f}s")
        token, authentication = body["clientToken"], body["authentication"]
        assert authentication["method"] == "METHOD_TOKEN"
        assert authentication["metadata"]["io.kubegate.auth.token.name"] == "access_all_areas"

        # Use it: valid at once, on the very answer.
        me = await http.get("/auth/v1/self", headers={"Authorization": f"Bearer {token}"})
        assert me.status == 200
        assert (await me.json())["id"] == authentication["id"]

        # kubectl sees the StaticToken, Ready, its token id being its uid; it holds the hash, and no Secret exists.
        def ready() -> dict[str, Any] | None:
            for item in kubectl.json("get", "statictokens", "-n", namespace)["items"]:
                conditions = (item.get("status") or {}).get("conditions") or []
                if item["metadata"]["uid"] == authentication["id"] and any(
                    c["type"] == "Ready" and c["status"] == "True" for c in conditions
                ):
                    return dict(item)
            return None

        resource = await asyncio.to_thread(eventually, ready, timeout=30, what="the StaticToken to be Ready")
        assert resource["status"]["tokenId"] == authentication["id"]
        assert "secretName" not in resource["status"]
        assert resource["metadata"]["name"].startswith("token-")
        assert resource["spec"]["description"] == "keys to the castle"
        assert resource["spec"]["tokenHash"] == hash_token(token)
        assert resource["metadata"]["annotations"]["kubegate.dev/requested-by"].endswith(":initial-bootstrap-token")
        secrets = kubectl.json("get", "secrets", "-n", namespace)["items"]
        assert not [s for s in secrets if s["metadata"]["name"] == resource["metadata"]["name"]]
        assert not [
            s
            for s in secrets
            if any(o.get("uid") == authentication["id"] for o in s["metadata"].get("ownerReferences") or [])
        ]
        # The plaintext is in the response and nowhere else: not in any object of the namespace (the
        # resource, its status, Events, Secrets), nor in a log.
        everything = kubectl("get", "statictokens,secrets,events,configmaps", "-n", namespace, "-o", "json").stdout
        assert token not in everything
        assert token not in server.process.log()
        assert token not in operator.log_file.read_text()

        # List: the bootstrap token and the new one.
        listed = await (await http.get("/auth/v1/tokens", headers=admin)).json()
        ids = {a["id"] for a in listed["authentications"]}
        assert authentication["id"] in ids
        assert len(ids) == 2
        # The new token has no groups: it may not list or create.
        assert (await http.get("/auth/v1/tokens", headers={"Authorization": f"Bearer {token}"})).status == 403

        # Delete: answered once refused, and the StaticToken goes.
        deleted = await http.delete(f"/auth/v1/tokens/{authentication['id']}", headers=admin)
        assert deleted.status == 200, await deleted.text()
        refused = await http.get("/auth/v1/self", headers={"Authorization": f"Bearer {token}"})
        assert refused.status == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        name = resource["metadata"]["name"]
        eventually(
            lambda: kubectl("get", "statictoken", name, "-n", namespace, check=False).returncode != 0,
            timeout=30,
            what=f"StaticToken {name} to be gone",
        )


async def test_expire_self_on_a_real_cluster(
    server: ServerProcess, operator: Child, kubectl: Kubectl, namespace: str
) -> None:
    await asyncio.to_thread(server.wait_ready)
    admin = {"Authorization": f"Bearer {bootstrap_token(operator.log_file)}"}
    async with aiohttp.ClientSession(base_url=server.url) as http:
        deadline = time.monotonic() + 30
        while (await http.get("/auth/v1/self", headers=admin)).status != 200:
            assert time.monotonic() < deadline
            await _pause()
        created = await (await http.post("/auth/v1/method/token", headers=admin, json={"name": "short-lived"})).json()
        mine = {"Authorization": f"Bearer {created['clientToken']}"}
        expired = await http.put("/auth/v1/self/expire", headers=mine)
        assert expired.status == 200, await expired.text()
        assert (await http.get("/auth/v1/self", headers=mine)).status == 401
    resources = kubectl.json("get", "statictokens", "-n", namespace)["items"]
    (resource,) = [r for r in resources if r["metadata"]["uid"] == created["authentication"]["id"]]
    assert resource["spec"]["expiresAt"]

    def expired() -> bool:
        item = kubectl.json("get", "statictoken", resource["metadata"]["name"], "-n", namespace)
        ready = next((c for c in (item.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})
        return (ready.get("status"), ready.get("reason")) == ("False", "Expired")

    eventually(expired, timeout=30, what="the StaticToken to show Expired")


async def test_flipts_sdk_calls_on_a_real_cluster(
    server: ServerProcess, operator: Child, kubectl: Kubectl, namespace: str
) -> None:
    """The requests Flipt's Go SDK makes, byte for byte where it matters: the list query it always sends,
    a create without a content type, the expiry in the query; and its strict reading of errors."""
    await asyncio.to_thread(server.wait_ready)
    admin = {"Authorization": f"Bearer {bootstrap_token(operator.log_file)}"}
    async with aiohttp.ClientSession(base_url=server.url) as http:
        deadline = time.monotonic() + 30
        while (await http.get("/auth/v1/self", headers=admin)).status != 200:
            assert time.monotonic() < deadline
            await _pause()
        listed = await http.get("/auth/v1/tokens?method=METHOD_NONE&limit=0&pageToken=", headers=admin)
        assert listed.status == 200, await listed.text()
        assert len((await listed.json())["authentications"]) == 1  # the bootstrap token

        created = await http.post(
            "/auth/v1/method/token",
            headers=admin,
            data=b'{"name":"sdk","description":"from the Go SDK"}',
            skip_auto_headers=("Content-Type",),
        )
        assert created.status == 200, await created.text()
        body = await created.json()
        token, token_id = body["clientToken"], body["authentication"]["id"]
        mine = {"Authorization": f"Bearer {token}"}

        later = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
        expired = await http.put(
            "/auth/v1/self/expire", headers=mine, params={"expiresAt": later.isoformat().replace("+00:00", "Z")}
        )
        assert expired.status == 200, await expired.text()
        me = await http.get("/auth/v1/self", headers=mine)
        assert me.status == 200
        assert datetime.fromisoformat((await me.json())["expiresAt"]) == later

        # The token itself where its id belongs: not repeated, not revoked, not logged.
        for method in ("GET", "DELETE"):
            answer = await http.request(method, f"/auth/v1/tokens/{token}", headers=admin)
            assert answer.status == 404
            assert token not in await answer.text()
            assert status_of(await answer.json()).code == 5
        assert (await http.get("/auth/v1/self", headers=mine)).status == 200

        refused = await http.get("/auth/v1/self")
        assert refused.status == 401
        assert status_of(await refused.json()).code == 16
    resources = kubectl.json("get", "statictokens", "-n", namespace)["items"]
    (resource,) = [r for r in resources if r["metadata"]["uid"] == token_id]
    assert resource["spec"]["expiresAt"] == later.isoformat().replace("+00:00", "Z")
    assert token not in server.process.log()


async def _pause() -> None:
    await asyncio.sleep(0.2)

"""The operator keeps the signing-key Secret itself: kopf never sees it, old kopf annotations are removed."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from kubegate.client_tokens import keys
from kubegate.kube import NotFound, WatchEvent
from kubegate.operator import app
from kubegate.operator.signing_keys import SigningKeyKeeper, SigningKeyManager
from kubegate.settings import OperatorSettings

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NAMESPACE = "kubegate-system"


class FakeSecrets:
    """Just enough of KubeClient for the key Secret: get, create, replace, and a watch fed by a queue."""

    def __init__(self) -> None:
        self.secret: dict[str, Any] | None = None
        self.writes = 0
        self.events: asyncio.Queue[WatchEvent] = asyncio.Queue()

    async def get(self, path: str, **_: str) -> dict[str, Any]:
        if self.secret is None:
            raise NotFound(status=404, reason="NotFound", message="secrets not found")
        return copy.deepcopy(self.secret)

    async def create(self, path: str, body: dict[str, Any], **_: str) -> dict[str, Any]:
        self.writes += 1
        self.secret = {**copy.deepcopy(body), "metadata": {**body["metadata"], "resourceVersion": str(self.writes)}}
        return copy.deepcopy(self.secret)

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.create(path, body)

    async def list_all(self, path: str, **_: Any) -> tuple[list[dict[str, Any]], str]:
        return ([copy.deepcopy(self.secret)] if self.secret else []), "1"

    async def watch(self, path: str, **_: Any) -> AsyncIterator[WatchEvent]:
        while True:
            yield await self.events.get()


def _manager(client: FakeSecrets) -> SigningKeyManager:
    settings = OperatorSettings(operator_namespace=NAMESPACE)
    return SigningKeyManager(client=client, settings=settings, clock=lambda: NOW)  # type: ignore[arg-type]


async def test_reconcile_removes_the_annotations_an_earlier_kopf_left_on_the_secret() -> None:
    client = FakeSecrets()
    manager = _manager(client)
    await manager.ensure()
    assert client.secret is not None
    private = client.secret["data"][keys.DATA_KEY]
    client.secret["metadata"]["annotations"] = {
        "kopf.kubegate.dev/last-handled-configuration": f'{{"data": {{"keys.json": "{private}"}}}}',
        "kopf.kubegate.dev/signing-keys": '{"started": "2026-01-01T00:00:00"}',
        "team.example/owner": "platform",
    }
    await manager.reconcile()
    assert client.secret["metadata"]["annotations"] == {"team.example/owner": "platform"}
    assert client.secret["data"][keys.DATA_KEY] == private  # the keys themselves are untouched
    writes = client.writes
    await manager.reconcile()
    assert client.writes == writes  # nothing left to clean: no write


async def test_the_keeper_rotates_when_the_secret_gets_a_rotate_annotation() -> None:
    client = FakeSecrets()
    manager = _manager(client)
    await manager.ensure()
    keeper = SigningKeyKeeper(manager=manager, client=client, namespace=NAMESPACE, interval=3600)  # type: ignore[arg-type]
    task = asyncio.create_task(keeper.run())
    try:
        assert client.secret is not None
        client.secret["metadata"]["annotations"] = {"kubegate.dev/rotate": "1"}
        await client.events.put(WatchEvent(type="MODIFIED", object=copy.deepcopy(client.secret)))
        for _ in range(200):
            if len(keys.decode(client.secret["data"][keys.DATA_KEY]).keys) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(keys.decode(client.secret["data"][keys.DATA_KEY]).keys) == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_kopf_handles_no_secret() -> None:
    """kopf logs the bodies it handles at DEBUG and copies them into an annotation: never a Secret's."""
    operator = app.Operator(settings=OperatorSettings(), client=FakeSecrets())  # type: ignore[arg-type]
    registry = operator.registry_for_kopf()
    selectors = {
        (selector.group, selector.plural or selector.any_name)
        for resource_registry in (registry._changing, registry._spawning, registry._watching, registry._indexing)
        for selector in resource_registry.get_all_selectors()
    }
    assert ("kubegate.dev", "oidcproviders") in selectors
    assert all(name != "secrets" for _, name in selectors), selectors

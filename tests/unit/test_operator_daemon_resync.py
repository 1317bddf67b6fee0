"""The per-token daemon catches what kopf's handlers missed: a token no handler reached, and a resync."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from fake_daemon import Stop
from fake_kube import FakeKube

from kubegate.operator import app
from kubegate.resources.statictoken import StaticToken
from kubegate.settings import OperatorSettings

NS, OPS = "apps", "kubegate-system"


def _ready(kube: FakeKube, name: str) -> bool:
    obj = kube.objects[StaticToken.path(namespace=NS, name=name)]
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions", []))


@contextlib.asynccontextmanager
async def _daemon(kube: FakeKube, settings: OperatorSettings) -> AsyncIterator[None]:
    """The daemon of StaticToken `a`, with no handler running (as when kopf skips them)."""
    operator = app.Operator(settings=settings, client=cast(Any, kube))
    await operator.writer.start()
    stop = Stop()
    daemon = asyncio.create_task(operator.clock(namespace=NS, name="a", stopped=stop))
    try:
        yield
    finally:
        stop.set()
        await daemon
        await operator.writer.stop()


async def _ready_within(kube: FakeKube, seconds: float) -> bool:
    for _ in range(int(seconds * 10)):
        if _ready(kube, "a"):
            return True
        await asyncio.sleep(0.1)
    return _ready(kube, "a")


def _kube_with_token() -> FakeKube:
    kube = FakeKube()
    kube.objects[StaticToken.path(namespace=NS, name="a")] = {
        "apiVersion": "kubegate.dev/v1alpha1",
        "kind": "StaticToken",
        "metadata": {"name": "a", "namespace": NS, "uid": "uid-a", "generation": 1},
        "spec": {},
    }
    return kube


SETTINGS = OperatorSettings(operator_namespace=OPS, namespaces=[NS], config_shards=2, config_write_delay=0)


async def test_a_token_no_handler_reconciled_is_reconciled_by_its_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    """As when kopf's finalizer patch failed its version check: the daemon runs, the handlers never do."""
    monkeypatch.setattr(app, "FIRST_RECONCILE_GRACE", 0.2, raising=False)
    kube = _kube_with_token()
    async with _daemon(kube, SETTINGS):
        assert await _ready_within(kube, 3.0)


async def test_the_resync_finds_what_changed_without_an_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "FIRST_RECONCILE_GRACE", 0.2, raising=False)
    kube = _kube_with_token()
    async with _daemon(kube, SETTINGS.model_copy(update={"resync_interval": "1s"})):
        assert await _ready_within(kube, 3.0)
        # The status is lost (someone replaced it) and no event reaches the operator.
        del kube.objects[StaticToken.path(namespace=NS, name="a")]["status"]
        assert await _ready_within(kube, 3.0), "not reconciled within the resync interval"

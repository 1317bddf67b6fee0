"""The per-OIDCProvider daemon: it reconciles a provider no handler reached, and tries an unreachable issuer
again after a backoff (not after the hour-long refresh interval), so a provider that comes back is Ready
again by itself."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from fake_daemon import Stop
from fake_kube import FakeKube
from test_oidcprovider_reconcile import ISSUER, FakeIssuer

from kubegate.operator import app, oidcprovider_watch
from kubegate.operator.events import EventPoster
from kubegate.operator.oidcprovider import ProviderReconciler
from kubegate.resources.oidcprovider import OIDCProvider
from kubegate.settings import OperatorSettings


def _reason(kube: FakeKube) -> str | None:
    status = kube.objects[OIDCProvider.path(name="idp")].get("status") or {}
    return next((c["reason"] for c in status.get("conditions", []) if c["type"] == "Ready"), None)


async def _reason_within(kube: FakeKube, reason: str, seconds: float) -> bool:
    for _ in range(int(seconds * 20)):
        if _reason(kube) == reason:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_the_daemon_reconciles_and_retries_an_unreachable_issuer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "FIRST_RECONCILE_GRACE", 0.1)
    monkeypatch.setattr(oidcprovider_watch, "FIRST_BACKOFF", 0.2)
    monkeypatch.setattr(oidcprovider_watch, "SOONEST", 0.1)
    kube = FakeKube()
    issuer = FakeIssuer()
    issuer.down = True
    settings = OperatorSettings(operator_namespace="kubegate-system")
    operator = app.Operator(settings=settings, client=cast(Any, kube))
    operator.providers = ProviderReconciler(client=kube, http=issuer, settings=settings, events=EventPoster(kube))
    kube.put(
        OIDCProvider.path(name="idp"),
        {
            "apiVersion": OIDCProvider.api_version,
            "kind": OIDCProvider.kind,
            "metadata": {"name": "idp", "uid": "uid-idp", "generation": 1},
            "spec": {"issuerURL": ISSUER},
        },
    )
    stop = Stop()
    daemon = asyncio.create_task(operator.provider_daemon(name="idp", stopped=stop))
    try:
        assert await _reason_within(kube, "DiscoveryFailed", 2), "no handler ran: the daemon must reconcile"
        issuer.down = False
        assert await _reason_within(kube, "ProviderReady", 3), "the daemon must try again after a backoff"
    finally:
        stop.set()
        await daemon
    await operator.provider_http.close()

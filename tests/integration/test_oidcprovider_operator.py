"""OIDCProvider reconciliation on a real control plane, with the real operator process and a real Dex (HTTPS on
loopback, its own CA given as spec.caBundle): what `kubectl get oidcprovider` and the servers' Secret show."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubegate.devcluster import ClusterState, Kubectl
from kubegate.devcluster.dex import KUBEGATE_CLIENT, DexServer
from kubegate.validation_config.providers import DATA_KEY, ProviderConfig, decode, secret_name
from support import eventually
from support.kube import apply, condition
from support.processes import operator

pytestmark = pytest.mark.integration


@dataclass
class Env:
    kubectl: Kubectl
    operator_namespace: str
    names: list[str]

    def provider(self, name: str, **spec: Any) -> None:
        self.names.append(name)
        body = {"apiVersion": "kubegate.dev/v1alpha1", "kind": "OIDCProvider", "metadata": {"name": name}, "spec": spec}
        apply(self.kubectl, body)

    def get(self, name: str) -> dict[str, Any]:
        return dict(self.kubectl.json("get", "oidcprovider", name))

    def published(self, name: str) -> ProviderConfig | None:
        found = self.kubectl.json(
            "get", "secrets", "-n", self.operator_namespace, "--field-selector", f"metadata.name={secret_name(name)}"
        )["items"]
        return decode(found[0]["data"][DATA_KEY]) if found else None

    def wait_reason(self, name: str, reason: str, *, timeout: float = 30) -> dict[str, Any]:
        """The provider once its Ready condition has `reason` (for its current generation)."""

        def check() -> dict[str, Any] | None:
            obj = self.get(name)
            ready = condition(obj)
            current = obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"]
            return obj if current and ready.get("reason") == reason else None

        return eventually(check, timeout=timeout, what=f"OIDCProvider {name} with Ready reason {reason}")

    def refresh(self, name: str) -> None:
        self.kubectl("annotate", "--overwrite", "oidcprovider", name, f"kubegate.dev/refresh={uuid.uuid4().hex}")


@pytest.fixture
def env(dev_cluster: ClusterState, kubectl: Kubectl, operator_namespace: str, tmp_path: Path) -> Iterator[Env]:
    """An operator of its own; the providers a test created are deleted while it still runs (its finalizer)."""
    created: list[str] = []
    with operator(
        kubeconfig=dev_cluster.kubeconfig,
        log_file=tmp_path / "operator.log",
        operator_namespace=operator_namespace,
        namespaces=[operator_namespace],
        extra=["--provider-keys-max-age", "1h"],
    ):
        yield Env(kubectl, operator_namespace, created)
        for name in created:
            kubectl("delete", "oidcprovider", name, "--ignore-not-found", "--timeout=30s")
    log = (tmp_path / "operator.log").read_text()
    assert KUBEGATE_CLIENT.secret not in log


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _kids(dex: DexServer) -> list[str]:
    return sorted(k["kid"] for k in dex.jwks()["keys"])


def test_missing_client_secret_then_ready_with_keys_published(env: Env, dex_fresh: DexServer) -> None:
    name = _name("dex")
    env.provider(
        name,
        issuerURL=dex_fresh.issuer,
        clientID=KUBEGATE_CLIENT.client_id,
        clientSecretRef={"namespace": env.operator_namespace, "name": f"{name}-client", "key": "secret"},
        caBundle=dex_fresh.ca_bundle_base64,
        introspection=True,
    )
    stalled = env.wait_reason(name, "SecretNotFound")
    assert condition(stalled, "Stalled")["status"] == "True"
    assert f"{env.operator_namespace}/{name}-client" in condition(stalled)["message"]
    assert "'secret'" in condition(stalled)["message"]
    assert env.published(name) is None

    env.kubectl(
        "create", "secret", "generic", f"{name}-client", "-n", env.operator_namespace,
        f"--from-literal=secret={KUBEGATE_CLIENT.secret}",
    )  # fmt: skip
    started = time.monotonic()
    ready = env.wait_reason(name, "ProviderReady", timeout=15)
    assert time.monotonic() - started < 10, "creating the Secret should be noticed within seconds"
    assert "Stalled" not in {c["type"] for c in ready["status"]["conditions"]}
    status = ready["status"]
    assert sorted(status["keyIDs"]) == _kids(dex_fresh)
    assert status["keyCount"] == len(status["keyIDs"]) >= 1
    assert status["endpoints"]["jwksURI"].startswith(dex_fresh.issuer)
    assert status["endpoints"]["introspectionEndpoint"] == f"{dex_fresh.issuer}/token/introspect"
    assert status["lastRefreshTime"]

    config = env.published(name)
    assert config is not None
    assert config.issuer == dex_fresh.issuer
    assert sorted(k["kid"] for k in config.jwks["keys"]) == _kids(dex_fresh)
    assert config.algorithms == ("RS256",)
    assert config.client_secret == KUBEGATE_CLIENT.secret
    assert config.ca_bundle == dex_fresh.ca_pem
    assert config.introspection is True
    printed = env.kubectl("get", "oidcprovider", name).stdout
    assert dex_fresh.issuer in printed
    assert "True" in printed
    assert KUBEGATE_CLIENT.secret not in json.dumps(ready)

    # The Secret goes: the provider stalls again, and nothing stays published.
    env.kubectl("delete", "secret", f"{name}-client", "-n", env.operator_namespace)
    env.wait_reason(name, "SecretNotFound", timeout=15)
    assert env.published(name) is None


def test_refresh_restart_and_outage(env: Env, dex_fresh: DexServer) -> None:
    name = _name("dex")
    env.provider(name, issuerURL=dex_fresh.issuer, caBundle=dex_fresh.ca_bundle_base64)
    first = env.wait_reason(name, "ProviderReady")["status"]
    old_kids = _kids(dex_fresh)

    # A new value of the refresh annotation reads the issuer again.
    time.sleep(1.1)  # lastRefreshTime has a resolution of one second
    env.refresh(name)
    eventually(
        lambda: env.get(name)["status"]["lastRefreshTime"] != first["lastRefreshTime"],
        timeout=15,
        what="a new lastRefreshTime after the refresh annotation",
    )

    # Memory storage: a restarted Dex signs with new keys, which a refresh publishes.
    dex_fresh.restart()
    new_kids = _kids(dex_fresh)
    assert not set(new_kids) & set(old_kids)
    env.refresh(name)
    eventually(
        lambda: sorted(env.get(name)["status"].get("keyIDs") or []) == new_kids,
        timeout=15,
        what="the restarted Dex's key ids in status",
    )
    config = env.published(name)
    assert config is not None
    assert sorted(k["kid"] for k in config.jwks["keys"]) == new_kids

    # Dex stops: not ready, not stalled, and the last keys stay published.
    dex_fresh.stop()
    env.refresh(name)
    failed = env.wait_reason(name, "DiscoveryFailed")
    types = {c["type"]: c for c in failed["status"]["conditions"]}
    assert "Stalled" not in types
    assert types["KeysPublished"]["status"] == "True"
    assert types["KeysPublished"]["reason"] == "KeysKept"
    assert "stay published until" in types["Ready"]["message"]
    assert failed["status"]["keyCount"] == len(new_kids)
    config = env.published(name)
    assert config is not None
    assert sorted(k["kid"] for k in config.jwks["keys"]) == new_kids


def test_wrong_issuer_url_stalls_with_issuer_mismatch(env: Env, dex_fresh: DexServer) -> None:
    # A Dex of its own: a provider another test left for the shared Dex's issuer would make this one a
    # DuplicateIssuer.
    dex = dex_fresh
    name = _name("dex-slash")
    # The same discovery document is served below the URL with a trailing slash, but tokens carry the issuer
    # without it: the provider must not be trusted under that name.
    env.provider(name, issuerURL=dex.issuer + "/", caBundle=dex.ca_bundle_base64)
    stalled = env.wait_reason(name, "IssuerMismatch")
    assert condition(stalled, "Stalled")["status"] == "True"
    assert f"set spec.issuerURL to exactly {dex.issuer!r}" in condition(stalled)["message"]
    assert env.published(name) is None
    assert stalled["status"]["keyCount"] == 0
    reasons = [
        e["reason"]
        for e in env.kubectl.json("get", "events", "-n", "default", "--field-selector", f"involvedObject.name={name}")[
            "items"
        ]
    ]
    assert "IssuerMismatch" in reasons

    # Fixed: it becomes ready.
    env.kubectl("patch", "oidcprovider", name, "--type=merge", "-p", json.dumps({"spec": {"issuerURL": dex.issuer}}))
    env.wait_reason(name, "ProviderReady")
    assert env.published(name) is not None

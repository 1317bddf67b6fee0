"""manifests/ builds with kustomize and every object passes the real API server's validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubegate.devcluster import Kubectl

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_manifests_build_and_pass_server_side_validation(kubectl: Kubectl, crds: list[str]) -> None:
    if kubectl("get", "namespace", "kubegate-system", check=False).returncode != 0:
        kubectl("create", "namespace", "kubegate-system")
    built = kubectl("kustomize", str(ROOT / "manifests")).stdout
    for kind in ("Deployment", "ClusterRole", "Service", "ServiceAccount"):
        assert f"kind: {kind}" in built
    assert "resources:\n  - leases" in built  # the replicas elect their leader with a Lease
    assert "kopf.dev" not in built  # kopf's peering resources are gone
    result = kubectl("apply", "--dry-run=server", "-k", str(ROOT / "manifests"))
    assert "deployment.apps/kubegate-operator created (server dry run)" in result.stdout
    assert "deployment.apps/kubegate-server created (server dry run)" in result.stdout

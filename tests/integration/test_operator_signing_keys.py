"""The client-token signing keys: created at start-up, rotated on demand, old keys kept published."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from kubegate.client_tokens import keys
from kubegate.devcluster import ClusterState, Kubectl
from support import eventually
from support.processes import operator

pytestmark = pytest.mark.integration


def _keyset(kubectl: Kubectl, namespace: str) -> keys.KeySet | None:
    result = kubectl(
        "get", "secret", "-n", namespace, keys.SECRET_NAME, "-o", "jsonpath={.data.keys\\.json}", check=False
    )
    if result.returncode != 0 or not result.stdout:
        return None
    return keys.decode(base64.b64encode(base64.b64decode(result.stdout)).decode())


def test_keys_are_created_once_and_rotated_on_request(
    dev_cluster: ClusterState, kubectl: Kubectl, operator_namespace: str, tmp_path: Path
) -> None:
    run = {
        "kubeconfig": dev_cluster.kubeconfig,
        "operator_namespace": operator_namespace,
        "namespaces": [operator_namespace],
        "extra": ["--no-bootstrap", "--client-token-max-lifetime", "2h"],
    }
    with operator(log_file=tmp_path / "a.log", **run):  # type: ignore[arg-type]
        first = eventually(lambda: _keyset(kubectl, operator_namespace), timeout=30, what="the key Secret")
    assert len(first.keys) == 1
    assert first.max_token_lifetime_seconds == 7200
    labels = kubectl.json("get", "secret", "-n", operator_namespace, keys.SECRET_NAME)["metadata"]["labels"]
    assert labels[keys.LABEL] == keys.LABEL_VALUE

    with operator(log_file=tmp_path / "b.log", **run):  # type: ignore[arg-type]
        # A restart keeps the key.
        eventually(
            lambda: "client-token signing keys: exists" in (tmp_path / "b.log").read_text(), timeout=30, what="restart"
        )
        assert _keyset(kubectl, operator_namespace) == first
        kubectl("annotate", "secret", "-n", operator_namespace, keys.SECRET_NAME, "kubegate.dev/rotate=now")
        rotated = eventually(
            lambda: (ks := _keyset(kubectl, operator_namespace)) is not None and len(ks.keys) == 2 and ks,
            timeout=30,
            what="a second key after the rotate annotation",
        )
    assert rotated.keys[0].kid == first.keys[0].kid
    assert rotated.keys[0].retired_at is not None  # retired, still published
    assert rotated.active().kid != first.active().kid
    assert [k["kid"] for k in rotated.jwks()["keys"]] == [rotated.active().kid, first.active().kid]

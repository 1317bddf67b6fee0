"""The bootstrap token: created once, logged once, settings honoured, retired when deleted."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kubegate.contracts.timestamps import parse_time
from kubegate.contracts.token_format import hash_token
from kubegate.devcluster import ClusterState, Kubectl
from support import eventually
from support.kube import condition, config_entries, secret_token, static_token
from support.processes import operator

pytestmark = pytest.mark.integration
BOOTSTRAP = "initial-bootstrap-token"
LOG_LINE = re.compile(r'access token created client_token="([^"]+)"')


def _run(dev_cluster: ClusterState, namespace: str, log_file: Path, *extra: str) -> operator:  # type: ignore[valid-type]
    return operator(
        kubeconfig=dev_cluster.kubeconfig,
        log_file=log_file,
        operator_namespace=namespace,
        namespaces=[namespace],
        extra=extra,
    )


def _ready(kubectl: Kubectl, namespace: str) -> dict[str, object] | None:
    obj = static_token(kubectl, namespace, BOOTSTRAP)
    return obj if condition(obj).get("status") == "True" else None


def test_created_once_logged_once_and_kept_across_restarts(
    dev_cluster: ClusterState, kubectl: Kubectl, operator_namespace: str, tmp_path: Path
) -> None:
    log_file = tmp_path / "operator.log"
    with _run(dev_cluster, operator_namespace, log_file):
        obj = eventually(lambda: _ready(kubectl, operator_namespace), timeout=30, what="bootstrap token Ready")
    token = secret_token(kubectl, operator_namespace, BOOTSTRAP)
    assert LOG_LINE.findall(log_file.read_text()) == [token]
    assert obj["spec"]["groups"] == ["kubegate:admin"]  # type: ignore[index]
    assert obj["spec"]["metadata"] == {"io.kubegate.auth.token.name": "initial_bootstrap_token"}  # type: ignore[index]
    assert obj["metadata"]["labels"]["kubegate.dev/bootstrap"] == "true"  # type: ignore[index]
    entries = [e for e in config_entries(kubectl, operator_namespace) if e.name == BOOTSTRAP]
    assert [e.sha256 for e in entries] == [hash_token(token)]

    with _run(dev_cluster, operator_namespace, log_file):
        eventually(lambda: "bootstrap token: exists" in log_file.read_text(), timeout=30, what="the restart")
        eventually(lambda: _ready(kubectl, operator_namespace), timeout=30, what="still Ready")
    assert secret_token(kubectl, operator_namespace, BOOTSTRAP) == token
    assert len(LOG_LINE.findall(log_file.read_text())) == 1


def test_deleting_retires_it_unless_recreate_is_asked(
    dev_cluster: ClusterState, kubectl: Kubectl, operator_namespace: str, tmp_path: Path
) -> None:
    log_file = tmp_path / "operator.log"
    with _run(dev_cluster, operator_namespace, log_file):
        eventually(lambda: _ready(kubectl, operator_namespace), timeout=30, what="bootstrap token Ready")
        first = secret_token(kubectl, operator_namespace, BOOTSTRAP)
        kubectl("delete", "statictoken", "-n", operator_namespace, BOOTSTRAP, "--timeout=60s")
        eventually(
            lambda: all(e.name != BOOTSTRAP for e in config_entries(kubectl, operator_namespace)),
            timeout=10,
            what="the retired token out of the config",
        )

    with _run(dev_cluster, operator_namespace, log_file):
        eventually(lambda: "bootstrap token: retired" in log_file.read_text(), timeout=30, what="retired at start-up")
    assert static_token(kubectl, operator_namespace, BOOTSTRAP) is None

    with _run(dev_cluster, operator_namespace, log_file, "--bootstrap-recreate"):
        eventually(lambda: _ready(kubectl, operator_namespace), timeout=30, what="recreated on request")
    second = secret_token(kubectl, operator_namespace, BOOTSTRAP)
    assert second != first
    assert LOG_LINE.findall(log_file.read_text()) == [first, second]


def test_known_token_from_a_secret_is_used_and_not_logged(
    dev_cluster: ClusterState, kubectl: Kubectl, operator_namespace: str, tmp_path: Path
) -> None:
    known = "known-bootstrap-" + uuid.uuid4().hex
    kubectl("create", "secret", "generic", "-n", operator_namespace, "boot", f"--from-literal=value={known}")
    log_file = tmp_path / "operator.log"
    with _run(dev_cluster, operator_namespace, log_file, "--bootstrap-token-secret", "boot:value"):
        obj = eventually(lambda: _ready(kubectl, operator_namespace), timeout=30, what="bootstrap token Ready")
        eventually(
            lambda: (
                [e.sha256 for e in config_entries(kubectl, operator_namespace) if e.name == BOOTSTRAP]
                == [hash_token(known)]
            ),
            timeout=10,
            what="the known token's hash",
        )
    assert obj["spec"]["secretRef"] == {"name": "boot", "key": "value"}  # type: ignore[index]
    log = log_file.read_text()
    assert LOG_LINE.findall(log) == []
    assert known not in log


def test_expiration_and_silence_settings(
    dev_cluster: ClusterState, kubectl: Kubectl, operator_namespace: str, tmp_path: Path
) -> None:
    log_file = tmp_path / "operator.log"
    started = datetime.now(UTC)
    with _run(dev_cluster, operator_namespace, log_file, "--bootstrap-expiration", "2h", "--no-bootstrap-log-token"):
        obj = eventually(lambda: _ready(kubectl, operator_namespace), timeout=30, what="bootstrap token Ready")
    expires = parse_time(obj["status"]["expiresAt"])  # type: ignore[index]
    assert expires is not None
    assert started + timedelta(hours=2) - timedelta(seconds=5) <= expires <= datetime.now(UTC) + timedelta(hours=2)
    assert LOG_LINE.findall(log_file.read_text()) == []

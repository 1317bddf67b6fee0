"""Fixtures for tests against a real control plane (kubegate.devcluster) and a real Dex: one per test
session, and a private Dex for tests that restart it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubegate.devcluster import ClusterState, DevClusterError, Kubectl, find_binaries, start_cluster, stop_cluster
from kubegate.devcluster.dex import DexServer
from kubegate.devcluster.ports import pick_free_ports
from kubegate.devcluster.processes import Child, start_kubegate
from support.processes import ServerProcess, start_server

log = logging.getLogger("kubegate.tests.devcluster")


@pytest.fixture(scope="session")
def dev_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState]:
    """A running etcd + kube-apiserver + kube-controller-manager in a temporary state dir.

    The processes die with the test session even if pytest is killed, and are stopped at its end.
    """
    try:
        find_binaries()
    except DevClusterError as error:
        pytest.fail(f"{error}\n(to run without them: pytest -m 'not integration')", pytrace=False)
    state_dir = tmp_path_factory.mktemp("dev-cluster")
    state = start_cluster(state_dir=state_dir, name="pytest", die_with_parent=True, progress=log.info)
    try:
        yield state
    finally:
        stop_cluster(state_dir, progress=log.info)


@pytest.fixture(scope="session")
def kubectl(dev_cluster: ClusterState) -> Kubectl:
    """`kubectl(*args, stdin=..., kubeconfig=..., check=True)` -> CompletedProcess; `kubectl.json(...)`."""
    return Kubectl(dev_cluster)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting for it to go)."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> list[str]:
    """The kubegate CRDs installed and Established; returns their names."""
    return kubectl.install_crds(ROOT / "crds")


@pytest.fixture
def namespaces(kubectl: Kubectl, crds: list[str]) -> Iterator[tuple[str, str]]:
    """An operator namespace and an application namespace for one test, with the CRDs installed."""
    suffix = uuid.uuid4().hex[:6]
    names = (f"kg-op-{suffix}", f"kg-apps-{suffix}")
    for ns in names:
        kubectl("create", "namespace", ns)
    yield names
    for ns in names:
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
def operator_namespace(kubectl: Kubectl, crds: list[str]) -> Iterator[str]:
    """A fresh operator namespace with the CRDs installed, for tests that start their own operators."""
    name = f"kg-ops-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def servers(dev_cluster: ClusterState, namespaces: tuple[str, str], tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Two `kubegate server` replicas reading the operator namespace of `namespaces`, once both are ready."""
    started = [
        start_server(
            f"server-{i}", kubeconfig=dev_cluster.kubeconfig, operator_namespace=namespaces[0], log_dir=tmp_path
        )
        for i in range(2)
    ]
    try:
        for server in started:
            server.wait_ready(timeout=60)
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def operator(dev_cluster: ClusterState, crds: list[str], namespace: str, tmp_path: Path) -> Iterator[Child]:
    """`kubegate operator` watching only the test's namespace, which is also its operator namespace."""
    (health_port,) = pick_free_ports(1)
    args = [
        "operator",
        "--standalone",
        f"--operator-namespace={namespace}",
        f"--namespace={namespace}",
        f"--health-address=127.0.0.1:{health_port}",
    ]
    name = f"operator-{namespace}"
    process = start_kubegate(name, args, log_file=tmp_path / f"{name}.log", kubeconfig=dev_cluster.kubeconfig)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def server(dev_cluster: ClusterState, operator: Child, namespace: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """`kubegate server` (plain HTTP on loopback) beside the `operator` fixture."""
    process = start_server("server", kubeconfig=dev_cluster.kubeconfig, operator_namespace=namespace, log_dir=tmp_path)
    try:
        yield process
    finally:
        process.stop()


def _dex(work_dir: Path) -> DexServer:
    try:
        return DexServer(work_dir)
    except DevClusterError as error:
        pytest.fail(f"{error}\n(to run without it: pytest -m 'not integration')", pytrace=False)


@pytest.fixture(scope="session")
def dex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DexServer]:
    """One Dex for the whole session (users alice, bob, carol; clients kubegate and other-client).

    Shared: a test must not stop or restart it; `dex_fresh` gives a private one that a test may.
    """
    server = _dex(tmp_path_factory.mktemp("dex"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dex_fresh(tmp_path: Path) -> Iterator[DexServer]:
    """A Dex of this test alone, with its own ports, CA and keys, to restart (new signing keys) or stop."""
    server = _dex(tmp_path / "dex")
    server.start()
    try:
        yield server
    finally:
        server.stop()

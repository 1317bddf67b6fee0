"""The dev cluster is a real control plane: tokens, TokenReview, garbage collection, extra apiservers,
and a `down` that leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kubegate.devcluster import (
    ClusterState,
    DevClusterError,
    Kubectl,
    check_health,
    read_state,
    start_apiserver,
    start_cluster,
    stop_apiserver,
    stop_cluster,
)
from support import eventually

pytestmark = pytest.mark.integration


def token_review(kubectl: Kubectl, token: str, *, kubeconfig: Path | None = None) -> dict[str, Any]:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    status: dict[str, Any] = kubectl.json("create", "-f", "-", stdin=json.dumps(review), kubeconfig=kubeconfig)[
        "status"
    ]
    return status


def test_service_account_token_passes_token_review(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "serviceaccount", "robot", "-n", namespace)
    token = kubectl("create", "token", "robot", "-n", namespace).stdout.strip()

    status = token_review(kubectl, token)

    assert status["authenticated"] is True, status
    assert status["user"]["username"] == f"system:serviceaccount:{namespace}:robot"
    assert "system:serviceaccounts" in status["user"]["groups"]
    assert token_review(kubectl, token[:-4] + "AAAA").get("authenticated") is not True


def test_pod_bound_token_is_valid_only_while_the_pod_exists(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "serviceaccount", "robot", "-n", namespace)
    # Never scheduled (no nodeName, no kubelet); the object alone is what the token is bound to.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": namespace},
        "spec": {"serviceAccountName": "robot", "containers": [{"name": "app", "image": "registry.invalid/app"}]},
    }
    pod_uid = kubectl.json("create", "-f", "-", stdin=json.dumps(pod))["metadata"]["uid"]
    token = kubectl(
        "create", "token", "robot", "-n", namespace, "--bound-object-kind", "Pod", "--bound-object-name", "app"
    ).stdout.strip()

    status = token_review(kubectl, token)
    assert status["authenticated"] is True, status
    assert status["user"]["extra"]["authentication.kubernetes.io/pod-name"] == ["app"]
    assert status["user"]["extra"]["authentication.kubernetes.io/pod-uid"] == [pod_uid]

    kubectl("delete", "pod", "app", "-n", namespace, "--wait=true", "--timeout=30s")

    def rejection() -> dict[str, Any] | None:
        review = token_review(kubectl, token)
        return None if review.get("authenticated") else review

    rejected = eventually(rejection, timeout=20, what="TokenReview to reject the token of the deleted pod")
    assert not rejected.get("user"), rejected


def test_garbage_collector_deletes_dependents_of_a_deleted_owner(kubectl: Kubectl, namespace: str) -> None:
    owner_uid = kubectl.json("create", "configmap", "owner", "-n", namespace)["metadata"]["uid"]
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "namespace": namespace,
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}],
        },
    }
    kubectl("create", "-f", "-", stdin=json.dumps(dependent))

    kubectl("delete", "configmap", "owner", "-n", namespace)

    eventually(
        lambda: kubectl("get", "configmap", "dependent", "-n", namespace, check=False).returncode != 0,
        timeout=60,
        what="the garbage collector to delete the dependent ConfigMap",
    )
    assert "NotFound" in kubectl("get", "configmap", "dependent", "-n", namespace, check=False).stderr


def test_extra_apiserver_shares_storage_and_keys(dev_cluster: ClusterState, kubectl: Kubectl, namespace: str) -> None:
    extra = start_apiserver(dev_cluster.state_dir, name="extra", args=["--anonymous-auth=false"], die_with_parent=True)
    try:
        assert extra.url != dev_cluster.apiserver_url
        assert {health.component.name: health.healthy for health in check_health(_state(dev_cluster))}[
            "kube-apiserver-extra"
        ]
        # Same etcd: written through one, read through the other.
        kubectl("create", "configmap", "shared", "-n", namespace, "--from-literal=via=main")
        assert kubectl.json("get", "configmap", "shared", "-n", namespace, kubeconfig=extra.kubeconfig)["data"] == {
            "via": "main"
        }
        # Same service-account keys and issuer: a token from one is valid on the other.
        kubectl("create", "serviceaccount", "robot", "-n", namespace)
        token = kubectl("create", "token", "robot", "-n", namespace).stdout.strip()
        assert token_review(kubectl, token, kubeconfig=extra.kubeconfig)["authenticated"] is True
        # The extra argument took effect on the extra apiserver only.
        assert _anonymous_status(extra.url + "/readyz", dev_cluster) == 401
        assert _anonymous_status(dev_cluster.apiserver_url + "/readyz", dev_cluster) == 200
    finally:
        stop_apiserver(dev_cluster.state_dir, name="extra")
    assert _state(dev_cluster).extra_apiservers == ()
    assert not extra.kubeconfig.exists()
    assert _bindable(extra.component.ports["secure"])
    assert not _alive(extra.component.pid)


def test_failed_start_reports_the_log_and_stops_what_it_started(tmp_path: Path) -> None:
    with pytest.raises(DevClusterError) as failure:
        start_cluster(state_dir=tmp_path, name="broken", apiserver_args=["--no-such-flag=1"], die_with_parent=True)

    message = str(failure.value)
    assert message.startswith("kube-apiserver exited")
    assert "unknown flag: --no-such-flag" in message
    assert read_state(tmp_path) is None
    assert _processes_using(tmp_path) == []
    assert (tmp_path / "logs" / "kube-apiserver.log").exists()


def test_cli_up_env_status_down_leaves_nothing_behind(tmp_path: Path) -> None:
    state_dir = tmp_path / "throwaway"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kubegate", "dev-cluster", *args, "--state-dir", str(state_dir)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    # The CLI's processes are not tied to this test's life, so stop them even if an assertion fails.
    try:
        up = cli("up", "--name", "throwaway")
        assert up.returncode == 0, up.stdout + up.stderr
        state = read_state(state_dir)
        assert state is not None
        assert [component.name for component in state.components] == [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
        ]
        assert all(_alive(component.pid) for component in state.components)  # outlived the CLI process

        again = cli("up", "--name", "throwaway")
        assert again.returncode == 0
        assert "already running and healthy" in again.stdout

        status = cli("status")
        assert status.returncode == 0, status.stdout
        assert status.stdout.count("healthy") == 3

        env = cli("env")
        assert env.returncode == 0
        assert env.stdout.splitlines() == [
            f"export KUBECONFIG={state_dir / 'kubeconfig'}",
            f'export PATH={state.bin_dir}:"$PATH"',
        ]

        down = cli("down")
        assert down.returncode == 0, down.stderr
    finally:
        stop_cluster(state_dir)

    assert _processes_using(state_dir) == []
    for component in state.components:
        assert not _alive(component.pid)
        for port in component.ports.values():
            assert _bindable(port), f"{component.name} port {port} still taken"
    assert sorted(path.name for path in state_dir.iterdir()) == ["logs"]

    after_env = cli("env")
    assert after_env.returncode == 1
    assert "no dev cluster recorded" in after_env.stderr
    assert cli("status").returncode == 1
    assert "nothing to stop" in cli("down").stdout


def test_processes_die_with_the_process_that_asked_for_it(tmp_path: Path) -> None:
    # A parent that starts a child with die_with_parent, then is SIGKILLed: the child must go too.
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from kubegate.devcluster.processes import spawn
        started = spawn(["sleep", "300"], log_file=Path({str(tmp_path / "sleep.log")!r}), die_with_parent=True)
        print(started.pid, flush=True)
        time.sleep(300)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert _alive(child_pid)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
    eventually(lambda: not _alive(child_pid), timeout=10, what=f"child {child_pid} to die with its parent")


def _state(cluster: ClusterState) -> ClusterState:
    state = read_state(cluster.state_dir)
    assert state is not None
    return state


def _anonymous_status(url: str, cluster: ClusterState) -> int:
    context = ssl.create_default_context(cafile=str(cluster.state_dir / "pki" / "ca.crt"))
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def _alive(pid: int) -> bool:
    """Running and not a zombie (a zombie has exited; it only waits for its parent to collect it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _processes_using(state_dir: Path) -> list[str]:
    """Command lines of live processes that mention `state_dir` (every component's flags do)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if str(state_dir) in cmdline and _alive(int(entry.name)):
            found.append(cmdline)
    return found


def _bindable(port: int) -> bool:
    # SO_REUSEADDR as servers set it: a port whose old connections linger in TIME_WAIT is free to listen on.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
        return True

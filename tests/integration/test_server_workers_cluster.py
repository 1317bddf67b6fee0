"""`kubegate server --workers 2` on the real control plane: one port served by two worker processes, which
accept a token created with kubectl on every connection (each worker watches the validation config itself;
that connections spread over the workers is shown in tests/unit/test_server_workers.py); SIGTERM stops
both and the server exits 0."""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kubegate.devcluster import ClusterState, Kubectl
from kubegate.devcluster.processes import Child
from support.kube import apply_static_token, read_token
from support.processes import start_server

pytestmark = pytest.mark.integration


def _children(pid: int) -> set[int]:
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        children |= {int(child) for child in text}
    return children


def _verify(url: str, token: str) -> int:
    request = urllib.request.Request(url + "/auth/v1/verify", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # a new connection each time
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_two_workers_serve_a_token_made_with_kubectl_and_stop_on_sigterm(
    dev_cluster: ClusterState, operator: Child, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    server = start_server(
        "server-workers",
        kubeconfig=dev_cluster.kubeconfig,
        operator_namespace=namespace,
        log_dir=tmp_path,
        extra=["--workers=2"],
    )
    try:
        server.wait_ready()
        workers = _children(server.process.pid)
        assert len(workers) == 2, workers

        apply_static_token(kubectl, namespace, "shared")
        token = read_token(kubectl, namespace, "shared")
        # Every worker watches on its own: each new connection may reach either, and all must accept it.
        deadline = time.monotonic() + 10
        while _verify(server.url, token) != 200:
            assert time.monotonic() < deadline, "no worker accepted the token within 10 s"
            time.sleep(0.05)
        time.sleep(2)  # the other worker's bound, as for any replica
        assert [_verify(server.url, token) for _ in range(40)] == [200] * 40
        assert _verify(server.url, "kg_unknown") == 401

        server.process.send_signal(signal.SIGTERM)
        server.process.wait(20)
        assert server.process.returncode == 0
        for worker in workers:
            assert not Path(f"/proc/{worker}").exists() or "Z" in Path(f"/proc/{worker}/stat").read_text().split()[2]
        assert "started worker 1" in server.process.log()
    finally:
        server.stop()

"""kube-apiserver with `--authentication-token-webhook-config-file` pointing at `kubegate server`: static
tokens work with kubectl, mapped to prefixed users and groups, and stop working after deletion once the
apiserver's cache TTL has passed."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubegate.devcluster import ClusterState, ExtraApiserver, Kubectl
from support import eventually
from support.kube import apply_static_token, read_token, token_kubeconfig, whoami
from support.kube import webhook_apiserver as webhook_apiserver_for
from support.processes import ServerProcess

pytestmark = pytest.mark.integration

CACHE_TTL_SECONDS = 2


@pytest.fixture
def webhook_apiserver(dev_cluster: ClusterState, server: ServerProcess, tmp_path: Path) -> Iterator[ExtraApiserver]:
    with webhook_apiserver_for(dev_cluster, server.url, tmp_path, cache_ttl_seconds=CACHE_TTL_SECONDS) as extra:
        yield extra


async def test_kubectl_with_a_static_token_through_the_webhook(
    kubectl: Kubectl,
    namespace: str,
    server: ServerProcess,
    webhook_apiserver: ExtraApiserver,
    tmp_path: Path,
) -> None:
    server.wait_ready()
    apply_static_token(kubectl, namespace, "deployer", groups=["deployers"])
    token = read_token(kubectl, namespace, "deployer")
    kubeconfig = token_kubeconfig(
        tmp_path / "token.kubeconfig", server=webhook_apiserver.url, ca_file=kubectl.state.state_dir / "pki" / "ca.crt"
    )

    user = eventually(lambda: whoami(kubectl, kubeconfig, token), timeout=30, what="kubectl auth whoami to succeed")
    assert user["username"] == f"kubegate:statictoken:{namespace}:deployer"
    assert "kubegate:deployers" in user["groups"]
    assert "system:authenticated" in user["groups"]
    assert user["extra"]["kubegate.dev/method"] == ["METHOD_TOKEN"]
    token_id = kubectl.json("get", "statictoken", "deployer", "-n", namespace)["status"]["tokenId"]
    assert user["uid"] == token_id

    assert whoami(kubectl, kubeconfig, "kg_not-a-real-token") is None
    # Every review kube-apiserver sent got a 200 answer, the refused token's too.
    # The access log is written by a background task: its lines may land a moment after the answers.
    answers = eventually(
        # `or None`: an empty list is a result to `eventually`, so it would stop waiting at once.
        lambda: re.findall(r"POST /apis/authentication.k8s.io/v1/tokenreviews (\d{3})", server.process.log()) or None,
        timeout=10,
        what="the TokenReview lines in the server's access log",
    )
    assert set(answers) == {"200"}

    kubectl("delete", "statictoken", "deployer", "-n", namespace)
    deleted = time.monotonic()
    eventually(
        lambda: whoami(kubectl, kubeconfig, token) is None,
        timeout=CACHE_TTL_SECONDS + 30,
        what="the deleted token to be refused by kube-apiserver",
        interval=0.25,
    )
    refused_after = time.monotonic() - deleted
    print(f"deleted token refused by kube-apiserver after {refused_after:.2f}s (cache TTL {CACHE_TTL_SECONDS}s)")

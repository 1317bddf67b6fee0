"""The API client keeps working on a real API server when its service-account token is replaced.

The service account is deleted and created again under the same name, which makes the API server refuse
every token issued before; a new token is written where the old one was, as the kubelet does in a pod.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
import yaml

from kubegate.contracts.api_paths import path_for
from kubegate.devcluster import ClusterState, Kubectl
from kubegate.kube import Connection, KubeClient, load_connection
from kubegate.kube.credentials import TokenFile

pytestmark = pytest.mark.integration

ACCOUNT = "secret-lister"


def cluster_entry(dev_cluster: ClusterState) -> dict[str, str]:
    """The admin kubeconfig's cluster: the server and its CA, without the admin's client certificate."""
    admin = yaml.safe_load(dev_cluster.kubeconfig.read_text())
    cluster: dict[str, str] = admin["clusters"][0]["cluster"]
    return cluster


def account_with_secret_rbac(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "serviceaccount", ACCOUNT, "-n", namespace)
    kubectl("create", "role", "list-secrets", "--verb=get,list,watch", "--resource=secrets", "-n", namespace)
    binding = ["rolebinding", "list-secrets", "--role=list-secrets", f"--serviceaccount={namespace}:{ACCOUNT}"]
    kubectl("create", *binding, "-n", namespace)


def token(kubectl: Kubectl, namespace: str) -> str:
    return kubectl("create", "token", ACCOUNT, "-n", namespace, "--duration", "10m").stdout.strip()


async def refused(dev_cluster: ClusterState, ca: ssl.SSLContext, namespace: str, old: str) -> bool:
    url = dev_cluster.apiserver_url.rstrip("/") + path_for(plural="secrets", namespace=namespace)
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={"Authorization": f"Bearer {old}"}, ssl=ca) as response,
    ):
        return response.status == 401


def kubeconfig_connection(dev_cluster: ClusterState, tmp_path: Path, token_file: Path) -> Connection:
    """A kubeconfig whose user reads its token from a file, as `kubectl` and client-go do."""
    kubeconfig = tmp_path / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dev", "cluster": cluster_entry(dev_cluster)}],
        "users": [{"name": ACCOUNT, "user": {"tokenFile": str(token_file)}}],
        "contexts": [{"name": "dev", "context": {"cluster": "dev", "user": ACCOUNT}}],
        "current-context": "dev",
    }
    kubeconfig.write_text(yaml.safe_dump(config))
    return load_connection(kubeconfig=str(kubeconfig))


def pod_connection(dev_cluster: ClusterState, tmp_path: Path, token_file: Path) -> Connection:
    """What `load_connection` builds in a pod, with the token file somewhere a test can write."""
    return Connection(
        host=dev_cluster.apiserver_url.rstrip("/"),
        ssl_context=ca_context(dev_cluster),
        credentials=TokenFile(token_file),
        namespace="default",
    )


def ca_context(dev_cluster: ClusterState) -> ssl.SSLContext:
    pem = base64.b64decode(cluster_entry(dev_cluster)["certificate-authority-data"]).decode()
    return ssl.create_default_context(cadata=pem)


@pytest.mark.parametrize(
    ("connect", "reloads_on_401"),
    [
        # kubectl's kind of kubeconfig: the token is read again when the API server refuses the old one.
        pytest.param(kubeconfig_connection, True, id="kubeconfig-tokenFile"),
        # In a pod: the changed file is read before the old token is sent again.
        pytest.param(pod_connection, False, id="pod"),
    ],
)
async def test_the_client_keeps_working_when_its_token_is_replaced_and_the_old_one_refused(
    *,
    dev_cluster: ClusterState,
    kubectl: Kubectl,
    namespace: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    connect: Callable[[ClusterState, Path, Path], Connection],
    reloads_on_401: bool,
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = path_for(plural="secrets", namespace=namespace)
    await asyncio.to_thread(account_with_secret_rbac, kubectl, namespace)
    kubectl("create", "secret", "generic", "before", "-n", namespace, "--from-literal=k=v")
    first = await asyncio.to_thread(token, kubectl, namespace)
    token_file = tmp_path / "token"
    token_file.write_text(first)
    async with KubeClient(connect(dev_cluster, tmp_path, token_file)) as client:
        items, version = await client.list_all(secrets)
        assert [item["metadata"]["name"] for item in items] == ["before"]

        kubectl("delete", "serviceaccount", ACCOUNT, "-n", namespace)
        kubectl("create", "serviceaccount", ACCOUNT, "-n", namespace)
        deadline = time.monotonic() + 30
        while not await refused(dev_cluster, ca_context(dev_cluster), namespace, first):
            assert time.monotonic() < deadline, "the API server still accepts the first token"
            await asyncio.sleep(0.2)
        second = await asyncio.to_thread(token, kubectl, namespace)
        token_file.write_text(second)
        kubectl("create", "secret", "generic", "after", "-n", namespace, "--from-literal=k=v")

        watched = [event async for event in client.watch(secrets, resource_version=version, timeout_seconds=2)]
        items, _ = await client.list_all(secrets)

    assert [(e.type, e.object["metadata"]["name"]) for e in watched if e.type != "BOOKMARK"] == [("ADDED", "after")]
    assert sorted(item["metadata"]["name"] for item in items) == ["after", "before"]
    assert ("refused the credentials (401)" in caplog.text) is reloads_on_401
    assert first not in caplog.text
    assert second not in caplog.text

"""Kubeconfig files with the certificates embedded, so a kubeconfig is usable on its own."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from kubegate.devcluster.files import write_private


def render_kubeconfig(
    *, cluster: str, server: str, user: str, ca_pem: bytes, client_cert_pem: bytes, client_key_pem: bytes
) -> str:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(client_cert_pem), "client-key-data": b64(client_key_pem)},
            }
        ],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
    }
    return yaml.safe_dump(config, sort_keys=False)


def write_kubeconfig(
    path: Path,
    *,
    cluster: str,
    server: str,
    user: str,
    ca_pem: bytes,
    client_cert_pem: bytes,
    client_key_pem: bytes,
) -> None:
    text = render_kubeconfig(
        cluster=cluster,
        server=server,
        user=user,
        ca_pem=ca_pem,
        client_cert_pem=client_cert_pem,
        client_key_pem=client_key_pem,
    )
    write_private(path, text.encode("utf-8"))

"""Command lines of etcd, kube-apiserver and kube-controller-manager for a loopback dev cluster."""

from __future__ import annotations

from collections.abc import Sequence

from kubegate.devcluster.errors import DevClusterError
from kubegate.devcluster.layout import Layout
from kubegate.devcluster.pki import FRONT_PROXY_CLIENT, LOOPBACK, SERVICE_CIDR


def etcd_flags(layout: Layout, *, name: str, client_port: int, peer_port: int) -> list[str]:
    client_url = f"http://{LOOPBACK}:{client_port}"
    peer_url = f"http://{LOOPBACK}:{peer_port}"
    return [
        f"--name={name}",
        f"--data-dir={layout.etcd_data_dir}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster={name}={peer_url}",
        "--initial-cluster-state=new",
        # A dev cluster's data is thrown away anyway; fsync makes every write wait for the disk.
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def apiserver_flags(
    layout: Layout, *, etcd_url: str, port: int, service_account_issuer: str, extra_args: Sequence[str]
) -> list[str]:
    """The flags of a kube-apiserver; each of `extra_args` replaces the default of the same flag."""
    defaults = [
        f"--etcd-servers={etcd_url}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={port}",
        f"--tls-cert-file={layout.pki(Layout.APISERVER_CERT)}",
        f"--tls-private-key-file={layout.pki(Layout.APISERVER_KEY)}",
        f"--client-ca-file={layout.pki(Layout.CA_CERT)}",
        "--authorization-mode=RBAC",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--service-account-issuer={service_account_issuer}",
        f"--service-account-key-file={layout.pki(Layout.SERVICE_ACCOUNT_PUB)}",
        f"--service-account-signing-key-file={layout.pki(Layout.SERVICE_ACCOUNT_KEY)}",
        # The `kubernetes` Endpoints may not hold a loopback address, so reconciling it only logs an error
        # every 10 s (nothing in the cluster could use it: no pods run). It also keeps a second apiserver
        # on the same etcd from overwriting the first one's port there.
        "--endpoint-reconciler-type=none",
        f"--requestheader-client-ca-file={layout.pki(Layout.FRONT_PROXY_CA_CERT)}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={layout.pki(Layout.FRONT_PROXY_CLIENT_CERT)}",
        f"--proxy-client-key-file={layout.pki(Layout.FRONT_PROXY_CLIENT_KEY)}",
    ]
    replaced = {arg.partition("=")[0] for arg in extra_args}
    return [arg for arg in defaults if arg.partition("=")[0] not in replaced] + list(extra_args)


def controller_manager_flags(layout: Layout, *, port: int) -> list[str]:
    kubeconfig = layout.controller_manager_kubeconfig
    return [
        f"--kubeconfig={kubeconfig}",
        # Without these it cannot authenticate callers of its own endpoints and logs errors about it.
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={port}",
        f"--tls-cert-file={layout.pki(Layout.CONTROLLER_MANAGER_SERVING_CERT)}",
        f"--tls-private-key-file={layout.pki(Layout.CONTROLLER_MANAGER_SERVING_KEY)}",
        "--leader-elect=false",
        # The system:kube-controller-manager role only reads; each controller acts as its own service
        # account with the role RBAC bootstraps for it (the garbage collector needs to delete anything).
        "--use-service-account-credentials=true",
        f"--root-ca-file={layout.pki(Layout.CA_CERT)}",
        f"--service-account-private-key-file={layout.pki(Layout.SERVICE_ACCOUNT_KEY)}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # Lets the CSR signer run, so CertificateSigningRequests work as in a real cluster.
        f"--cluster-signing-cert-file={layout.pki(Layout.CA_CERT)}",
        f"--cluster-signing-key-file={layout.pki(Layout.CA_KEY)}",
    ]


def check_extra_args(args: Sequence[str]) -> list[str]:
    """Only `--flag=value` can replace a default flag unambiguously; reject anything else up front."""
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise DevClusterError(f"kube-apiserver argument {arg!r} must have the form --flag=value")
    return list(args)

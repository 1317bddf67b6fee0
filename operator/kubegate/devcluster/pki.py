"""Generate the certificates and keys of one cluster and write them into its state directory."""

from __future__ import annotations

from kubegate.devcluster.certs import (
    generate_ca,
    generate_service_account_keypair,
    issue_client_certificate,
    issue_serving_certificate,
)
from kubegate.devcluster.files import write_private
from kubegate.devcluster.layout import Layout

# The first address of the service CIDR is the ClusterIP of the `kubernetes` Service; in-cluster clients
# reach the apiserver through it, so the serving certificate must name it.
SERVICE_CIDR = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"
APISERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
LOOPBACK = "127.0.0.1"
ADMIN_USER = "kubegate-admin"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
FRONT_PROXY_CLIENT = "front-proxy-client"


def write_cluster_pki(layout: Layout, *, cluster_name: str) -> None:
    ca = generate_ca(common_name=f"kubegate-{cluster_name}-ca")
    apiserver = issue_serving_certificate(
        ca,
        common_name="kube-apiserver",
        dns_names=APISERVER_DNS_NAMES,
        ip_addresses=(LOOPBACK, KUBERNETES_SERVICE_IP),
    )
    controller_manager_serving = issue_serving_certificate(
        ca, common_name="kube-controller-manager", dns_names=("localhost",), ip_addresses=(LOOPBACK,)
    )
    admin = issue_client_certificate(ca, common_name=ADMIN_USER, organizations=("system:masters",))
    controller_manager_client = issue_client_certificate(ca, common_name=CONTROLLER_MANAGER_USER)
    # kube-apiserver publishes this CA as the request-header CA; without one, every component that
    # delegates authentication to it (kube-controller-manager) logs an error about it again and again.
    # A CA of its own, as kubeadm does: a client certificate from the main CA must not be able to assert
    # identities through request headers.
    front_proxy_ca = generate_ca(common_name=f"kubegate-{cluster_name}-front-proxy-ca")
    front_proxy_client = issue_client_certificate(front_proxy_ca, common_name=FRONT_PROXY_CLIENT)
    service_account = generate_service_account_keypair()
    files = {
        Layout.CA_CERT: ca.cert_pem,
        Layout.CA_KEY: ca.key_pem,
        Layout.APISERVER_CERT: apiserver.cert_pem,
        Layout.APISERVER_KEY: apiserver.key_pem,
        Layout.CONTROLLER_MANAGER_SERVING_CERT: controller_manager_serving.cert_pem,
        Layout.CONTROLLER_MANAGER_SERVING_KEY: controller_manager_serving.key_pem,
        Layout.ADMIN_CERT: admin.cert_pem,
        Layout.ADMIN_KEY: admin.key_pem,
        Layout.CONTROLLER_MANAGER_CLIENT_CERT: controller_manager_client.cert_pem,
        Layout.CONTROLLER_MANAGER_CLIENT_KEY: controller_manager_client.key_pem,
        Layout.FRONT_PROXY_CA_CERT: front_proxy_ca.cert_pem,
        Layout.FRONT_PROXY_CLIENT_CERT: front_proxy_client.cert_pem,
        Layout.FRONT_PROXY_CLIENT_KEY: front_proxy_client.key_pem,
        Layout.SERVICE_ACCOUNT_KEY: service_account.private_key_pem,
        Layout.SERVICE_ACCOUNT_PUB: service_account.public_key_pem,
    }
    for name, data in files.items():
        write_private(layout.pki(name), data)

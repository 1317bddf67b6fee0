"""The dev cluster's certificates: what each component checks in them, and that they chain to the CA."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from kubegate.devcluster.certs import (
    CertificateAuthority,
    generate_ca,
    generate_service_account_keypair,
    issue_client_certificate,
    issue_serving_certificate,
)
from kubegate.devcluster.layout import Layout
from kubegate.devcluster.pki import write_cluster_pki


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return generate_ca(common_name="test-ca")


def load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def extended_usages(certificate: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_ca_is_a_self_signed_ca_that_may_only_sign(ca: CertificateAuthority) -> None:
    certificate = load(ca.cert_pem)
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value

    assert constraints.critical
    assert constraints.value.ca
    assert usage.key_cert_sign
    assert usage.crl_sign
    certificate.verify_directly_issued_by(certificate)
    assert serialization.load_pem_private_key(ca.key_pem, password=None).public_key() == certificate.public_key()


def test_serving_certificate_names_every_address_and_verifies_for_each(ca: CertificateAuthority) -> None:
    issued = issue_serving_certificate(
        ca,
        common_name="kube-apiserver",
        dns_names=["localhost", "kubernetes.default.svc"],
        ip_addresses=["127.0.0.1", "10.0.0.1"],
    )
    certificate = load(issued.cert_pem)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value

    assert names.get_values_for_type(x509.DNSName) == ["localhost", "kubernetes.default.svc"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.0.0.1"),
    ]
    assert extended_usages(certificate) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # The same path validation a TLS client does, SAN matching included.
    store = Store([ca.certificate])
    for subject in (
        x509.DNSName("kubernetes.default.svc"),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
    ):
        chain = PolicyBuilder().store(store).build_server_verifier(subject).verify(certificate, [])
        assert chain[-1] == ca.certificate
    other_ca = generate_ca(common_name="other")
    with pytest.raises(VerificationError):
        PolicyBuilder().store(Store([other_ca.certificate])).build_server_verifier(x509.DNSName("localhost")).verify(
            certificate, []
        )


def test_client_certificate_carries_user_in_cn_and_groups_in_o(ca: CertificateAuthority) -> None:
    issued = issue_client_certificate(ca, common_name="alice", organizations=["system:masters", "devs"])
    certificate = load(issued.cert_pem)

    assert [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["alice"]
    assert [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:masters",
        "devs",
    ]
    assert extended_usages(certificate) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    certificate.verify_directly_issued_by(ca.certificate)
    key = serialization.load_pem_private_key(issued.key_pem, password=None)
    assert key.public_key() == certificate.public_key()


def test_leaf_certificates_do_not_outlive_their_ca(ca: CertificateAuthority) -> None:
    issued = load(issue_client_certificate(ca, common_name="bob").cert_pem)

    assert issued.not_valid_after_utc <= ca.certificate.not_valid_after_utc
    assert issued.not_valid_before_utc >= ca.certificate.not_valid_before_utc


def test_service_account_keypair_is_rsa_2048_and_matches() -> None:
    pair = generate_service_account_keypair()
    private = serialization.load_pem_private_key(pair.private_key_pem, password=None)
    public = serialization.load_pem_public_key(pair.public_key_pem)

    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.key_size == 2048
    assert private.public_key() == public


def test_cluster_pki_has_what_each_component_needs(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    write_cluster_pki(layout, cluster_name="unit")
    ca_cert = load(layout.pki(Layout.CA_CERT).read_bytes())

    apiserver = load(layout.pki(Layout.APISERVER_CERT).read_bytes())
    names = apiserver.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
    } <= set(names.get_values_for_type(x509.DNSName))
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.0.0.1")} <= set(
        names.get_values_for_type(x509.IPAddress)
    )

    admin = load(layout.pki(Layout.ADMIN_CERT).read_bytes())
    assert admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    controller_manager = load(layout.pki(Layout.CONTROLLER_MANAGER_CLIENT_CERT).read_bytes())
    assert controller_manager.subject.rfc4514_string() == "CN=system:kube-controller-manager"
    for leaf in (apiserver, admin, controller_manager):
        leaf.verify_directly_issued_by(ca_cert)

    # Request-header identities must come from a CA of their own, never from the cluster CA.
    front_proxy_ca = load(layout.pki(Layout.FRONT_PROXY_CA_CERT).read_bytes())
    load(layout.pki(Layout.FRONT_PROXY_CLIENT_CERT).read_bytes()).verify_directly_issued_by(front_proxy_ca)
    assert front_proxy_ca.public_key() != ca_cert.public_key()

    for path in layout.pki_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

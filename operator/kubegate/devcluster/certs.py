"""Certificates and keys for a throwaway control plane, generated in memory; nothing here touches disk.

TLS keys are ECDSA P-256: quick to generate and accepted by every Kubernetes component. The service-account
signing key is RSA 2048, because that is what real clusters use, so tokens in tests are RS256 like the
tokens kubegate meets in production.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Certificates are dated a little in the past so that a process whose clock lags ours accepts them.
_CLOCK_SKEW = datetime.timedelta(minutes=5)
DEFAULT_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA that signs every serving and client certificate of one cluster."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _private_pem(self.private_key)


@dataclass(frozen=True)
class IssuedCertificate:
    """A leaf certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class ServiceAccountKeyPair:
    """The key kube-apiserver signs service-account tokens with, and its public half for verification."""

    private_key_pem: bytes
    public_key_pem: bytes


def generate_ca(*, common_name: str, validity: datetime.timedelta = DEFAULT_VALIDITY) -> CertificateAuthority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    not_before = datetime.datetime.now(datetime.UTC) - _CLOCK_SKEW
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(certificate=certificate, private_key=key)


def issue_serving_certificate(
    ca: CertificateAuthority,
    *,
    common_name: str,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    validity: datetime.timedelta = DEFAULT_VALIDITY,
) -> IssuedCertificate:
    """A TLS server certificate; clients check the SANs, never the common name."""
    alternative_names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    alternative_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    return _issue(
        ca,
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        alternative_names=alternative_names,
        validity=validity,
    )


def issue_client_certificate(
    ca: CertificateAuthority,
    *,
    common_name: str,
    organizations: Sequence[str] = (),
    validity: datetime.timedelta = DEFAULT_VALIDITY,
) -> IssuedCertificate:
    """A TLS client certificate; kube-apiserver reads the user from CN and the groups from O."""
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return _issue(
        ca,
        subject=x509.Name(attributes),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        alternative_names=[],
        validity=validity,
    )


def generate_service_account_keypair() -> ServiceAccountKeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ServiceAccountKeyPair(private_key_pem=_private_pem(key), public_key_pem=public_pem)


def _issue(
    ca: CertificateAuthority,
    *,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    alternative_names: list[x509.GeneralName],
    validity: datetime.timedelta,
) -> IssuedCertificate:
    key = ec.generate_private_key(ec.SECP256R1())
    not_before = datetime.datetime.now(datetime.UTC) - _CLOCK_SKEW
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(min(not_before + validity, ca.certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()), critical=False)
    )
    if alternative_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
    certificate = builder.sign(ca.private_key, hashes.SHA256())
    return IssuedCertificate(cert_pem=certificate.public_bytes(serialization.Encoding.PEM), key_pem=_private_pem(key))


def _private_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    # PKCS#8 unencrypted: the format every Kubernetes component and Python's ssl module read.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

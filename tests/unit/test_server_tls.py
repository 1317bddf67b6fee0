"""HTTPS: certificate files are re-read when they change; new handshakes get the new certificate, a
broken pair is never installed."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from server_harness import Harness

from kubegate.devcluster.certs import CertificateAuthority, generate_ca, issue_serving_certificate
from kubegate.server.tls import ReloadingTLS


def issue(ca: CertificateAuthority, name: str) -> tuple[bytes, bytes]:
    cert = issue_serving_certificate(
        ca, common_name=name, dns_names=["localhost"], ip_addresses=["127.0.0.1"], validity=datetime.timedelta(hours=1)
    )
    return cert.cert_pem, cert.key_pem


async def served_name(port: int, ca: CertificateAuthority) -> str:
    context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
    return str(x509.load_der_x509_certificate(der).subject.rfc4514_string())


async def test_changed_files_are_served_to_new_connections(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ca = generate_ca(common_name="test-ca")
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    first_cert, first_key = issue(ca, "first")
    cert_file.write_bytes(first_cert)
    key_file.write_bytes(first_key)
    tls = ReloadingTLS(cert_file=str(cert_file), key_file=str(key_file), interval=0.05)
    async with Harness().serve(ssl_context=tls.context) as served:
        port = served.port
        reload_task = asyncio.create_task(tls.run())
        try:
            assert await served_name(port, ca) == "CN=first"

            # A certificate without its key (a renewal half written) is not installed.
            second_cert, second_key = issue(ca, "second")
            cert_file.write_bytes(second_cert)
            await asyncio.sleep(0.3)
            assert tls.reloads == 0
            assert "do not form a valid pair" in caplog.text
            assert await served_name(port, ca) == "CN=first"

            key_file.write_bytes(second_key)
            for _ in range(100):
                if tls.reloads:
                    break
                await asyncio.sleep(0.05)
            assert tls.reloads == 1
            assert await served_name(port, ca) == "CN=second"

            # Unreadable files keep the current certificate too.
            key_file.unlink()
            await asyncio.sleep(0.2)
            assert await served_name(port, ca) == "CN=second"
        finally:
            reload_task.cancel()
            await asyncio.gather(reload_task, return_exceptions=True)


def test_a_broken_pair_at_start_is_refused(tmp_path: Path) -> None:
    ca = generate_ca(common_name="test-ca")
    cert, _ = issue(ca, "a")
    _, other_key = issue(ca, "b")
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(other_key)
    with pytest.raises(ssl.SSLError):
        ReloadingTLS(cert_file=str(tmp_path / "tls.crt"), key_file=str(tmp_path / "tls.key"), interval=1)

"""The dev CA and server certificate are valid for exactly the names asked for, and usable by ssl."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from controlplane.devtools.certs import DevCerts, generate_dev_certs


@pytest.fixture
def certs(tmp_path: Path) -> DevCerts:
    return generate_dev_certs(
        tmp_path / "tls", dns_names=["backend.test", "localhost"], ip_addresses=["127.0.0.1"]
    )


def _verify(certs: DevCerts, name: x509.DNSName | x509.IPAddress) -> None:
    ca = x509.load_pem_x509_certificate(certs.ca_file.read_bytes())
    leaf = x509.load_pem_x509_certificate(certs.cert_file.read_bytes())
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(name)
    verifier.verify(leaf, [])


def test_server_certificate_chains_to_the_ca_for_each_name(certs: DevCerts) -> None:
    _verify(certs, x509.DNSName("backend.test"))
    _verify(certs, x509.DNSName("localhost"))
    _verify(certs, x509.IPAddress(ipaddress.ip_address("127.0.0.1")))


def test_server_certificate_is_rejected_for_other_names(certs: DevCerts) -> None:
    with pytest.raises(VerificationError):
        _verify(certs, x509.DNSName("other.test"))


def test_server_certificate_is_rejected_by_another_ca(certs: DevCerts, tmp_path: Path) -> None:
    other = generate_dev_certs(tmp_path / "other")
    foreign_ca = x509.load_pem_x509_certificate(other.ca_file.read_bytes())
    leaf = x509.load_pem_x509_certificate(certs.cert_file.read_bytes())
    verifier = PolicyBuilder().store(Store([foreign_ca])).build_server_verifier(x509.DNSName("backend.test"))
    with pytest.raises(VerificationError):
        verifier.verify(leaf, [])


def test_files_are_pem_in_the_directory_and_the_key_is_private(certs: DevCerts, tmp_path: Path) -> None:
    assert {certs.ca_file.parent, certs.cert_file.parent, certs.key_file.parent} == {tmp_path / "tls"}
    assert certs.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert certs.key_file.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE(certs.key_file.stat().st_mode) == 0o600
    # Only the CA certificate, the server certificate and its key: the CA key is never written.
    assert sorted(p.name for p in (tmp_path / "tls").iterdir()) == sorted(
        [certs.ca_file.name, certs.cert_file.name, certs.key_file.name]
    )


def test_ssl_loads_the_pair_and_the_ca(certs: DevCerts) -> None:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(certs.cert_file, certs.key_file)  # raises if the key does not match the cert
    client = ssl.create_default_context(cafile=str(certs.ca_file))
    assert [c["subject"] for c in client.get_ca_certs()] == [
        ((("commonName", "ai-xds-controlplane dev CA"),),)
    ]


def test_validity_window_covers_now_and_the_requested_days(tmp_path: Path) -> None:
    certs = generate_dev_certs(tmp_path, valid_days=2)
    leaf = x509.load_pem_x509_certificate(certs.cert_file.read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    assert leaf.not_valid_before_utc < now
    assert now + datetime.timedelta(days=1) < leaf.not_valid_after_utc <= now + datetime.timedelta(days=2)


def test_generating_again_replaces_the_files(certs: DevCerts, tmp_path: Path) -> None:
    before = certs.ca_file.read_bytes()
    again = generate_dev_certs(tmp_path / "tls", dns_names=["backend.test"])
    assert again == certs
    assert again.ca_file.read_bytes() != before
    _verify(again, x509.DNSName("backend.test"))


def test_at_least_one_name_is_required(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        generate_dev_certs(tmp_path, dns_names=[], ip_addresses=[])

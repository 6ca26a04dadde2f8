"""Throwaway TLS material for tests and the demo.

Upstream TLS (BackendTLSPolicy) has to be exercised against a local HTTPS backend whose certificate Envoy
can verify, without committing keys to the repository or reaching a real CA. This module mints a private CA
and one server certificate signed by it, on demand, into a directory the caller owns (a pytest ``tmp_path``
or the demo's temporary directory). The CA's private key is never written: only this process signs with it.
The local Kubernetes API server the tests run uses the same CA for its serving and client certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateAuthority", "DevCerts", "IssuedCertificate", "generate_dev_certs"]

_CA_FILE = "ca.pem"
_CERT_FILE = "server.pem"
_KEY_FILE = "server-key.pem"
# Clocks of the test machine and of Envoy are the same, but a certificate valid "from now" can still be
# rejected by a verifier that rounds the current time down; backdating a little avoids that edge.
_BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class DevCerts:
    """Paths of the PEM files written by :func:`generate_dev_certs`.

    ``cert_file``/``key_file`` are the names the fake backend's ``tls`` parameter expects, so an instance can
    be passed to it directly.
    """

    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A certificate and its private key, in PEM; ``public_key_pem`` serves keys used for signing only
    (a ServiceAccount token signer needs the public half on its own)."""

    certificate_pem: bytes
    key_pem: bytes
    public_key_pem: bytes


class CertificateAuthority:
    """A private CA held in memory: its key signs what :meth:`issue` is asked for and is never written."""

    def __init__(self, *, common_name: str = "ai-xds-controlplane dev CA", valid_days: int = 7) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self._not_before, self._not_after = now - _BACKDATE, now + datetime.timedelta(days=valid_days)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self._key_id = x509.SubjectKeyIdentifier.from_public_key(self._key.public_key())
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(self._key_id, critical=False)
            .sign(self._key, hashes.SHA256())
        )

    def certificate_pem(self) -> bytes:
        return self._certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        *,
        common_name: str,
        dns_names: Sequence[str] = (),
        ips: Sequence[str] = (),
        organizations: Sequence[str] = (),
        client: bool = False,
    ) -> IssuedCertificate:
        """A leaf certificate: for a server when it names hosts (every name and address is a
        subjectAltName, which is what clients match), for a client when ``client`` is set (Kubernetes reads
        the user from the CN and the groups from the organizations)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
        subject.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(self._key_id), critical=False
            )
        )
        alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in sorted(dns_names)]
        alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in sorted(ips)]
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        return IssuedCertificate(
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
            key_pem=key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            public_key_pem=key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )


def generate_dev_certs(
    directory: Path,
    *,
    dns_names: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1",),
    valid_days: int = 7,
) -> DevCerts:
    """Write a fresh CA certificate, and a server certificate and key for the given names, into ``directory``.

    Existing files of the same names are replaced.
    """
    if not dns_names and not ip_addresses:
        raise ValueError("a server certificate needs at least one DNS name or IP address")
    directory.mkdir(parents=True, exist_ok=True)
    authority = CertificateAuthority(valid_days=valid_days)
    first_name = sorted(dns_names)[0] if dns_names else sorted(ip_addresses)[0]
    server = authority.issue(common_name=first_name, dns_names=dns_names, ips=ip_addresses)
    certs = DevCerts(
        ca_file=directory / _CA_FILE, cert_file=directory / _CERT_FILE, key_file=directory / _KEY_FILE
    )
    certs.ca_file.write_bytes(authority.certificate_pem())
    certs.cert_file.write_bytes(server.certificate_pem)
    _write_private(certs.key_file, server.key_pem)
    return certs


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_private(path: Path, data: bytes) -> None:
    # Created 0600 from the start (not chmod-ed afterwards) so the key is never readable by others.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)

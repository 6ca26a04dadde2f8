"""xDS over TLS and mutual TLS, with certificate files that are re-read when they change.

Outside a laptop the xDS port hands out every route and credential reference of the fleet, so it must
be able to prove who it is (TLS) and to accept only proxies holding a certificate from a CA it trusts
(mTLS). Certificates rotate (cert-manager renews them in place, a mounted Secret swaps its files), so
the files are checked on every new connection and re-read when their modification time or size moved:
open streams keep the certificate they started with, the next handshake gets the new one, and no
restart is needed. A rotation caught half-written (a key that does not match its certificate yet)
keeps the previous pair until the files are whole again.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class XdsTlsFiles:
    """PEM files of the xDS server's identity, and of the CA its clients must present a certificate from."""

    certificate: Path
    private_key: Path
    client_ca: Path | None = None
    """When set, proxies without a certificate signed by this CA are refused at the handshake (mTLS)."""

    def paths(self) -> tuple[Path, ...]:
        return tuple(
            path for path in (self.certificate, self.private_key, self.client_ca) if path is not None
        )


class TlsFileError(ValueError):
    """A certificate, key or CA file is missing or not PEM; the message names the file."""


def server_credentials(files: XdsTlsFiles) -> grpc.ServerCredentials:
    """gRPC server credentials serving ``files``, re-read when they change (see the module docstring)."""
    reloader = _Reloader(files)
    return grpc.dynamic_ssl_server_credentials(
        reloader.initial(),
        reloader.fetch,
        require_client_authentication=files.client_ca is not None,
    )


_Stamp = tuple[tuple[int, int], ...]


class _Reloader:
    """Called by gRPC (from its own threads) before each handshake: a new configuration, or None to keep
    the current one."""

    def __init__(self, files: XdsTlsFiles) -> None:
        self._files = files
        self._lock = threading.Lock()
        self._stamp: _Stamp = ()

    def initial(self) -> grpc.ServerCertificateConfiguration:
        """The first configuration; errors here are the operator's to fix before serving starts."""
        stamp = self._current_stamp()
        config = self._load()
        self._stamp = stamp
        return config

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            try:
                stamp = self._current_stamp()
                if stamp == self._stamp:
                    return None
                config = self._load()
                if self._current_stamp() != stamp:
                    return None  # rewritten while being read: take it on a later handshake
            except TlsFileError as error:
                _log.error("xDS TLS files unreadable, previous certificate kept", reason=str(error))
                return None
            self._stamp = stamp
        _log.info("xDS TLS certificate reloaded", certificate=str(self._files.certificate))
        return config

    def _current_stamp(self) -> _Stamp:
        stamps = []
        for path in self._files.paths():
            try:
                stat = path.stat()
            except OSError as error:
                raise TlsFileError(f"{path}: {error.strerror}") from None
            stamps.append((stat.st_mtime_ns, stat.st_size))
        return tuple(stamps)

    def _load(self) -> grpc.ServerCertificateConfiguration:
        files = self._files
        certificate = _read_pem(files.certificate, "CERTIFICATE")
        private_key = _read_pem(files.private_key, "PRIVATE KEY")
        _check_pair(files)
        client_ca = _read_pem(files.client_ca, "CERTIFICATE") if files.client_ca is not None else None
        return grpc.ssl_server_certificate_configuration(
            [(private_key, certificate)], root_certificates=client_ca
        )


def _read_pem(path: Path, kind: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TlsFileError(f"{path}: {error.strerror}") from None
    # "PRIVATE KEY" also matches "EC PRIVATE KEY" and "RSA PRIVATE KEY" headers.
    if b"-----BEGIN " not in data or f"{kind}-----".encode() not in data:
        raise TlsFileError(f"{path}: no PEM {kind} in it")
    return data


def _check_pair(files: XdsTlsFiles) -> None:
    """The key belongs to the certificate (Python's own TLS stack checks, so no extra dependency)."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            files.certificate, files.private_key
        )
    except (ssl.SSLError, OSError) as error:
        raise TlsFileError(
            f"{files.private_key}: not the private key of {files.certificate} ({error})"
        ) from None

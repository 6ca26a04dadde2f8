"""xDS over TLS and mutual TLS: a real Envoy bootstrapped by ``controlplane bootstrap --xds-ca`` gets its
configuration only with the right certificates, and a rotated server certificate is served without a
restart. Certificates are generated per test by a private CA."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from controlplane.bootstrap import XdsClientTls
from controlplane.devtools.certs import CertificateAuthority
from controlplane.devtools.envoy_process import EnvoyProcess
from controlplane.devtools.fake_backend import FakeBackend
from controlplane.netutil import PortReservations
from controlplane.xds.server import XdsSettings, XdsTlsFiles
from tests.polling import wait_until
from tests.xds_support import (
    SERVER_DRAIN_SECONDS,
    ServerThread,
    http_route_snapshot,
    start_envoy,
    wait_for_backend,
)

pytestmark = pytest.mark.envoy

SETTINGS = XdsSettings(debounce_seconds=0.02, listener_drain_seconds=SERVER_DRAIN_SECONDS)


@dataclass(frozen=True)
class Pki:
    """The files of one test: the server's pair, a client pair, and the CA that signed both."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    authority: CertificateAuthority

    def issue_server(self) -> None:
        """A new server certificate from the same CA, written over the old files (a rotation)."""
        issued = self.authority.issue(common_name="xds", dns_names=["xds.test"], ips=["127.0.0.1"])
        self.server_key.write_bytes(issued.key_pem)
        self.server_cert.write_bytes(issued.certificate_pem)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    authority = CertificateAuthority()
    client = authority.issue(common_name="envoy", client=True)
    files = Pki(
        ca=tmp_path / "ca.pem",
        server_cert=tmp_path / "server.pem",
        server_key=tmp_path / "server-key.pem",
        client_cert=tmp_path / "client.pem",
        client_key=tmp_path / "client-key.pem",
        authority=authority,
    )
    files.ca.write_bytes(authority.certificate_pem())
    files.client_cert.write_bytes(client.certificate_pem)
    files.client_key.write_bytes(client.key_pem)
    files.issue_server()
    return files


@pytest.fixture
def backend() -> Iterator[FakeBackend]:
    started = FakeBackend(name="behind-tls", model="m")
    started.start()
    try:
        yield started
    finally:
        started.stop()


def _serving(files: XdsTlsFiles) -> ServerThread:
    return ServerThread(SETTINGS, tls=files)


@contextmanager
def _envoy(server: ServerThread, mode: str, tls: XdsClientTls) -> Iterator[EnvoyProcess]:
    envoy = start_envoy(xds_port=server.port, mode=mode, node_id=f"tls-{mode}", tls=tls)
    try:
        yield envoy
    finally:
        envoy.stop()


@pytest.mark.parametrize("mode", ["sotw", "delta"])
def test_envoy_with_a_client_certificate_is_served_over_mutual_tls(
    pki: Pki, backend: FakeBackend, mode: str, ports: PortReservations
) -> None:
    server = _serving(XdsTlsFiles(certificate=pki.server_cert, private_key=pki.server_key, client_ca=pki.ca))
    try:
        port = ports.reserve()
        server.cache.set_snapshot(http_route_snapshot(generation="tls", port=port, backend_port=backend.port))
        tls = XdsClientTls(
            ca=pki.ca, sni="xds.test", client_certificate=pki.client_cert, client_key=pki.client_key
        )
        with _envoy(server, mode, tls) as envoy:
            envoy.wait_ready()
            wait_for_backend(port, "behind-tls")
            assert {event.node_id for event in server.events.all(kind="ack")} == {f"tls-{mode}"}
    finally:
        server.close()


def test_envoy_without_a_client_certificate_gets_nothing(
    pki: Pki, backend: FakeBackend, ports: PortReservations
) -> None:
    server = _serving(XdsTlsFiles(certificate=pki.server_cert, private_key=pki.server_key, client_ca=pki.ca))
    try:
        server.cache.set_snapshot(
            http_route_snapshot(generation="refused", port=ports.reserve(), backend_port=backend.port)
        )
        with _envoy(server, "sotw", XdsClientTls(ca=pki.ca, sni="xds.test")) as envoy:
            envoy.wait_ready(live=False)
            # The server ends the handshake (TLS 1.3: after the proxy's side of it completed), so the
            # proxy counts failed connections to its xDS cluster, and retries.
            wait_until(
                lambda: _xds_connect_failures(envoy) >= 2,
                timeout=30,
                message="Envoy's connections to the xDS port to be refused",
            )
            assert server.events.all() == []
            assert envoy.config_dump(resource="dynamic_listeners") == {}
    finally:
        server.close()


def test_envoy_that_does_not_trust_the_server_gets_nothing(
    pki: Pki, backend: FakeBackend, tmp_path: Path, ports: PortReservations
) -> None:
    server = _serving(XdsTlsFiles(certificate=pki.server_cert, private_key=pki.server_key))
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(CertificateAuthority(common_name="someone else").certificate_pem())
    try:
        server.cache.set_snapshot(
            http_route_snapshot(generation="untrusted", port=ports.reserve(), backend_port=backend.port)
        )
        with _envoy(server, "delta", XdsClientTls(ca=other_ca, sni="xds.test")) as envoy:
            envoy.wait_ready(live=False)
            wait_until(
                lambda: (
                    envoy.stats(filter_regex=r"^cluster\.xds_cluster\.ssl\.fail_verify_error$").get(
                        "cluster.xds_cluster.ssl.fail_verify_error", 0
                    )
                    >= 1
                ),
                timeout=30,
                message="Envoy to refuse the xDS port's certificate",
            )
            assert server.events.all(kind="ack") == []
    finally:
        server.close()


def _xds_connect_failures(envoy: EnvoyProcess) -> int:
    name = "cluster.xds_cluster.upstream_cx_connect_fail"
    return envoy.stats(filter_regex=f"^{name}$").get(name, 0)


def _served_certificate(port: int, ca: Path) -> x509.Certificate:
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="xds.test") as wrapped,
    ):
        der = wrapped.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_a_rotated_server_certificate_is_served_without_a_restart(pki: Pki) -> None:
    server = _serving(XdsTlsFiles(certificate=pki.server_cert, private_key=pki.server_key))
    try:
        first = _served_certificate(server.port, pki.ca)
        pki.issue_server()
        rotated = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
        assert rotated.serial_number != first.serial_number
        wait_until(
            lambda: _served_certificate(server.port, pki.ca).serial_number == rotated.serial_number,
            message="the rotated certificate on a new connection",
        )
        # Half a rotation (a key that is not the certificate's) keeps the last good pair.
        pki.server_key.write_bytes(pki.authority.issue(common_name="other").key_pem)
        assert _served_certificate(server.port, pki.ca).serial_number == rotated.serial_number
    finally:
        server.close()


def test_serve_names_a_missing_certificate_file_and_exits(tmp_path: Path, pki: Pki) -> None:
    missing = tmp_path / "nowhere.pem"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "controlplane",
            "serve",
            str(Path(__file__).parent.parent / "examples"),
            "--xds-port=0",
            "--admin-port=0",
            f"--xds-tls-cert={missing}",
            f"--xds-tls-key={pki.server_key}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert f"{missing}: No such file or directory" in result.stderr
    assert "Traceback" not in result.stderr

"""Flags of a client of the xDS port over TLS, shared by ``bootstrap`` (for Envoy) and ``proxy-status``."""

from __future__ import annotations

import argparse
from pathlib import Path

from controlplane.bootstrap import XdsClientTls


def add_xds_client_tls_arguments(parser: argparse.ArgumentParser, *, client: str) -> None:
    """``client`` names who presents the certificate (``Envoy``, ``this command``) in the help."""
    tls = parser.add_argument_group("xDS over TLS (plaintext when not given)")
    tls.add_argument(
        "--xds-ca",
        type=Path,
        metavar="PEM",
        help="connect over TLS, trusting this CA for the control plane's certificate",
    )
    tls.add_argument(
        "--xds-sni",
        metavar="NAME",
        help="server name to ask for and verify (default: the --xds-address host when it is a name)",
    )
    tls.add_argument(
        "--xds-client-cert", type=Path, metavar="PEM", help=f"{client}'s certificate, for mutual TLS"
    )
    tls.add_argument("--xds-client-key", type=Path, metavar="PEM", help="its private key")


class XdsClientTlsError(ValueError):
    """TLS flags that do not go together; the message says which."""


def xds_client_tls(args: argparse.Namespace) -> XdsClientTls | None:
    if args.xds_ca is None:
        if args.xds_sni or args.xds_client_cert or args.xds_client_key:
            raise XdsClientTlsError("--xds-sni and --xds-client-* need --xds-ca")
        return None
    if (args.xds_client_cert is None) != (args.xds_client_key is None):
        raise XdsClientTlsError("--xds-client-cert and --xds-client-key go together")
    return XdsClientTls(
        ca=args.xds_ca,
        sni=args.xds_sni,
        client_certificate=args.xds_client_cert,
        client_key=args.xds_client_key,
    )

"""`controlplane bootstrap`: print the Envoy bootstrap YAML that connects a proxy to this control plane."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from controlplane.bootstrap import DEFAULT_CLUSTER, XdsClientTls, render_bootstrap
from controlplane.defaults import ENVOY_ADMIN_PORT


@dataclass(frozen=True)
class _Bootstrap:
    name: str = "bootstrap"
    help: str = "Print an Envoy bootstrap (ADS over gRPC) pointing at the control plane."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--xds-address",
            required=True,
            metavar="HOST:PORT",
            help="address of the control plane's xDS port",
        )
        parser.add_argument(
            "--delta",
            action="store_true",
            help="use incremental xDS (DELTA_GRPC) instead of state of the world",
        )
        parser.add_argument("--node-id", metavar="ID", help="Envoy node id (default: the hostname)")
        parser.add_argument(
            "--cluster",
            default=DEFAULT_CLUSTER,
            metavar="NAME",
            help=f"Envoy node cluster (default: {DEFAULT_CLUSTER})",
        )
        parser.add_argument(
            "--admin-port",
            type=int,
            default=ENVOY_ADMIN_PORT,
            metavar="N",
            help=f"Envoy admin port on 127.0.0.1 (default: {ENVOY_ADMIN_PORT})",
        )

        tls = parser.add_argument_group("xDS over TLS (plaintext when not given)")
        tls.add_argument(
            "--xds-ca",
            type=Path,
            metavar="PEM",
            help="connect over TLS, trusting this CA for the control plane's certificate (read by Envoy)",
        )
        tls.add_argument(
            "--xds-sni",
            metavar="NAME",
            help="server name to ask for and verify (default: the --xds-address host when it is a name)",
        )
        tls.add_argument(
            "--xds-client-cert", type=Path, metavar="PEM", help="Envoy's certificate, for mutual TLS"
        )
        tls.add_argument("--xds-client-key", type=Path, metavar="PEM", help="its private key")

    def run(self, args: argparse.Namespace) -> int:
        if args.xds_ca is None and (args.xds_sni or args.xds_client_cert or args.xds_client_key):
            print("controlplane bootstrap: --xds-sni and --xds-client-* need --xds-ca", file=sys.stderr)
            return 2
        tls = (
            None
            if args.xds_ca is None
            else XdsClientTls(
                ca=args.xds_ca,
                sni=args.xds_sni,
                client_certificate=args.xds_client_cert,
                client_key=args.xds_client_key,
            )
        )
        try:
            text = render_bootstrap(
                xds_address=args.xds_address,
                delta=args.delta,
                node_id=args.node_id,
                cluster=args.cluster,
                admin_port=args.admin_port,
                tls=tls,
            )
        except ValueError as error:
            print(f"controlplane bootstrap: {error}", file=sys.stderr)
            return 2
        sys.stdout.write(text)
        return 0


COMMAND = _Bootstrap()

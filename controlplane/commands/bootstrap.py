"""`controlplane bootstrap`: print the Envoy bootstrap YAML that connects a proxy to this control plane."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from controlplane.bootstrap import DEFAULT_CLUSTER, render_bootstrap
from controlplane.commands._output import writing_stdout
from controlplane.commands._xds_client_args import (
    XdsClientTlsError,
    add_xds_client_tls_arguments,
    xds_client_tls,
)
from controlplane.commands.argument_types import port_number
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
            type=port_number,
            default=ENVOY_ADMIN_PORT,
            metavar="N",
            help=f"Envoy admin port on 127.0.0.1 (default: {ENVOY_ADMIN_PORT})",
        )
        parser.add_argument(
            "--stats-flush-interval",
            type=float,
            metavar="SECONDS",
            help="flush Envoy's stats on a timer, for stats sinks you add (default: only when the admin "
            "page /stats or /stats/prometheus is read)",
        )

        add_xds_client_tls_arguments(parser, client="Envoy")

    def run(self, args: argparse.Namespace) -> int:
        try:
            tls = xds_client_tls(args)
        except XdsClientTlsError as error:
            print(f"controlplane bootstrap: {error}", file=sys.stderr)
            return 2
        try:
            text = render_bootstrap(
                xds_address=args.xds_address,
                delta=args.delta,
                node_id=args.node_id,
                cluster=args.cluster,
                admin_port=args.admin_port,
                tls=tls,
                stats_flush_interval=args.stats_flush_interval,
            )
        except ValueError as error:
            print(f"controlplane bootstrap: {error}", file=sys.stderr)
            return 2
        with writing_stdout():
            sys.stdout.write(text)
        return 0


COMMAND = _Bootstrap()

"""The arguments every command that runs the pipeline on manifests shares, and the options they become."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from controlplane import defaults

if TYPE_CHECKING:
    from controlplane.gatewayapi import TranslateOptions


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="YAML files or directories")
    parser.add_argument(
        "--listen-address",
        default=defaults.LISTEN_ADDRESS,
        help=f"address of the Envoy listeners it generates (default {defaults.LISTEN_ADDRESS})",
    )
    parser.add_argument(
        "--listener-port",
        type=int,
        default=None,
        metavar="N",
        help=f"port of the one Envoy listener when no Gateway is given (default {defaults.LISTENER_PORT})",
    )


def pipeline_options(args: argparse.Namespace) -> TranslateOptions:
    # Imported here: the pipeline pulls in every model, which `controlplane --help` need not load.
    from controlplane.gatewayapi import TranslateOptions

    return TranslateOptions(
        listen_address=args.listen_address, default_port=args.listener_port or defaults.LISTENER_PORT
    )

"""The arguments every command that translates manifests shares, and the options they become."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controlplane.gatewayapi import TranslateOptions


def add_translation_arguments(parser: argparse.ArgumentParser, *, paths_required: bool = True) -> None:
    parser.add_argument(
        "paths",
        nargs="+" if paths_required else "*",
        type=Path,
        metavar="PATH",
        help="YAML files or directories",
    )
    parser.add_argument(
        "--listen-address",
        default="0.0.0.0",
        help="address of the Envoy listeners it generates (default 0.0.0.0)",
    )
    parser.add_argument(
        "--gateway-class-controller",
        default=None,
        metavar="NAME",
        help="the controllerName of the GatewayClasses whose Gateways are ours "
        "(default gateway.envoyproxy.io/gatewayclass-controller, as Envoy AI Gateway's)",
    )
    parser.add_argument(
        "--listener-port",
        type=int,
        default=None,
        metavar="N",
        help="port of the one Envoy listener when no Gateway is given (default 10080)",
    )


def translate_options(args: argparse.Namespace) -> TranslateOptions:
    # Imported here: the translator pulls in every model, which `controlplane --help` need not load.
    from controlplane.gatewayapi import (
        DEFAULT_GATEWAY_CLASS_CONTROLLER,
        DEFAULT_LISTENER_PORT,
        TranslateOptions,
    )

    return TranslateOptions(
        listen_address=args.listen_address,
        default_port=args.listener_port or DEFAULT_LISTENER_PORT,
        gateway_class_controller=args.gateway_class_controller or DEFAULT_GATEWAY_CLASS_CONTROLLER,
        # In a cluster, Gateways of classes that do not exist may be another controller's to come.
        require_gateway_class=bool(getattr(args, "kubernetes", False)),
    )

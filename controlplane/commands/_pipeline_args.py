"""The arguments every command that runs the pipeline on manifests shares, and the options they become."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from controlplane import defaults
from controlplane.commands.argument_types import listener_port_number

if TYPE_CHECKING:
    from controlplane.gatewayapi import TranslateOptions
    from controlplane.sources.file_reading import FileLimits


def add_pipeline_arguments(parser: argparse.ArgumentParser, *, paths_required: bool = True) -> None:
    parser.add_argument(
        "paths",
        nargs="+" if paths_required else "*",
        type=Path,
        metavar="PATH",
        help="YAML files or directories",
    )
    parser.add_argument(
        "--listen-address",
        default=defaults.LISTEN_ADDRESS,
        metavar="ADDRESS",
        help=f"address of the Envoy listeners it generates (default {defaults.LISTEN_ADDRESS})",
    )
    parser.add_argument(
        "--gateway-class-controller",
        default=None,
        metavar="NAME",
        help="the controllerName of the GatewayClasses whose Gateways are ours "
        f"(default {defaults.GATEWAY_CLASS_CONTROLLER}, as Envoy AI Gateway's)",
    )
    parser.add_argument(
        "--enable-inference-extension",
        action="store_true",
        help="accept InferencePools (Gateway API Inference Extension) as backends, with their endpoint "
        "pickers; in a cluster, also watch them and their Pods",
    )
    parser.add_argument(
        "--listener-port",
        type=listener_port_number,
        default=None,
        metavar="N",
        help=f"port of the one Envoy listener when no Gateway is given (default {defaults.LISTENER_PORT})",
    )


def add_file_limit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-file-bytes",
        type=int,
        default=defaults.MAX_FILE_BYTES,
        metavar="N",
        help=f"a manifest file larger than this is refused unread (default {defaults.MAX_FILE_BYTES})",
    )
    parser.add_argument(
        "--max-objects",
        type=int,
        default=defaults.MAX_OBJECTS,
        metavar="N",
        help=f"a load of more objects than this is refused whole (default {defaults.MAX_OBJECTS})",
    )


def file_limits(args: argparse.Namespace) -> FileLimits:
    from controlplane.sources.file_reading import FileLimits

    return FileLimits(max_file_bytes=args.max_file_bytes, max_objects=args.max_objects)


def pipeline_options(args: argparse.Namespace) -> TranslateOptions:
    # Imported here: the pipeline pulls in every model, which `controlplane --help` need not load.
    from controlplane.gatewayapi import TranslateOptions

    return TranslateOptions(
        listen_address=args.listen_address,
        default_port=defaults.LISTENER_PORT if args.listener_port is None else args.listener_port,
        gateway_class_controller=args.gateway_class_controller or defaults.GATEWAY_CLASS_CONTROLLER,
        # In a cluster, Gateways of classes that do not exist may be another controller's to come.
        require_gateway_class=bool(getattr(args, "kubernetes", False)),
        inference_extension=args.enable_inference_extension,
    )
